"""The API's order entry and listings against a stand-in for the chain view (no node): every
rejection reason gets its 4xx, idempotency by client_order_id, cursor pagination. The same
paths run against a real node in tests/e2e."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.chainview import MarketView
from api.client import cancel_body, order_body
from chain import Balance
from market import MarketParams, OrderSpec, dev_keypair
from market.settings import Settings
from store import DataDir, OrderLog, transaction
from store.orderlog import LOG_COMMIT_SECONDS

GENESIS = bytes(range(32))
PARAMS = MarketParams(
    interval_ms=20_000,
    gate_closure_ms=10_000,
    min_price_ticks=1,
    max_price_ticks=10_000,
    max_quantity_wh=1_000_000,
    utility_tariff_ticks=95,
    feed_in_ticks=30,
    reading_window_ms=20_000,
    mechanism="uniform",
)
BOB, CHARLIE, DAVE = dev_keypair("Bob"), dev_keypair("Charlie"), dev_keypair("Dave")


class FakeChainView:
    genesis_hash = GENESIS
    max_intervals_ahead = 10
    block_ms = 2_000
    node_reachable = True
    last_ok_ms = None

    def __init__(self):
        self.zones = {BOB.ss58_address: 0, CHARLIE.ss58_address: 1}
        self.free = {BOB.ss58_address: 10**9, CHARLIE.ss58_address: 100_000}
        self.meters = {(BOB.ss58_address, "solar"), (CHARLIE.ss58_address, "wind")}

    def params(self):
        return PARAMS

    def zone_of(self, account):
        return self.zones.get(account)

    def meters_of_source(self, account, source):
        # Bob has a solar meter, Charlie a wind meter.
        return int((account, source) in self.meters)

    def balance(self, account, fresh=False):
        return Balance(self.free.get(account, 0), 0, 0)

    def energy_balance(self, account):
        return 1234

    def heads(self):
        return {"best_block": 10, "finalized_block": 8, "chain_time_ms": 0}

    def market_view(self):
        return MarketView(GENESIS, PARAMS, self.max_intervals_ahead, self.heads(), True, False)

    def close(self):
        pass


@pytest.fixture
def api(tmp_path):
    app = create_app(Settings(data_dir=tmp_path, order_margin_ms=4_000), chain=FakeChainView())
    with TestClient(app) as client:
        yield client


PINNED_INTERVAL: int | None = None  # set for each test by tests/api/conftest.py


def open_interval() -> int:
    """An interval whose gate was at least 26 s away when the test began: open for the whole
    test, and the same on every call, so an interval boundary mid-test cannot split a test's
    orders over two intervals (a replay would become a conflict, a cap would not be reached)."""
    if PINNED_INTERVAL is not None:
        return PINNED_INTERVAL
    return PARAMS.first_open_interval(time.time_ns() // 1_000_000, 6_000) + 1


def body(signer=BOB, **kw):
    spec = dict(
        client_order_id=1,
        interval=open_interval(),
        side="bid",
        quantity_wh=1_000,
        price_ticks=80,
        zone=0,
    )
    spec.update(kw)
    return order_body(signer, GENESIS, OrderSpec(**spec))


def test_place_order_and_replay(api):
    k = open_interval()  # pinned, so the re-signed order is the same order
    first = api.post("/orders", json=body(interval=k))
    assert first.status_code == 202, first.text
    accepted = first.json()
    assert accepted["status"] == "accepted" and accepted["owner"] == BOB.ss58_address
    again = api.post("/orders", json=body(interval=k))  # re-signed, same order: same answer
    assert again.status_code == 202 and again.json() == accepted
    clash = api.post("/orders", json=body(quantity_wh=999, interval=k))
    assert clash.status_code == 409 and clash.json()["error"] == "ClientOrderIdReused"
    got = api.get(f"/orders/{BOB.ss58_address}/1").json()
    assert (
        got["relay_status"] == "pending" and got["quantity_wh"] == 1_000 and got["status"] is None
    )


def error_of(response):
    return response.status_code, response.json()["error"]


def test_every_rejection_reason_has_its_4xx(api):
    k = open_interval()
    bad_sig = body()
    bad_sig["signature"] = "0x" + "00" * 64
    tampered = body()
    tampered["quantity_wh"] = 2_000
    cases = {
        (400, "BadSignature"): bad_sig,
        (400, "BadSignature") + ("tampered",): tampered,
        (400, "InvalidAccount"): {**body(), "owner": "nobody"},
        (403, "NotRegistered"): body(signer=DAVE),
        (422, "WrongZone"): body(zone=3),
        (422, "ZeroQuantity"): body(quantity_wh=0),
        (422, "QuantityTooLarge"): body(quantity_wh=PARAMS.max_quantity_wh + 1),
        (422, "PriceOutOfBounds"): body(price_ticks=0),
        (422, "PriceOutOfBounds") + ("high",): body(price_ticks=10_001),
        (422, "InvalidEnergyConstraint"): body(side="offer", source="solar", renewable_only=True),
        (422, "RenewableOnlyUnderUniform"): body(renewable_only=True),
        (422, "SourceNotMetered"): body(side="offer", source="wind"),  # Bob meters solar only
        (422, "GateClosed"): body(interval=PARAMS.interval_at(time.time_ns() // 1_000_000)),
        (422, "IntervalTooFarAhead"): body(interval=k + 50),
        (422, "InsufficientBalance"): body(
            signer=CHARLIE, zone=1, quantity_wh=10_000, price_ticks=80
        ),
        (422, "InvalidRequest"): {**body(), "quantity_wh": 1.5},
        (422, "InvalidRequest") + ("missing",): {
            k2: v for k2, v in body().items() if k2 != "price_ticks"
        },
        (422, "InvalidRequest") + ("extra",): {**body(), "colour": "green"},
        (422, "InvalidRequest") + ("side",): {**body(), "side": "buy"},
    }
    for expected, request in cases.items():
        response = api.post("/orders", json=request)
        assert error_of(response) == expected[:2], (expected, response.text)
        assert response.json()["detail"]
    assert api.get("/market").json()["genesis_hash"] == "0x" + GENESIS.hex()


def test_concurrent_orders_each_get_their_own_202_once_logged(api, tmp_path):
    # Requests at the same time commit together (one group per commit); each is answered with
    # its own entry, already on disk, and the same order sent twice at once is logged once.
    k = open_interval()
    commits = LOG_COMMIT_SECONDS.collect()[0].samples
    before = next(s.value for s in commits if s.name.endswith("_count"))
    bodies = [body(client_order_id=i, interval=k) for i in range(40)] + [
        body(client_order_id=0, interval=k)
    ]
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda b: api.post("/orders", json=b), bodies))
    assert [a.status_code for a in answers] == [202] * len(bodies), answers[0].text
    assert answers[-1].json() == answers[0].json()
    seqs = {a.json()["log_seq"] for a in answers}
    log = OrderLog(DataDir(tmp_path).orders())
    assert len(seqs) == 40 and log.counts() == {"pending": 40}
    for a in answers:
        assert (
            log.order(BOB.ss58_address, a.json()["client_order_id"])["seq"] == a.json()["log_seq"]
        )
    commits = LOG_COMMIT_SECONDS.collect()[0].samples
    assert next(s.value for s in commits if s.name.endswith("_count")) - before <= 40


def test_interval_cap(tmp_path):
    app = create_app(Settings(data_dir=tmp_path, max_orders_per_interval=2), chain=FakeChainView())
    # One interval for the whole test: body()'s default moves on when the clock crosses an
    # interval's boundary between two orders (a third order then found a fresh interval).
    k = open_interval()
    with TestClient(app) as api:
        for i in range(2):
            assert api.post("/orders", json=body(client_order_id=i, interval=k)).status_code == 202
        full = api.post("/orders", json=body(client_order_id=5, interval=k))
        assert error_of(full) == (422, "IntervalFull")
        assert api.post("/orders", json=body(client_order_id=6, interval=k + 1)).status_code == 202


def test_bids_waiting_for_relay_count_against_funds(api):
    # Charlie has 100_000 units: one bid of 1000 Wh at 60 holds 60_000; a second does not fit.
    assert api.post("/orders", json=body(CHARLIE, zone=1, price_ticks=60)).status_code == 202
    second = api.post("/orders", json=body(CHARLIE, client_order_id=2, zone=1, price_ticks=60))
    assert error_of(second) == (422, "InsufficientBalance")
    later = open_interval() + 1  # Charlie buys in the first: a seller in another interval
    offer = api.post(
        "/orders",
        json=body(CHARLIE, client_order_id=3, zone=1, interval=later, side="offer", source="wind"),
    )
    assert offer.status_code == 202  # offers hold nothing


def test_a_participant_buys_or_sells_in_an_interval_never_both(api, tmp_path):
    k = open_interval()
    assert api.post("/orders", json=body(interval=k)).status_code == 202
    offer = body(client_order_id=2, interval=k, side="offer", source="solar")
    refused = api.post("/orders", json=offer)
    assert error_of(refused) == (409, "SelfTrade") and "1 open bids" in refused.json()["detail"]
    elsewhere = body(client_order_id=3, interval=k + 1, side="offer", source="solar")
    assert api.post("/orders", json=elsewhere).status_code == 202
    # Once the bid's cancellation has reached the chain, Bob may sell in interval k; before,
    # the relayer would send the offer first (it sends orders before cancels).
    cancel = api.request(
        "DELETE", f"/orders/{BOB.ss58_address}/1", json=cancel_body(BOB, GENESIS, 1)
    )
    assert cancel.status_code == 202, cancel.text
    assert error_of(api.post("/orders", json=offer)) == (409, "SelfTrade")
    with transaction(DataDir(tmp_path).orders()) as c:
        c.execute("UPDATE cancels SET status = 'onchain', block_number = 5")
    assert api.post("/orders", json=offer).status_code == 202


def test_cancel(api):
    assert api.post("/orders", json=body()).status_code == 202
    bad = api.request(
        "DELETE", f"/orders/{BOB.ss58_address}/1", json=cancel_body(CHARLIE, GENESIS, 1)
    )
    assert error_of(bad) == (400, "BadSignature")
    unknown = api.request(
        "DELETE", f"/orders/{BOB.ss58_address}/77", json=cancel_body(BOB, GENESIS, 77)
    )
    assert error_of(unknown) == (404, "UnknownOrder")
    ok = api.request("DELETE", f"/orders/{BOB.ss58_address}/1", json=cancel_body(BOB, GENESIS, 1))
    assert ok.status_code == 202
    assert (
        api.request(
            "DELETE", f"/orders/{BOB.ss58_address}/1", json=cancel_body(BOB, GENESIS, 1)
        ).json()
        == ok.json()
    )
    assert api.get(f"/orders/{BOB.ss58_address}/1").json()["cancel_status"] == "pending"


def _index_orders(data: DataDir, interval: int, n: int) -> None:
    with transaction(data.index()) as c:
        for i in range(n):
            side = "bid" if i % 2 == 0 else "offer"
            c.execute(
                "INSERT INTO orders (order_id, owner, client_order_id, interval, side, quantity_wh,"
                " price_ticks, zone, source, renewable_only, status, placed_block)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 'open', 1)",
                (
                    i,
                    BOB.ss58_address,
                    str(i),
                    interval,
                    side,
                    100 + i,
                    50 + i % 7,
                    i % 2,
                    "grid_mix" if side == "bid" else "solar",
                ),
            )


def test_book_pagination_and_levels(api, tmp_path):
    _index_orders(DataDir(tmp_path), 5, 23)
    seen, cursor = [], None
    while True:
        page = api.get(
            "/intervals/5/book", params={"limit": 4, **({"cursor": cursor} if cursor else {})}
        ).json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(o["order_id"] for o in seen) == list(range(23))
    bids = [o for o in seen if o["side"] == "bid"]
    offers = [o for o in seen if o["side"] == "offer"]
    assert seen == bids + offers
    assert [o["price_ticks"] for o in bids] == sorted(
        (o["price_ticks"] for o in bids), reverse=True
    )
    assert [o["price_ticks"] for o in offers] == sorted(o["price_ticks"] for o in offers)
    full = api.get("/intervals/5/book", params={"zone": 1}).json()
    assert (
        all(o["zone"] == 1 for o in full["items"]) and full["bids"] == []
    )  # odd ids are offers in zone 1
    assert sum(level["quantity_wh"] for level in full["offers"]) == sum(
        100 + i for i in range(1, 23, 2)
    )
    assert api.get("/intervals/5/book", params={"cursor": "garbage!"}).status_code == 400


def test_not_found_and_listings(api):
    assert error_of(api.get("/intervals/5/clearing")) == (404, "NotCleared")
    assert error_of(api.get("/intervals/5/settlement")) == (404, "NotSettled")
    assert api.get("/clearings").json() == {"items": [], "next_cursor": None}
    assert error_of(api.get("/participants/xyz/balances")) == (400, "InvalidAccount")
    balances = api.get(f"/participants/{BOB.ss58_address}/balances").json()
    assert (
        balances["free"] == 10**9
        and balances["energy_wh"] == 1234
        and balances["free_brl"] == "10000.00000"
    )
    assert api.get("/").status_code == 200 and "WattChain" in api.get("/").text
    assert (
        api.get("/openapi.json").json()["paths"]["/orders"]["post"]["operationId"] == "place_order"
    )


def test_interval_progress_and_zone_flows(api, tmp_path):
    """Each interval's progress reads from the index and the scheduler's record, and a
    clearing's flows sum its trades by the sellers' and the buyers' zones."""
    data = DataDir(tmp_path)
    _index_orders(data, 5, 4)  # bids 0 and 2 in zone 0, offers 1 and 3 in zone 1
    with transaction(data.index()) as c:
        c.execute(
            "INSERT INTO clearings (interval, mechanism, volume_wh, matches, zone_prices,"
            " grid_fees_paid, block_number, block_hash) VALUES (5, 'uniform', 150, 2,"
            " '[{\"zone\": 0, \"price\": 55}]', '0', 9, '0x09')"
        )
        for bid, offer, q in ((0, 1, 100), (2, 3, 50)):
            c.execute(
                "INSERT INTO trades (interval, bid, offer, buyer, seller, quantity_wh,"
                " buyer_price, seller_price, block_number, block_hash)"
                " VALUES (5, ?, ?, ?, ?, ?, 55, 55, 9, '0x09')",
                (bid, offer, BOB.ss58_address, CHARLIE.ss58_address, q),
            )
        c.execute(
            "INSERT INTO voided_intervals (interval, orders, block_number, block_hash)"
            " VALUES (6, 3, 12, '0x0c')"
        )
        c.execute(
            "INSERT INTO intervals_settled (interval, participants, shortfall_wh, surplus_wh,"
            " block_number, block_hash) VALUES (4, 2, 0, 0, 8, '0x08')"
        )
        c.execute(
            "INSERT INTO orders (order_id, owner, client_order_id, interval, side, quantity_wh,"
            " price_ticks, zone, status, placed_block) VALUES (99, ?, '99', 7, 'bid', 1, 1, 0,"
            " 'open', 1)",
            (BOB.ss58_address,),
        )
    with transaction(data.ops()) as c:
        c.execute(
            "INSERT INTO clearing_attempts (interval, state, error, created_ms, updated_ms)"
            " VALUES (7, 'rejected', 'NotEquilibrium', 0, 0)"
        )
    rows = api.get("/intervals", params={"from_interval": 3, "to_interval": 7}).json()
    assert [(r["interval"], r["state"]) for r in rows] == [
        (3, "empty"),
        (4, "settled"),
        (5, "cleared"),
        (6, "voided"),
        (7, "rejected"),
    ]
    cleared = rows[2]
    assert (cleared["orders"], cleared["price"], cleared["volume_wh"]) == (4, 55, 150)
    assert rows[4]["error"] == "NotEquilibrium" and rows[3]["block_number"] == 12
    assert rows[0]["start_ms"] == 3 * PARAMS.interval_ms
    assert api.get("/intervals/5/clearing").json()["flows"] == [
        {"from_zone": 1, "to_zone": 0, "quantity_wh": 150}
    ]
    far = open_interval() + 5
    (last,) = api.get("/intervals", params={"from_interval": far, "to_interval": far}).json()
    assert last["state"] == "open" and last["orders"] == 0
    assert error_of(api.get("/intervals", params={"from_interval": 7, "to_interval": 3})) == (
        422,
        "InvalidRequest",
    )
    assert error_of(api.get("/intervals", params={"from_interval": 0, "to_interval": 200})) == (
        422,
        "InvalidRequest",
    )
