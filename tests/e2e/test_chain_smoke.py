"""The chain client against a real dev node: metadata names, SCALE of OrderSpec with the node's own
metadata, an order signed and submitted by its owner (storage + OrderPlaced), relayed orders,
pallet errors by name, back-to-back nonces, reconnecting after a node restart."""

from __future__ import annotations

import pytest
from e2e_helpers import setup_participants, wait_until

from chain import (
    PALLET,
    Balance,
    Chain,
    ChainError,
    relayed_cancels_args,
    relayed_orders_args,
)
from chain.reads import order_place
from market import (
    READING_TAG,
    OrderSpec,
    SignedCancel,
    SignedOrder,
    dev_keypair,
    keypair,
    now_ms,
    reading_message,
    sign_cancel,
    sign_order,
)
from meter_bridge import MeterKey

BOB = "//Bob"


@pytest.fixture(scope="module")
def market(chain):
    # Bob has a solar meter (his solar offers are good); Charlie has none.
    setup_participants(
        chain, [BOB, "//Charlie"], meters={BOB: MeterKey.from_uri(f"{BOB}/meter").public_key_hex}
    )
    return chain.market_params()


def next_interval(chain, market, ahead: int = 1) -> int:
    return market.first_open_interval(now_ms(), 4_000) + ahead


def test_metadata_names(chain):
    pallet = chain.substrate.metadata.get_metadata_pallet(PALLET)
    calls = {c.name for c in pallet.calls}
    assert {
        "place_order",
        "place_orders_relayed",
        "cancel_order",
        "cancel_orders_relayed",
        "submit_clearing",
        "register_clearing",
        "submit_clearing_page",
        "submit_reading",
        "settle_interval",
        "register_participant",
        "accredit_meter",
    } <= calls
    storage = {s.name for s in pallet.storage}
    assert {
        "BookPages",
        "BookLen",
        "Clearings",
        "ClearingPages",
        "PendingClearings",
        "Fills",
        "ClearingPrices",
        "Params",
        "Settlements",
        "EnergyBalance",
        "Metered",
        "ClientOrders",
        "MeterEpochs",
        "MeterSources",
    } <= storage
    assert chain.market_operator() == dev_keypair("Alice").ss58_address
    assert chain.distributor() == dev_keypair("Ferdie").ss58_address
    params = chain.market_params()
    assert (params.interval_ms, params.gate_closure_ms) == (20_000, 10_000)


def test_order_spec_scale_matches_the_nodes_metadata(chain):
    for spec in (
        OrderSpec(7, 3, "offer", 1500, 75, 2, "wind", False),
        OrderSpec(2**64 - 1, 2**63, "bid", 1, 10_000, 65_535, "grid_mix", True),
    ):
        assert chain.encode_call_args("place_order", {"spec": spec.to_call_arg()}) == spec.encode()


def test_relayed_batches_encoded_here_match_the_nodes_metadata(chain):
    """The relayer encodes its batches itself (scalecodec was a fifth of its time): byte for
    byte what substrate-interface makes of them with the node's metadata, with a length that
    takes two bytes (70 entries)."""
    owners = [dev_keypair(name).ss58_address for name in ("Bob", "Charlie")]
    orders = [
        SignedOrder(
            owners[i % 2],
            OrderSpec(
                2**64 - 1 - i, 2**40 + i, "bid" if i % 3 else "offer", i + 1, 7 * i, i, "hydro"
            ),
            bytes([i]) * 64,
        )
        for i in range(70)
    ]
    cancels = [SignedCancel(owners[i % 2], 2**63 + i, bytes([255 - i]) * 64) for i in range(70)]
    assert chain.encode_call_args(
        "place_orders_relayed", {"orders": [o.to_call_arg() for o in orders]}
    ) == relayed_orders_args(orders)
    assert chain.encode_call_args(
        "cancel_orders_relayed", {"cancels": [c.to_call_arg() for c in cancels]}
    ) == relayed_cancels_args(cancels)


def test_a_clearing_page_encoded_here_weighs_what_the_runtime_says(chain):
    """The scheduler encodes clearing pages itself, and asks the runtime what the last one
    weighs from those bytes before it signs anything. They are the node's own encoding, and the
    last page, which applies the clearing, weighs what `submit_clearing` of the same book and
    matches does. A city of households with one order each cannot be applied in one call yet
    (the README's "Limits"): the scheduler does not register such a clearing."""
    match = {"bid": 2**20 + 3, "offer": 2**20 + 300, "quantity_wh": 1_500}
    match |= {"buyer_price": 80, "seller_price": 60}
    matches = [match] * 70
    last = Chain.clearing_page_params(7, 2, matches, (1_000, 40, 70))
    assert last == chain.encode_call_args(
        "submit_clearing_page",
        {
            "interval": 7,
            "page": 2,
            "matches": matches,
            "finish": {"orders": 1_000, "traders": 40, "matches": 70},
        },
    )
    whole = Chain.clearing_params(7, "uniform", 1, [], matches, book_orders=1_000, book_traders=40)
    weight = chain.raw_call_ref_time("submit_clearing_page", last)
    assert weight == chain.call_ref_time("submit_clearing", whole) < chain.max_call_ref_time()
    city = Chain.clearing_page_params(7, 19, matches, (200_000, 200_000, 199_999))
    assert chain.raw_call_ref_time("submit_clearing_page", city) > chain.max_call_ref_time()


def test_meter_reading_scale_matches_the_nodes_metadata(chain):
    """submit_reading's `MeterReading` in the node's own encoding is what the meter signs after
    the tag and the genesis hash: `reading:v2 ++ genesis ++ SCALE(MeterReading)`."""
    meter = bytes(range(32, 64))
    fields = (2**32 - 1, 89_805_158, 7, 1_250_123, 2**64 - 1)
    signature = bytes(range(64))
    args = chain.encode_call_args("submit_reading", Chain.reading_params(meter, *fields, signature))
    message = reading_message(chain.genesis_hash, meter, *fields)
    encoded_reading = message[len(READING_TAG) + 32 :]
    assert message[len(READING_TAG) : len(READING_TAG) + 32] == chain.genesis_hash
    assert args == encoded_reading + signature


def test_owner_signs_submits_and_reads_back_an_order(chain, market):
    bob = keypair(BOB)
    spec = OrderSpec(
        client_order_id=now_ms(),
        # Bob sells in the next interval below: a participant buys or sells, never both.
        interval=next_interval(chain, market, ahead=3),
        side="bid",
        quantity_wh=1_200,
        price_ticks=70,
    )
    before = chain.balance(bob.ss58_address)
    receipt = chain.submit(bob, "place_order", {"spec": spec.to_call_arg()})
    assert receipt.success and receipt.error is None
    (placed,) = receipt.find(PALLET, "OrderPlaced")
    order_id = int(placed.attributes["order_id"])
    assert placed.attributes["client_order_id"] == spec.client_order_id
    assert placed.attributes["owner"] == bob.ss58_address
    order = chain.order(order_id, receipt.block_hash)
    assert (order.owner, order.spec, order.status) == (bob.ss58_address, spec, "open")
    assert chain.client_order_id(bob.ss58_address, spec.client_order_id) == order_id
    assert order_id in [o.order_id for o in chain.orders_of_interval(spec.interval)]
    assert order_place(order_id) == (spec.interval, chain.book_len(spec.interval) - 1)
    after = chain.balance(bob.ss58_address)
    assert after.reserved - before.reserved == 70 * 1_200  # the bid's hold: price * quantity units
    # The raw read of System.Account decodes it as the runtime's metadata does.
    typed = chain.query("System", "Account", [bob.ss58_address], receipt.block_hash)["data"]
    raw = chain.balance(bob.ss58_address, receipt.block_hash)
    assert raw == Balance(int(typed["free"]), int(typed["reserved"]), int(typed["frozen"]))
    assert raw.reserved > 0 and raw.free > 0
    assert chain.balance(keypair("//Nobody").ss58_address) == Balance(0, 0, 0)


def test_relayed_orders_and_pallet_errors_by_name(chain, market):
    relayer, bob, charlie = keypair("//Dave"), keypair(BOB), keypair("//Charlie")
    genesis = chain.genesis_hash
    k = next_interval(chain, market)
    a = sign_order(bob, genesis, OrderSpec(now_ms(), k, "offer", 800, 40, source="solar"))
    b = sign_order(charlie, genesis, OrderSpec(now_ms() + 1, k, "bid", 500, 60))
    receipt = chain.place_orders_relayed(relayer, [a, b])
    assert len(receipt.find(PALLET, "OrderPlaced")) == 2
    # Idempotent: the same batch again places nothing new and fails nothing.
    again = chain.place_orders_relayed(relayer, [a, b])
    assert again.success and not again.find(PALLET, "OrderPlaced")
    # A bad order in a batch is refused alone, by name, in an event; the extrinsic succeeds.
    forged = SignedOrder(bob.ss58_address, OrderSpec(now_ms() + 2, k, "bid", 1, 60), b.signature)
    reused = sign_order(
        bob, genesis, OrderSpec(a.spec.client_order_id, k, "offer", 801, 40, source="solar")
    )
    unmetered = sign_order(
        charlie, genesis, OrderSpec(now_ms() + 3, k, "offer", 100, 40, 0, "wind")
    )
    good = sign_order(charlie, genesis, OrderSpec(now_ms() + 4, k, "bid", 100, 60))
    crossed = sign_order(bob, genesis, OrderSpec(now_ms() + 5, k, "bid", 100, 60))  # Bob sells
    receipt = chain.place_orders_relayed(relayer, [forged, reused, unmetered, good, crossed])
    assert receipt.success
    refused = [(o, c, e) for (o, c), e in chain.refusals(receipt, "RelayedOrderRefused").items()]
    assert refused == [
        (bob.ss58_address, forged.spec.client_order_id, "BadSignature"),
        (bob.ss58_address, a.spec.client_order_id, "ClientOrderIdReused"),
        (charlie.ss58_address, unmetered.spec.client_order_id, "SourceNotMetered"),
        (bob.ss58_address, crossed.spec.client_order_id, "SelfTrade"),
    ]
    assert [int(e.attributes["client_order_id"]) for e in receipt.find(PALLET, "OrderPlaced")] == [
        good.spec.client_order_id
    ]
    # A call that fails whole still names its pallet error, block and extrinsic.
    with pytest.raises(ChainError) as err:
        chain.submit(charlie, "cancel_order", {"client_order_id": 2**64 - 1})
    assert (err.value.pallet, err.value.name) == (PALLET, "UnknownOrder")
    assert err.value.block_hash and err.value.extrinsic_index is not None
    cancel = chain.cancel_orders_relayed(
        relayer, [sign_cancel(bob, genesis, a.spec.client_order_id)]
    )
    assert cancel.find(PALLET, "OrderCancelled")
    assert (
        chain.order(chain.client_order_id(bob.ss58_address, a.spec.client_order_id)).status
        == "cancelled"
    )


def test_back_to_back_submissions_keep_their_nonces(chain, market):
    charlie = keypair("//Charlie")
    k = next_interval(chain, market)
    base = now_ms() * 10
    txs = [
        chain.submit_nowait(
            charlie, "place_order", {"spec": OrderSpec(base + i, k, "bid", 10, 50).to_call_arg()}
        )
        for i in range(6)
    ]
    assert [tx.nonce for tx in txs] == list(range(txs[0].nonce, txs[0].nonce + 6))
    receipts = chain.wait(txs, finality=True, timeout_s=90)
    assert all(r.success and r.finalized for r in receipts)
    # A stale local nonce is resynced from the pool, not fatal.
    chain.resync_nonce(charlie.ss58_address)
    from chain import transactions as chain_module

    tracker = chain_module._tracker(chain.genesis_hash_hex, charlie.ss58_address)
    tracker.next = txs[0].nonce  # pretend we forgot those six
    receipt = chain.submit(
        charlie, "place_order", {"spec": OrderSpec(base + 99, k, "bid", 10, 50).to_call_arg()}
    )
    assert receipt.success


def test_reconnects_after_a_node_restart(start_node, tmp_path):
    node = start_node(base_path=tmp_path / "chain")
    chain = Chain(node.url, retry_s=90).connect()
    before = chain.best_number()
    genesis = chain.genesis_hash_hex
    node.stop()
    node.start()
    # The same Chain object carries on: it reconnects and sees the same chain, grown.
    assert wait_until(lambda: chain.best_number() > before, 60, "blocks after the restart")
    assert chain.genesis_hash_hex == genesis and chain.reconnects >= 1
    receipt = chain.submit(
        keypair("//Alice"),
        "register_participant",
        {"who": keypair("//Eve").ss58_address, "zone": 3},
    )
    assert receipt.success
    chain.close()
