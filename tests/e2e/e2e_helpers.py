"""Helpers for the tests that run against a real node."""

from __future__ import annotations

import shutil
import time
from contextlib import contextmanager
from pathlib import Path

from chain import Chain, ChainError, Newcomer, onboard
from market import UNITS_PER_BRL, keypair, now_ms
from meter_bridge import Accreditation, MeterKey
from meter_bridge.reading import MeterReading, RawReading

OPERATOR = "//Alice"
DISTRIBUTOR = "//Ferdie"  # accredits meters
# The tests' meters are rated 10 MW: the dev chain's intervals last seconds, and the simulated
# sites run hundreds of times faster than real time.
TEST_RATED_W = 10_000_000
RELAYER = "//Bob//stash"  # pays the fees of the readings tests submit themselves


def wait_until(predicate, timeout_s: float, what: str, poll_s: float = 0.25):
    """Poll until predicate() returns something truthy; return it."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(poll_s)


def setup_participants(
    chain: Chain,
    uris: list[str],
    zone: int = 0,
    fund_brl: int = 1_000,
    meters: dict[str, str] | None = None,
    rated_power_w: int = TEST_RATED_W,
) -> None:
    """Register (zone) and fund as the operator, and accredit meters (owner uri -> meter public
    key hex) as the distributor."""
    meters = meters or {}
    onboard(
        chain,
        keypair(OPERATOR),
        keypair(DISTRIBUTOR),
        [
            Newcomer(
                keypair(uri).ss58_address,
                zone,
                fund_brl * UNITS_PER_BRL,
                meter=meters.get(uri),
                rated_power_w=rated_power_w,
            )
            for uri in uris
        ],
    )


def wait_for_gate(
    chain: Chain, interval: int, *, finalized: bool = True, timeout_s: float = 60
) -> str:
    """Until a (finalized) block's timestamp has passed the interval's gate closure; returns that
    block's hash."""
    gate = chain.market_params().gate_closure(interval)

    def passed():
        block = chain.finalized_hash() if finalized else chain.block_hash(chain.best_number())
        return block if chain.timestamp_ms(block) >= gate else None

    return wait_until(passed, timeout_s, f"gate closure of interval {interval}")


def accreditation(chain: Chain, key: MeterKey) -> Accreditation:
    """What the meter signs under on this chain now: its genesis hash and the meter's epoch."""
    return Accreditation(chain.genesis_hash, chain.meter_epoch(key.public_key_hex))


def raw(import_wh: int, export_wh: int) -> RawReading:
    return RawReading(
        model="sdm630", import_wh=import_wh, export_wh=export_wh, power_w=0, timestamp_ms=now_ms()
    )


def submit_reading(chain: Chain, reading: MeterReading) -> str | None:
    """Submit a signed reading as the relayer; the pallet's error name, or None if accepted."""
    params = Chain.reading_params(
        reading.meter,
        reading.epoch,
        reading.interval,
        reading.counter,
        reading.import_wh,
        reading.export_wh,
        reading.signature,
    )
    try:
        chain.submit(keypair(RELAYER), "submit_reading", params)
    except ChainError as exc:
        return exc.name
    return None


# Screenshots of the web app's pages, kept after the run (the folder is git-ignored).
REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
AXE = REPO / "api" / "web" / "node_modules" / "axe-core" / "axe.min.js"


@contextmanager
def browser_page(width: int = 1280, height: int = 1000):
    """A page in Debian's Chromium driven by Playwright (its own browsers are not downloaded:
    the machines are offline). Errors in the page's scripts fail the test."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "chromium is installed by `make setup` (Debian package chromium)"
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.on("pageerror", lambda e: errors.append(str(e)))
            # The accessibility checker, in every page before its own scripts: the app's
            # Content-Security-Policy refuses scripts injected later, as it should.
            page.add_init_script(path=str(AXE))
            yield page
        finally:
            browser.close()
    assert not errors, f"errors in the page's scripts: {errors}"


def screenshot(page, name: str) -> Path:
    """Saves the whole page as test-artifacts/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


AXE = (
    Path(__file__).resolve().parents[2] / "api" / "web" / "node_modules" / "axe-core" / "axe.min.js"
)


def accessibility_problems(page) -> list[str]:
    """What axe-core (installed with the web app's packages, loaded by `browser_page`) finds
    against WCAG 2 A and AA on the page as it is now: contrast, labels, names, keyboard access.
    Serious and critical only, one line each."""
    violations = page.evaluate(
        "async () => (await axe.run(document,"
        " {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa']}}))"
        ".violations.map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))"
    )
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {v['nodes']}"
        for v in violations
        if v["impact"] in ("serious", "critical")
    ]
