"""A node outage does not freeze the API (issue 11, "Node outage freezes the API"): with the node
refusing connections, or accepting them and never answering, `/health`, `/market` and
`POST /orders` answer within about a second each, many at once, from a real server. What the API
read before the outage is served (`stale`, `node_reachable: false`) and orders keep being logged;
what it never read gets 503 ChainUnavailable with Retry-After at once. No node binary: the real
ChainView against a silent socket, a closed port, and a scripted node that goes away."""

from __future__ import annotations

import contextlib
import gc
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import uvicorn
from prometheus_client import REGISTRY
from test_api_offline import BOB, CHARLIE, GENESIS, PARAMS, body

from api.app import create_app
from api.chainview import ChainView
from api.models import ErrorPublic
from chain import Balance, Chain
from market.settings import Settings

FAST_S = 2.0  # every answer comes within this, node or no node
THREADS = 8


class SilentNode:
    """A TCP port that accepts connections and never says a word."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.url = f"ws://127.0.0.1:{self.sock.getsockname()[1]}"
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        with contextlib.suppress(OSError):
            while True:
                self.held.append(self.sock.accept()[0])

    def close(self):
        for s in [*self.held, self.sock]:
            s.close()


def closed_port_url() -> str:
    s = socket.create_server(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"ws://127.0.0.1:{port}"


@contextlib.contextmanager
def serving(app, port: int):
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "the API did not start"
            time.sleep(0.02)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(10)


def timed(call):
    start = time.monotonic()
    response = call()
    return response, time.monotonic() - start


def concurrently(*calls):
    """Each call THREADS times at once: [(response, seconds)] per call."""
    with ThreadPoolExecutor(THREADS * len(calls)) as pool:
        futures = [[pool.submit(timed, call) for _ in range(THREADS)] for call in calls]
        return [[f.result() for f in group] for group in futures]


def assert_fast(results):
    slowest = max(seconds for _, seconds in results)
    assert slowest < FAST_S, f"an answer took {slowest:.2f} s"


def refused(reason: str = "ChainUnavailable") -> float:
    value = REGISTRY.get_sample_value("wattchain_orders_refused_total", {"reason": reason})
    return value or 0.0


def assert_unavailable(response):
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "ChainUnavailable"
    ErrorPublic.model_validate(response.json())
    assert int(response.headers["retry-after"]) >= 1


@pytest.mark.parametrize("node", ["silent", "closed"])
def test_no_node_at_all_no_request_waits(tmp_path, free_port, node):
    silent = SilentNode() if node == "silent" else None
    url = silent.url if silent else closed_port_url()
    view = ChainView(url, rpc_timeout_s=0.3).start()  # never connects: nothing read yet
    app = create_app(Settings(data_dir=tmp_path, node_url=url), chain=view)
    refused_before = refused()
    try:
        with serving(app, free_port()) as api:
            health, market, orders = concurrently(
                lambda: api.get("/health"),
                lambda: api.get("/market"),
                lambda: api.post("/orders", json=body(client_order_id=1)),
            )
            for results in (health, market, orders):
                assert_fast(results)
            for response, _ in health:
                assert response.status_code == 200
                assert response.json()["node_reachable"] is False
            for response, _ in market + orders:
                assert_unavailable(response)
            assert refused() == refused_before + THREADS
            assert "wattchain_api_node_reachable 0.0" in api.get("/metrics").text
    finally:
        if silent:
            silent.close()


class ScriptedNode:
    """Hands the view chain clients that answer like a node while `up`, and hang (then fail as a
    socket timeout does) once it is not. Connecting while it is down meets a silent socket."""

    def __init__(self, silent: SilentNode, hang_s: float = 2.0):
        self.up = True
        self.silent = silent
        self.hang_s = hang_s
        self.back = threading.Event()  # a hung read ends (failing) when the node comes back

    def go_down(self):
        self.back.clear()
        self.up = False

    def come_back(self):
        self.up = True
        self.back.set()

    def open_chain(self, url: str, rpc_timeout_s: float):
        if not self.up:
            return Chain(self.silent.url, connect_timeout_s=0, rpc_timeout_s=rpc_timeout_s)
        return _ScriptedChain(self)


class _ScriptedChain:
    genesis_hash = GENESIS

    def __init__(self, node: ScriptedNode):
        self.node = node

    def _answer(self, value):
        if not self.node.up:
            self.node.back.wait(self.node.hang_s)
            raise TimeoutError("timed out")  # what the socket of a hung node raises
        return value

    def connect(self, timeout_s=None):
        return self._answer(self)

    def close(self):
        pass

    def constant(self, module, name):
        return self._answer(10)

    def block_ms(self):
        return self._answer(20)

    def market_params(self, block_hash=None, interval=None):
        return self._answer(PARAMS)

    def participant_zone(self, account):
        return self._answer({BOB.ss58_address: 0}.get(account))

    def meters_of_source(self, account, source):
        return self._answer(1)

    def balance(self, account):
        return self._answer(Balance(10**9, 0, 0))

    def energy_balance(self, account):
        return self._answer(0)

    def best_number(self):
        return self._answer(12)

    def finalized_number(self):
        return self._answer(10)

    def timestamp_ms(self):
        return self._answer(0)


def test_with_the_node_gone_orders_are_taken_from_what_the_api_read(tmp_path, free_port):
    silent = SilentNode()
    node = ScriptedNode(silent)
    # Every cached value expires at once: the requests below all need the node.
    ttl = {f"{name}_ttl_s": 0.05 for name in ("params", "participant", "balance", "heads")}
    view = ChainView(
        "ws://scripted",
        rpc_timeout_s=0.3,  # connecting to the silent socket while down
        backoff_s=(0.1, 0.5),
        open_chain=node.open_chain,
        **ttl,
    ).start(wait_s=5)
    app = create_app(Settings(data_dir=tmp_path, order_margin_ms=4_000), chain=view)
    try:
        with serving(app, free_port()) as api:
            assert api.post("/orders", json=body(client_order_id=1)).status_code == 202
            market = api.get("/market").json()
            assert market["node_reachable"] and not market["stale"]
            assert market["best_block"] == 12

            node.go_down()  # every read now hangs; a new connection meets a silent socket
            time.sleep(0.1)
            ids = iter(range(100, 200))
            health, markets, orders = concurrently(
                lambda: api.get("/health"),
                lambda: api.get("/market"),
                lambda: api.post("/orders", json=body(client_order_id=next(ids))),
            )
            for results in (health, markets, orders):
                assert_fast(results)
            assert all(r.status_code == 200 for r, _ in health + markets)
            assert all(r.status_code == 202 for r, _ in orders), [r.text for r, _ in orders]
            # The view knows the node away by now (a read it started gave up), or does shortly
            # (its readers' own reads give up).
            deadline = time.monotonic() + 3
            while (health := api.get("/health").json())["node_reachable"]:
                assert time.monotonic() < deadline, "the API did not notice the node is away"
                time.sleep(0.05)
            assert health["node_last_seen_ms"] > 0
            market = api.get("/market").json()
            assert market["stale"] and not market["node_reachable"]
            assert market["genesis_hash"] == "0x" + GENESIS.hex() and market["best_block"] == 12
            # Charlie's registration was never read: that needs the node, and, the node being
            # known away, says so without even waiting for it.
            response, seconds = timed(
                lambda: api.post("/orders", json=body(CHARLIE, client_order_id=1, zone=1))
            )
            assert_unavailable(response)
            assert seconds < 0.5

            node.come_back()  # a reader reconnects by itself, no request waits for it
            deadline = time.monotonic() + 5
            while not api.get("/health").json()["node_reachable"]:
                assert time.monotonic() < deadline, "the API did not reconnect"
                time.sleep(0.1)
            assert not api.get("/market").json()["stale"]
    finally:
        silent.close()


def test_what_a_connection_holds_is_kept_out_of_the_collectors_full_passes():
    """A real connection's metadata and type registry (about 140,000 objects) live as long as
    it does. The collector's full passes walked them every 5 s under `make loadtest` and
    stopped the API for 160-210 ms each time; once connected, the view puts them out of its
    reach (frozen, still freed by reference counting)."""
    silent = SilentNode()
    node = ScriptedNode(silent)
    held: list[list] = []

    def open_chain(url: str, rpc_timeout_s: float):
        chain = node.open_chain(url, rpc_timeout_s)
        chain.metadata = [[] for _ in range(1_000)]  # objects the collector tracks
        held.append(chain.metadata)
        return chain

    view = ChainView("ws://scripted", open_chain=open_chain).start(wait_s=5)
    try:
        assert held, "the view never connected"
        tracked = {id(obj) for obj in gc.get_objects()}  # generations 0-2, not the frozen
        assert not any(id(obj) in tracked for obj in held[0])
    finally:
        view.close()
        silent.close()
        gc.unfreeze()


def test_a_value_in_steady_use_is_read_again_before_it_expires():
    """A bidder's balance, asked for in the last quarter of its cache time, is served from the
    cache at once while a reader reads it anew: no request waits for the node for it (groups
    of orders that did were held up to 100 ms under `make loadtest`)."""
    silent = SilentNode()
    node = ScriptedNode(silent)
    reads: list[float] = []
    slow_read = threading.Event()

    class CountingChain(_ScriptedChain):
        def balance(self, account):
            reads.append(time.monotonic())
            if len(reads) > 1:
                slow_read.wait(5)  # the background read takes its time
            return Balance(10**9 + len(reads), 0, 0)

    view = ChainView(
        "ws://scripted", balance_ttl_s=1.0, open_chain=lambda url, t: CountingChain(node)
    ).start(wait_s=5)
    try:
        first = view.balance(BOB.ss58_address)
        assert first.free == 10**9 + 1
        assert view.balance(BOB.ss58_address) == first and len(reads) == 1  # young: no read
        time.sleep(0.8)  # past REFRESH_AT (0.75) of the 1 s
        started = time.monotonic()
        assert view.balance(BOB.ss58_address) == first  # served from the cache...
        assert time.monotonic() - started < 0.1  # ...at once, the read going on meanwhile
        deadline = time.monotonic() + 2
        while len(reads) < 2:
            assert time.monotonic() < deadline, "no reader read the value anew"
            time.sleep(0.01)
        assert len(reads) == 2  # one read under way, shared: not one per request
        slow_read.set()
        deadline = time.monotonic() + 2
        while view.balance(BOB.ss58_address).free != 10**9 + 2:
            assert time.monotonic() < deadline, "the background read never reached the cache"
            time.sleep(0.01)
    finally:
        slow_read.set()
        view.close()
        silent.close()
