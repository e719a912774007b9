"""The relayer's bookkeeping against a scripted chain: batches, entries the pallet refuses one by
one, the split of a batch that fails whole, pool refusals, drops and recovery. (The real pallet's
per-entry refusals are exercised against a node in tests/e2e/test_market_e2e.py.)"""

from __future__ import annotations

import time

from chain import ChainError, ChainOrder, Event, PendingTx, Receipt
from market import MarketParams, OrderSpec, dev_keypair, sign_order, ss58
from offchain.relayer import Relayer
from store import DataDir
from store.orderlog import OrderLog

GENESIS = bytes(32)
BOB = dev_keypair("Bob")
PARAMS = MarketParams(20_000, 10_000, 1, 10_000, 10**9, 95, 30, 20_000, "uniform")


class ScriptedChain:
    """Decides each extrinsic's fate with `verdict(function, items) -> None | error name`."""

    def __init__(
        self,
        verdict=lambda f, items: None,
        refuse=lambda f, items: None,
        refuse_entry=lambda item: None,
        light=False,
    ):
        self.verdict, self.refuse, self.refuse_entry = verdict, refuse, refuse_entry
        # light: the watcher tells only where a tx landed, as the relayer's real one does; the
        # relayer then reads its orders (client_order_ids, orders) or asks for the events.
        self.light = light
        self.specs: dict[int, tuple[str, OrderSpec]] = {}
        self.full: dict[str, Receipt] = {}
        self.events_read = 0
        self.sent: list[tuple[str, list]] = []
        self.on_chain: dict[tuple[str, int], int] = {}
        self.next_id = 0
        self.landed: list[Receipt] = []
        self.drop_next = False
        self.lose_next = False  # the next extrinsic vanishes with the node's pool
        self.opened = 1  # connections made (a new one: maybe to a restarted node)

    def market_params(self, block_hash=None, interval=None):
        return PARAMS

    def block_ms(self):
        return 2_000

    def submit_nowait(self, signer, function, params, **_):
        items = _entries(function, params)
        reason = self.refuse(function, items)
        if reason:
            raise ChainError("InvalidTransaction", reason)
        self.sent.append((function, items))
        tx = PendingTx(
            f"0x{len(self.sent):064x}", signer.ss58_address, len(self.sent), function, "0x", 0, 10
        )
        if self.drop_next:
            self.drop_next = False
            self.dropped = tx
            return tx
        if self.lose_next:
            self.lose_next = False
            return tx
        error = self.verdict(function, items)
        events = []
        if error is None and function == "place_orders_relayed":
            for o in items:
                key = (o["owner"], o["spec"]["client_order_id"])
                refused = self.refuse_entry(o)
                if refused:
                    event = {"owner": key[0], "client_order_id": key[1], "error": refused}
                    events.append(Event("EnergyTrading", "RelayedOrderRefused", event, 1, 0))
                elif key not in self.on_chain:
                    self.on_chain[key] = self.next_id
                    self.specs[self.next_id] = (o["owner"], o["order_spec"])
                    events.append(
                        Event(
                            "EnergyTrading",
                            "OrderPlaced",
                            {
                                "owner": o["owner"],
                                "order_id": self.next_id,
                                "client_order_id": key[1],
                            },
                            1,
                            0,
                        )
                    )
                    self.next_id += 1
        err = None if error is None else ChainError(error, pallet="EnergyTrading")
        receipt = Receipt(tx.tx_hash, "0xblock", 5, 1, error is None, err, events)
        self.full[tx.tx_hash] = receipt
        if self.light:
            receipt = Receipt(tx.tx_hash, "0xblock", 5, 1, True, None, [], events_read=False)
        self.landed.append(receipt)
        return tx

    def with_events(self, receipt, tx):
        self.events_read += 1
        return self.full[tx.tx_hash]

    def orders(self, ids, block_hash=None):
        return [ChainOrder(i, *self.specs[i], "open") for i in ids if i in self.specs]

    def watcher(self, finality=False, events=True):
        chain = self

        class W:
            def add(self, tx):
                pass

            def poll(self):
                ready, chain.landed = chain.landed, []
                dropped = []
                if getattr(chain, "dropped", None):
                    dropped = [ChainError("Dropped", "gone", tx_hash=chain.dropped.tx_hash)]
                    chain.dropped = None
                return ready, dropped

        return W()

    def refusals(self, receipt, event):
        return {
            (e.attributes["owner"], e.attributes["client_order_id"]): e.attributes["error"]
            for e in receipt.find("EnergyTrading", event)
        }

    def client_order_id(self, owner, coid):
        return self.on_chain.get((owner, coid))

    def client_order_ids(self, keys, block_hash=None):
        return [self.on_chain.get(key) for key in keys]


def _entries(function: str, args: bytes) -> list[dict]:
    """The relayed batch the relayer encoded, as plain dicts: a length (compact, here one byte:
    batches stay under 64), then fixed-size entries."""
    count, body = args[0] >> 2, args[1:]
    size = 32 + 37 + 64 if function == "place_orders_relayed" else 32 + 8 + 64
    assert args[0] & 3 == 0 and len(body) == count * size
    entries = []
    for i in range(count):
        entry = body[i * size : (i + 1) * size]
        owner = ss58(entry[:32])
        if function == "place_orders_relayed":
            spec = OrderSpec.decode(entry[32:69])
            entries.append(
                {
                    "owner": owner,
                    "spec": {"client_order_id": spec.client_order_id},
                    "order_spec": spec,
                }
            )
        else:
            cid = int.from_bytes(entry[32:40], "little")
            entries.append({"owner": owner, "client_order_id": cid})
    return entries


def log_orders(data, n, interval=None, start=0):
    log = OrderLog(data.orders())
    interval = (
        interval
        if interval is not None
        else PARAMS.first_open_interval(time.time_ns() // 1_000_000) + 1
    )
    for i in range(start, start + n):
        signed = sign_order(BOB, GENESIS, OrderSpec(i, interval, "bid", 100 + i, 50))
        log.append_order(BOB.ss58_address, signed.spec, "0x" + signed.signature.hex())
    return log


def run(relayer, rounds=10):
    for _ in range(rounds):
        relayer.step()


def test_batches_land_and_get_their_chain_ids(tmp_path):
    data = DataDir(tmp_path)
    log = log_orders(data, 10)
    chain = ScriptedChain()
    relayer = Relayer(data, chain, dev_keypair("Dave"), partial_lead_ms=None, batch=4, in_flight=2)
    run(relayer)
    assert [len(items) for _, items in chain.sent] == [4, 4, 2]
    assert log.counts() == {"onchain": 10}
    assert log.order(BOB.ss58_address, 7)["order_id"] == chain.on_chain[(BOB.ss58_address, 7)]


def test_a_batch_whose_orders_are_all_on_chain_as_sent_needs_no_events(tmp_path):
    data = DataDir(tmp_path)
    log = log_orders(data, 10)
    chain = ScriptedChain(light=True)
    run(Relayer(data, chain, dev_keypair("Dave"), partial_lead_ms=None, batch=4, in_flight=2))
    assert log.counts() == {"onchain": 10}
    assert log.order(BOB.ss58_address, 7)["order_id"] == chain.on_chain[(BOB.ss58_address, 7)]
    assert chain.events_read == 0


def test_an_order_whose_client_id_another_order_holds_is_not_taken_for_it(tmp_path):
    """Batch poisoning seen from the relayer's cheap check: the owner's client order id is on
    chain, but for another order (other content). The relayer must not mark its entry with that
    order's id: it reads the block's events, and the pallet's refusal names the entry."""
    data = DataDir(tmp_path)
    log = log_orders(data, 5)
    interval = log.order(BOB.ss58_address, 3)["interval"]

    def conflicting(o):
        return "ClientOrderIdReused" if o["spec"]["client_order_id"] == 3 else None

    chain = ScriptedChain(refuse_entry=conflicting, light=True)
    chain.on_chain[(BOB.ss58_address, 3)] = 99
    chain.specs[99] = (BOB.ss58_address, OrderSpec(3, interval, "bid", 1, 51))
    run(Relayer(data, chain, dev_keypair("Dave"), partial_lead_ms=None, batch=8))
    assert chain.events_read == 1
    assert log.counts() == {"onchain": 4, "rejected": 1}
    assert log.order(BOB.ss58_address, 3)["error"] == "ClientOrderIdReused"
    assert log.order(BOB.ss58_address, 3)["order_id"] is None


def test_a_failed_batch_is_split_and_only_the_bad_order_rejected(tmp_path):
    data = DataDir(tmp_path)
    log = log_orders(data, 5)

    def bad(f, items):
        if any(o["spec"]["client_order_id"] == 3 for o in items):
            return "InsufficientBalance"
        return None

    chain = ScriptedChain(verdict=bad)
    run(Relayer(data, chain, dev_keypair("Dave"), partial_lead_ms=None, batch=8))
    assert [len(items) for _, items in chain.sent] == [5, 1, 1, 1, 1, 1]
    assert log.counts() == {"onchain": 4, "rejected": 1}
    assert log.order(BOB.ss58_address, 3)["error"] == "InsufficientBalance"


def test_an_entry_the_pallet_refuses_is_rejected_alone_and_the_batch_lands(tmp_path):
    data = DataDir(tmp_path)
    log = log_orders(data, 5)

    def conflicting(o):
        return "ClientOrderIdReused" if o["spec"]["client_order_id"] == 3 else None

    chain = ScriptedChain(refuse_entry=conflicting)
    run(Relayer(data, chain, dev_keypair("Dave"), partial_lead_ms=None, batch=8))
    assert [len(items) for _, items in chain.sent] == [5]  # no split, no resend
    assert log.counts() == {"onchain": 4, "rejected": 1}
    assert log.order(BOB.ss58_address, 3)["error"] == "ClientOrderIdReused"
    assert log.order(BOB.ss58_address, 4)["order_id"] == chain.on_chain[(BOB.ss58_address, 4)]


def test_pool_refusal_of_a_batch_splits_it_and_a_dropped_tx_is_resent(tmp_path):
    data = DataDir(tmp_path)
    log = log_orders(data, 3)
    chain = ScriptedChain(refuse=lambda f, items: "ExhaustsResources" if len(items) > 1 else None)
    chain.drop_next = False
    run(Relayer(data, chain, dev_keypair("Dave"), partial_lead_ms=None, batch=8))
    assert log.counts() == {"onchain": 3}
    log_orders(data, 1, start=10)
    chain2 = ScriptedChain()
    chain2.drop_next = True
    run(Relayer(data, chain2, dev_keypair("Dave"), partial_lead_ms=None, batch=8))
    assert log.counts() == {"onchain": 4} and len(chain2.sent) == 2  # dropped once, resent once


def test_batches_in_flight_when_the_node_restarted_are_resent_at_once(tmp_path):
    """A restarted node has lost its pool and the batch in it. Found dropped only at the end of
    its mortality (two minutes), its orders would miss their gates: it is resent as soon as the
    relayer is connected again."""
    data = DataDir(tmp_path)
    log = log_orders(data, 3)
    chain = ScriptedChain()
    chain.lose_next = True
    relayer = Relayer(data, chain, dev_keypair("Dave"), partial_lead_ms=None, batch=8)
    run(relayer, rounds=3)
    assert log.counts() == {"submitted": 3} and len(chain.sent) == 1  # nothing says it is gone
    chain.opened += 1  # connected again, to the restarted node
    run(relayer, rounds=3)
    assert log.counts() == {"onchain": 3} and len(chain.sent) == 2


def test_late_orders_are_refused_without_spoiling_a_batch(tmp_path):
    data = DataDir(tmp_path)
    current = PARAMS.interval_at(time.time_ns() // 1_000_000)
    log = log_orders(data, 2, interval=current - 1)
    log_orders(data, 2, start=5)
    chain = ScriptedChain()
    run(Relayer(data, chain, dev_keypair("Dave"), partial_lead_ms=None))
    assert log.counts() == {"onchain": 2, "rejected": 2}
    assert log.order(BOB.ss58_address, 0)["error"] == "GateClosed"


def test_recovery_of_submitted_entries(tmp_path):
    data = DataDir(tmp_path)
    log = log_orders(data, 2)
    seqs = [o.seq for o in log.pending_orders(10)]
    log.mark_submitted("orders", seqs, "0xdead")  # a previous run sent them, then died
    chain = ScriptedChain()
    chain.on_chain[(BOB.ss58_address, 0)] = 42  # one of them made it
    run(Relayer(data, chain, dev_keypair("Dave"), partial_lead_ms=None))
    assert log.order(BOB.ss58_address, 0)["order_id"] == 42
    assert log.counts() == {"onchain": 2}
    assert [len(items) for _, items in chain.sent] == [1]  # only the other one is resent


def test_a_step_commits_its_writes_together(tmp_path):
    """Each batch sent is marked submitted, and each landed one on chain, in one transaction a
    step (one wait for the log's write lock and one fsync), not one a batch."""
    data = DataDir(tmp_path)
    log = log_orders(data, 10)
    chain = ScriptedChain()
    relayer = Relayer(data, chain, dev_keypair("Dave"), partial_lead_ms=None, batch=2, in_flight=5)
    commits: list[str] = []
    data.orders().set_trace_callback(
        lambda sql: commits.append(sql) if sql.strip().upper() == "COMMIT" else None
    )
    relayer.step()
    assert len(chain.sent) == 5 and log.counts() == {"submitted": 10}
    assert len(commits) == 1
    commits.clear()
    relayer.step()
    assert log.counts() == {"onchain": 10}
    assert len(commits) == 1


def test_a_batch_not_yet_full_waits_for_the_end_of_the_slot_once_a_slot(tmp_path):
    """Full batches go at once; what is left goes in one batch a slot, just before the next
    block begins (blocks begin on the slot's boundaries: 2 s here), not in a small batch at
    every step: each batch costs the block its own weight."""
    data = DataDir(tmp_path)
    log = log_orders(data, 6)
    chain = ScriptedChain()
    now = [10_500]  # 1.5 s into the slot that began at 10,000 ms
    relayer = Relayer(data, chain, dev_keypair("Dave"), batch=4, in_flight=4, clock=lambda: now[0])
    relayer.step()
    assert [len(items) for _, items in chain.sent] == [4]  # the full one; 2 wait
    now[0] = 11_700  # 300 ms before the next block: within PARTIAL_BATCH_LEAD_MS
    relayer.step()
    assert [len(items) for _, items in chain.sent] == [4, 2]
    log_orders(data, 1, start=6)
    now[0] = 11_800
    relayer.step()
    assert len(chain.sent) == 2  # the slot's partial batch has gone; the next slot's turn
    now[0] = 12_100
    relayer.step()
    assert len(chain.sent) == 2
    now[0] = 13_650
    run(relayer, rounds=2)
    assert [len(items) for _, items in chain.sent] == [4, 2, 1]
    assert log.counts() == {"onchain": 7}
