"""Order entry through a node outage: while the node is down the API keeps taking orders it can
judge from what it knew (parameters, the owner's registration, its funds), logs them, and the
relayer puts them on chain once the node is back. Nothing acknowledged is lost."""

from __future__ import annotations

from e2e_helpers import setup_participants, wait_until

from api.client import Client
from chain import Chain
from market import keypair, now_ms
from wattchain.node import DevNode, free_port
from wattchain.processes import start_api, start_workers, wait_http

TRADER = "//Outage/trader"


def test_orders_taken_while_the_node_is_down_reach_it_later(node_binary, tmp_path):
    node = DevNode(
        node_binary, base_path=tmp_path / "chain", log_path=tmp_path / "logs" / "node.log"
    ).start()
    port = free_port()
    api = workers = None
    chain = Chain(node.url, retry_s=60).connect()
    try:
        setup_participants(chain, [TRADER])
        api = start_api(tmp_path, node.url, port, tmp_path / "logs" / "api.log")
        wait_http(f"http://127.0.0.1:{port}/health", 90, api)
        client = Client(f"http://127.0.0.1:{port}")
        trader = keypair(TRADER)
        k = chain.market_params().first_open_interval(now_ms(), 30_000) + 1
        before = client.place_order(trader, "bid", quantity_wh=100, price_ticks=50, interval=k)

        node.stop()
        during = [
            client.place_order(trader, "bid", quantity_wh=100 + i, price_ticks=50, interval=k)
            for i in range(3)
        ]
        assert all(r["status"] == "accepted" for r in during)

        node.start()
        workers = start_workers(tmp_path, node.url, tmp_path / "logs" / "workers.log")
        for accepted in [before] + during:
            wait_until(
                lambda accepted=accepted: (
                    chain.client_order_id(trader.ss58_address, accepted["client_order_id"])
                    is not None
                ),
                90,
                f"order {accepted['client_order_id']} on chain",
            )
        assert chain.book_len(k) == 4
    finally:
        for child in (api, workers):
            if child is not None:
                child.stop()
        chain.close()
        node.stop()
