"""A small Python client for the WattChain API. Orders are signed here, with the owner's key;
the API only ever sees the signature.

    from api.client import Client, keypair
    client = Client("http://127.0.0.1:8000")
    client.place_order(keypair("//Bob"), "bid", quantity_wh=1500, price_ticks=80)

The interval defaults to the next one still open; client_order_id defaults to a fresh one.
Many orders at once, one request (POST /orders/batch), one result each:

    results = client.place_orders(keypair("//Bob"), [
        {"side": "bid", "quantity_wh": 1500, "price_ticks": 80},
        {"side": "offer", "quantity_wh": 500, "price_ticks": 95, "source": "solar"},
    ])  # each the 202 body, or an OrderRefused (returned, not raised)
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import httpx

from market import OrderSpec, keypair, sign_cancel, sign_order
from market.accounts import Signer

__all__ = ["Client", "OrderRefused", "keypair", "order_body", "cancel_body"]

_ids = itertools.count()
_ids_lock = threading.Lock()


def fresh_client_order_id() -> int:
    """Unique per process and increasing: microseconds since the epoch, bumped on collision."""
    with _ids_lock:
        return time.time_ns() // 1_000 * 1_000 + next(_ids) % 1_000


class OrderRefused(Exception):
    """The API said no (4xx/5xx); `error` is the reason (a pallet error name where one applies)."""

    def __init__(self, status: int, error: str, detail: str):
        self.status, self.error, self.detail = status, error, detail
        super().__init__(f"{status} {error}: {detail}")


def order_body(signer: Signer, genesis_hash: bytes, spec: OrderSpec) -> dict:
    """The POST /orders body for `spec`, signed by `signer` (the owner)."""
    signed = sign_order(signer, genesis_hash, spec)
    return {"owner": signed.owner, **spec.as_dict(), "signature": "0x" + signed.signature.hex()}


def cancel_body(signer: Signer, genesis_hash: bytes, client_order_id: int) -> dict:
    return {"signature": "0x" + sign_cancel(signer, genesis_hash, client_order_id).signature.hex()}


class Client:
    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        *,
        timeout_s: float = 10.0,
        http: httpx.Client | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.http = http or httpx.Client(base_url=self.base_url, timeout=timeout_s)
        self._market: dict | None = None

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _json(self, response: httpx.Response):
        if response.status_code >= 400:
            try:
                body = response.json()
                raise OrderRefused(
                    response.status_code,
                    body.get("error", "Error"),
                    body.get("detail", response.text),
                )
            except (ValueError, AttributeError):
                raise OrderRefused(response.status_code, "Error", response.text) from None
        return response.json()

    def get(self, path: str, **params):
        return self._json(
            self.http.get(path, params={k: v for k, v in params.items() if v is not None})
        )

    # -- the market --------------------------------------------------------------------------
    def market(self, *, refresh: bool = True) -> dict:
        if refresh or self._market is None:
            self._market = self.get("/market")
        return self._market

    @property
    def genesis_hash(self) -> bytes:
        return bytes.fromhex(self.market(refresh=self._market is None)["genesis_hash"][2:])

    def next_open_interval(self) -> int:
        return self.market()["next_open_interval"]

    # -- orders ------------------------------------------------------------------------------
    def order_spec(
        self,
        side: str,
        *,
        quantity_wh: int,
        price_ticks: int,
        interval: int | None = None,
        zone: int = 0,
        source: str | None = None,
        renewable_only: bool = False,
        client_order_id: int | None = None,
    ) -> OrderSpec:
        """An order's content, with the defaults filled in: the next open interval, a fresh
        client_order_id, `grid_mix` for a bid and `solar` for an offer."""
        return OrderSpec(
            client_order_id=fresh_client_order_id() if client_order_id is None else client_order_id,
            interval=self.next_open_interval() if interval is None else interval,
            side=side,
            quantity_wh=quantity_wh,
            price_ticks=price_ticks,
            zone=zone,
            source=source or ("grid_mix" if side == "bid" else "solar"),
            renewable_only=renewable_only,
        )

    def place_order(
        self,
        signer: Signer,
        side: str,
        *,
        quantity_wh: int,
        price_ticks: int,
        interval: int | None = None,
        zone: int = 0,
        source: str | None = None,
        renewable_only: bool = False,
        client_order_id: int | None = None,
    ) -> dict:
        """Sign and send an order; returns the 202 body (order_ref, log_seq, interval, ...)."""
        spec = self.order_spec(
            side,
            quantity_wh=quantity_wh,
            price_ticks=price_ticks,
            interval=interval,
            zone=zone,
            source=source,
            renewable_only=renewable_only,
            client_order_id=client_order_id,
        )
        return self.send_order(order_body(signer, self.genesis_hash, spec))

    def send_order(self, body: dict) -> dict:
        return self._json(self.http.post("/orders", json=body))

    def place_orders(
        self, signer: Signer, orders: Iterable[Mapping[str, Any]]
    ) -> list[dict | OrderRefused]:
        """Sign and send several orders of one owner in one request (POST /orders/batch); each
        order is a dict of place_order's keyword arguments, `side` included. Returns one result
        per order, in order (see send_orders)."""
        genesis = self.genesis_hash
        interval = None
        bodies = []
        for order in orders:
            fields = dict(order)
            if fields.get("interval") is None:  # one look-up for the batch
                interval = self.next_open_interval() if interval is None else interval
                fields["interval"] = interval
            bodies.append(order_body(signer, genesis, self.order_spec(**fields)))
        return self.send_orders(bodies)

    def send_orders(self, bodies: list[dict]) -> list[dict | OrderRefused]:
        """POST /orders/batch with signed order bodies (order_body; any owners, at most the
        API's max_batch_orders). One result per body, in order: the 202 body of an order logged,
        or an OrderRefused (returned, not raised) with what POST /orders would have refused it
        with. Raises OrderRefused when the batch as a whole is refused (too many orders, 413)."""
        results = self._json(self.http.post("/orders/batch", json={"orders": bodies}))["results"]
        return [
            r["body"]
            if r["status"] < 300
            else OrderRefused(
                r["status"], r["body"].get("error", "Error"), r["body"].get("detail", "")
            )
            for r in results
        ]

    def cancel_order(self, signer: Signer, client_order_id: int) -> dict:
        return self._json(
            self.http.request(
                "DELETE",
                f"/orders/{signer.ss58_address}/{client_order_id}",
                json=cancel_body(signer, self.genesis_hash, client_order_id),
            )
        )

    def order(self, owner: str, client_order_id: int) -> dict:
        return self.get(f"/orders/{owner}/{client_order_id}")

    # -- reading -----------------------------------------------------------------------------
    def book(self, interval: int, zone: int | None = None, **params) -> dict:
        return self.get(f"/intervals/{interval}/book", zone=zone, **params)

    def clearing(self, interval: int) -> dict:
        return self.get(f"/intervals/{interval}/clearing")

    def clearings(self, **params) -> dict:
        return self.get("/clearings", **params)

    def interval_settlement(self, interval: int) -> dict:
        return self.get(f"/intervals/{interval}/settlement")

    def balances(self, account: str) -> dict:
        return self.get(f"/participants/{account}/balances")

    def positions(self, account: str, **params) -> dict:
        return self.get(f"/participants/{account}/positions", **params)

    def settlements(self, account: str, **params) -> dict:
        return self.get(f"/participants/{account}/settlements", **params)

    def report(self, from_interval: int, to_interval: int, account: str | None = None) -> dict:
        return self.get(
            "/reports/clearing-house",
            from_interval=from_interval,
            to_interval=to_interval,
            account=account,
        )

    def all_pages(self, path: str, **params) -> list:
        """Every item of a cursor-paginated listing."""
        items, cursor = [], None
        while True:
            page = self.get(path, cursor=cursor, **params)
            items += page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return items

    def stream(
        self, *, after: int | None = None, timeout_s: float | None = None
    ) -> Iterator[tuple[str, dict]]:
        """(event, data) pairs from the server-sent event stream, until timeout_s passes."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        params = {} if after is None else {"after": after}
        with self.http.stream(
            "GET", "/stream", params=params, timeout=httpx.Timeout(5.0, read=20.0)
        ) as response:
            event, data = None, []
            for line in response.iter_lines():
                if deadline is not None and time.monotonic() > deadline:
                    return
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())
                elif line == "" and event and data:
                    yield event, json.loads("\n".join(data))
                    event, data = None, []
