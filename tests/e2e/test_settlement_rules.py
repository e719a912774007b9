"""Settlement's rules against a real node (the audit's findings 1 and 4): the chain refuses to
settle before the traders' meters have reported, and a seller that drained its account and
delivered nothing pays its shortfall from the proceeds the clearing house kept, owes the rest
as a debt, and blocks nobody."""

from __future__ import annotations

import pytest
from e2e_helpers import (
    accreditation,
    raw,
    setup_participants,
    submit_reading,
    wait_for_gate,
    wait_until,
)

from chain import PALLET, Chain, ChainError
from market import OrderSpec, keypair, now_ms, sign_order
from meter_bridge import MeterKey, sign_reading
from offchain.scheduler import Scheduler
from offchain.settlement import Settler
from store import DataDir, queries

SELLER, BUYER = "//Settle/seller", "//Settle/buyer"
SUBMITTER = "//One"  # the dev chain's clearing submitter
RELAYER = "//Dave"  # anyone: relaying orders, asking for settlement


@pytest.fixture(scope="module")
def chain(node_binary, tmp_path_factory):
    from wattchain.node import DevNode

    root = tmp_path_factory.mktemp("settle")
    node = DevNode(node_binary, log_path=root / "node.log").start()
    chain = Chain(node.url).connect()
    # The seller has a solar meter; the buyer has none, so settlement waits for the seller only.
    setup_participants(
        chain, [SELLER, BUYER], meters={SELLER: MeterKey.from_uri(f"{SELLER}/meter").public_key_hex}
    )
    yield chain
    chain.close()
    node.stop()


def reading(chain: Chain, interval: int, counter: int, export_wh: int):
    """The seller's meter's signed reading (nothing imported)."""
    key = MeterKey.from_uri(f"{SELLER}/meter")
    return sign_reading(raw(0, export_wh), key, accreditation(chain, key), interval, counter)


def test_settlement_waits_for_the_meters_and_a_drained_seller_blocks_nobody(chain, tmp_path):
    params = chain.market_params()
    seller, buyer = keypair(SELLER), keypair(BUYER)
    # The seller's meter has its baseline from an interval that is over.
    now_interval = params.interval_at(chain.timestamp_ms())
    assert submit_reading(chain, reading(chain, now_interval - 1, 1, 0)) is None

    k = params.first_open_interval(now_ms(), 4_000)
    base = now_ms() * 10
    chain.place_orders_relayed(
        keypair(RELAYER),
        [
            sign_order(
                seller, chain.genesis_hash, OrderSpec(base, k, "offer", 1_000, 40, source="solar")
            ),
            sign_order(buyer, chain.genesis_hash, OrderSpec(base + 1, k, "bid", 1_000, 60)),
        ],
    )
    data = DataDir(tmp_path)
    wait_for_gate(chain, k)
    assert (
        Scheduler(data, chain, keypair(SUBMITTER), start_interval=k).clear_interval(k)["state"]
        == "committed"
    )
    price = chain.clearing(k).matches[0].seller_price
    proceeds = 1_000 * price
    position = chain.query(PALLET, "Positions", [k, seller.ss58_address])
    assert (int(position["proceeds"]), int(position["meters"])) == (proceeds, 1)
    assert chain.outstanding_traders(k) == 1

    # Finding 1: the interval is over, the seller's meter has not reported: the chain says no.
    wait_until(lambda: chain.timestamp_ms() >= params.interval_end(k), 40, f"the end of {k}")
    with pytest.raises(ChainError) as refused:
        chain.submit(keypair(RELAYER), "settle_interval", {"interval": k, "max_participants": 9})
    assert refused.value.name == "ReadingsOutstanding"

    # Finding 4: the seller empties its account, and its meter shows nothing delivered.
    grid = chain.distributor()
    chain.submit(
        seller,
        "transfer_all",
        {"dest": keypair(RELAYER).ss58_address, "keep_alive": True},
        module="Balances",
    )
    assert submit_reading(chain, reading(chain, k, 2, 0)) is None
    assert chain.outstanding_traders(k) == 0
    grid_before = chain.balance(grid).free
    attempt = Settler(data, chain, keypair(SUBMITTER), finality=False).settle(k)
    assert attempt["state"] == "committed", attempt

    lines = chain.settlement_lines(k)
    shortfall = 1_000 * params.utility_tariff_ticks
    assert lines[seller.ss58_address]["amount"] == shortfall
    assert lines[seller.ss58_address]["proceeds"] == proceeds
    assert not lines[seller.ss58_address]["estimated"]
    # The proceeds paid for the shortfall first; the rest is the seller's debt to the distributor.
    debt = chain.query(PALLET, "Debts", [seller.ss58_address, grid])
    assert int(debt) == shortfall - proceeds
    # The buyer, with no meter, was settled all the same: its 1 kWh unused, paid at feed-in.
    assert lines[buyer.ss58_address]["imbalance_wh"] == -1_000
    feed_in = 1_000 * params.feed_in_ticks
    assert chain.balance(grid).free == grid_before + proceeds - feed_in
    names = [a["name"] for a in queries.alerts(data.ops(), limit=10)]
    assert "SettlementDebt" in names
