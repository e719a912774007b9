"""Meter-reading ingest: once per market interval, read every configured meter over Modbus, have
the reading signed with the meter's key, validate it, queue it durably, and submit the queue in
order to the chain, so that each reading lands exactly once even across node restarts.

Validation here mirrors the pallet (signature, counter continuity, registers that never run
backwards, plausibility against rated power) so that problems are reported as anomalies with the
meter's name while the chain stays the judge. Anomalies: a stale meter, a bad register value, a
meter reset (registers back to lower values), a meter swap (another key at the same site), a
missing interval, an implausible reading, a reading signed again under the meter's newer
accreditation (`stale_accreditation`), an old unbound reading no key here can sign again
(`unbound`), and any rejection by the chain with its pallet error.

Binding (docs/chain-interface.md): each reading is signed for one chain (its genesis hash) and
one accreditation of its meter (the meter's epoch, `EnergyTrading.MeterEpochs`). Ingest reads
both from the node when it starts, as it does the market parameters, and keeps them in each
meter's `MeterSigner`, so reading and signing need no node afterwards and readings keep queueing
while the node is down. It reads them again:
- for one meter, when the chain refuses a reading with `StaleAccreditation` (the operator
  accredited the meter again meanwhile);
- for every meter, when the node answers with another genesis hash than before.
A pending reading signed under another epoch of the same chain (or queued before readings were
bound) is signed again under the meter's current accreditation, with the same counter, before
it is sent, or once the chain refused it as `StaleAccreditation`: the chain never accepted it,
so nothing counts twice, and nothing is lost. A reading signed for another chain is sent as it
is, and the chain refuses it (`BadSignature`).

Devices (store/devices.py, in the market's ops.db): the sites file seeds each site's device
configuration the first time its name is seen (model, host, port, unit id, rated power; a poll
period of 10 s); from then on the store is the source of truth, edited through the API
(`PATCH /devices/{name}`), and the sites file provides only the meter's key. Beside the signed
reading of each interval, a live monitor (`monitor`, which needs no node) keeps one task per
device that reads the meter (the raw Modbus read, nothing signed or queued) every poll period
and records its status: `connected` with its registers and power, or `stale` with the error.
About once a second it compares each device's stored `version` with the one it applied; a new
version is applied at once, without a restart: the device's task starts again on the new
address, unit id, model and period (reading at once), the next signed reading opens its
MeterClient there too, the log says "device X: applied version N (field: old -> new, ...)" and
the status records `applied_version` and `applied_ms`. An address that does not answer is a
`stale` status with its error, never a crash. The ingest's own files stay in its folder
(`<data>/ingest`); the device configuration is the market folder's (`devices_dir`, by default
the folder above one named `ingest`, else the ingest's own).

Demand response: the settings are stored, checked and shown, and nothing here acts on them yet.
meter_bridge's commands take neither: `MeterClient.set_load_limit(watts)` writes the board's
load limit (uint32 W, confirmed by read-back) and `switch_relay(on)` its contactor, and the board
(`CONTROLS`) has no revert register. A demand-response event will write `curtail_limit_w` with
`set_load_limit` at the device's applied address, and, when `revert_timer_s` > 0, write back the
limit it read before (`load_limit()`) once the timer ends: the timer is kept by the worker that
sent the command, not by the board.

Run it: `wattchain ingest --sites sites.json` (settings: market/settings.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chain import Chain, ChainError, ChainUnavailable
from market import keypair, now_ms
from market.settings import Settings
from meter_bridge import MODELS, Accreditation, MeterClient, MeterKey, MeterSigner
from meter_bridge.client import RetryPolicy
from meter_bridge.errors import MeterStale, ModbusReplyError, ReadingError
from meter_bridge.reading import MeterReading, resign_reading, verify_reading
from store import OPS_SCHEMA, Anomaly, DataDir, QueuedReading, ReadingQueue, connect
from store import devices as device_store
from store.devices import Device, DeviceSeed, InvalidDeviceChange, State

log = logging.getLogger("wattchain.ingest")

# Pallet errors that mean "not yet": try the same reading again later.
RETRY_LATER = {"IntervalNotEnded"}
# The chain has this reading already (a restart between inclusion and our bookkeeping).
ALREADY_ON_CHAIN = {"ReadingReplayed"}
# Signed under an earlier accreditation of the meter: sign it again under the current one.
STALE_ACCREDITATION = {"StaleAccreditation"}
# How often the live monitor looks for a new version of the device configuration.
DEVICE_CHECK_S = 1.0
# The live read tries twice, quickly: the next period is its retry.
MONITOR_RETRY = RetryPolicy(attempts=2, backoff_s=0.1, backoff_max_s=0.1)
# Fields named when a new version is applied, in this order.
_APPLIED_FIELDS = (*device_store.EDITABLE, "meter", "rated_power_w")


@dataclass
class MeterSite:
    """One metering point: where its meter answers, and the key that signs its readings."""

    name: str
    model: str
    host: str
    port: int
    key_uri: str
    device_id: int = 1
    rated_power_w: int = 0

    @classmethod
    def from_dict(cls, d: dict) -> MeterSite:
        missing = [k for k in ("name", "model", "host", "port", "key_uri") if k not in d]
        if missing:
            raise ValueError(f"meter site {d.get('name', '?')}: missing {', '.join(missing)}")
        return cls(
            name=str(d["name"]),
            model=str(d["model"]),
            host=str(d["host"]),
            port=int(d["port"]),
            key_uri=str(d["key_uri"]),
            device_id=int(d.get("device_id", 1)),
            rated_power_w=int(d.get("rated_power_w", 0)),
        ).checked()

    def checked(self) -> MeterSite:
        """The site, if the device configuration would take it; else InvalidDeviceChange (a
        ValueError) naming the site and the field."""
        if not device_store.valid_name(self.name):
            raise InvalidDeviceChange(
                "name",
                f"site name {self.name!r} must be 1..{device_store.NAME_MAX_LENGTH} letters, "
                "digits, '.', '_' or '-', starting with a letter or digit",
            )
        for field, setting, value in (
            ("model", "model", self.model),
            ("host", "host", self.host),
            ("port", "port", self.port),
            ("device_id", "unit_id", self.device_id),
            ("rated_power_w", "rated_power_w", self.rated_power_w),
        ):
            try:
                device_store.check_value(setting, value, models=MODELS)
            except InvalidDeviceChange as exc:
                raise InvalidDeviceChange(field, f"site {self.name}: {exc.message}") from None
        return self


def check_reading(
    r: MeterReading, previous: QueuedReading | None, rated_power_w: int, interval_ms: int
) -> list[tuple[str, str, bool]]:
    """What is wrong with a reading, as (kind, detail, fatal) triples. Fatal problems would make
    the chain reject it; the others are reported and the reading still goes on."""
    problems: list[tuple[str, str, bool]] = []
    if not verify_reading(r):
        problems.append(("bad_signature", "the meter's signature does not verify", True))
    if previous is None:
        return problems
    if r.counter <= previous.counter:
        problems.append(("replay", f"counter {r.counter} after {previous.counter}", True))
    elif r.counter != previous.counter + 1:
        problems.append(("counter_gap", f"counter {r.counter} after {previous.counter}", True))
    for name in ("import_wh", "export_wh"):
        if getattr(r, name) < getattr(previous, name):
            problems.append(
                (
                    "meter_reset",
                    f"{name} {getattr(r, name)} Wh after {getattr(previous, name)} Wh",
                    True,
                )
            )
    if r.interval > previous.interval + 1:
        missing = r.interval - previous.interval - 1
        problems.append(
            (
                "missing_interval",
                f"{missing} interval(s) without a reading before {r.interval}",
                False,
            )
        )
    if rated_power_w > 0 and r.interval > previous.interval:
        max_wh = rated_power_w * (r.interval - previous.interval) * interval_ms // 3_600_000
        for name in ("import_wh", "export_wh"):
            delta = getattr(r, name) - getattr(previous, name)
            if delta > max_wh:
                problems.append(
                    (
                        "implausible",
                        f"{name} rose {delta} Wh; {rated_power_w} W allows {max_wh} Wh",
                        True,
                    )
                )
    return problems


class Ingest:
    """Reads, signs, validates and queues the meters' readings, and submits the queue."""

    def __init__(
        self,
        chain: Chain,
        sites: list[MeterSite],
        data_dir: str | Path,
        *,
        submitter_uri: str | None = None,
        retry: RetryPolicy | None = None,
        devices_dir: str | Path | None = None,
        monitor_retry: RetryPolicy = MONITOR_RETRY,
        check_s: float = DEVICE_CHECK_S,
    ):
        self.chain = chain
        self.sites = sites
        self.data_dir = Path(data_dir)
        self.queue = ReadingQueue(DataDir(self.data_dir).ingest_path)
        # The account that pays the readings' fees: the deployment's, unless a test names one.
        self.submitter = keypair(submitter_uri or Settings().meter_submitter_uri)
        self.retry = retry or RetryPolicy(attempts=4, backoff_s=0.25, backoff_max_s=2.0)
        self.signers: dict[str, MeterSigner] = {}
        self.meter_signers: dict[str, MeterSigner] = {}  # by 0x meter key, to sign again
        for s in sites:
            key = MeterKey.from_uri(s.key_uri)
            # One counter file per meter key, not per site: a swapped meter starts its own count.
            signer = self.meter_signers.get(key.public_key_hex) or MeterSigner(
                key, self.data_dir / f"meter-{key.public_key_hex[2:18]}.json"
            )
            self.signers[s.name] = signer
            self.meter_signers[key.public_key_hex] = signer
        self.stale: set[str] = set()
        self._params = None
        self._genesis: bytes | None = None  # the genesis hash the signers' accreditations name
        # The device configuration: seeded from the sites, then the store's (module docstring).
        self.monitor_retry = monitor_retry
        self.check_s = check_s
        market = Path(devices_dir) if devices_dir is not None else _market_dir(self.data_dir)
        # Status rows are rewritten every period: a lost tail after power loss costs nothing.
        self.devices_db = connect(DataDir(market).ops_path, OPS_SCHEMA, synchronous="NORMAL")
        device_store.seed_devices(
            self.devices_db,
            [
                DeviceSeed(
                    name=s.name,
                    model=s.model,
                    host=s.host,
                    port=s.port,
                    unit_id=s.device_id,
                    meter=self.signers[s.name].key.public_key_hex,
                    rated_power_w=s.rated_power_w,
                )
                for s in sites
            ],
            models=MODELS,
        )
        self.config: dict[str, Device] = {}  # the version of each site's device in use
        self._live_state: dict[str, str] = {}
        self.apply_changes()

    # -- device configuration and live status -----------------------------------------------

    def apply_changes(self) -> list[str]:
        """Take in each site's device configuration whose stored version is not the one in use:
        the next signed reading and the live monitor use it from now on. Logged with what
        changed, and recorded as the device's `applied_version`. Returns the names taken in."""
        stored = device_store.versions(self.devices_db)
        applied = []
        for site in self.sites:
            in_use = self.config.get(site.name)
            version = stored.get(site.name)
            if version is None or (in_use is not None and in_use.version == version):
                continue
            fresh = device_store.device(self.devices_db, site.name)
            if fresh is None:
                continue
            self.config[site.name] = fresh
            at = now_ms()
            device_store.record_applied(self.devices_db, site.name, fresh.version, at_ms=at)
            log.info(
                "device %s: applied version %d (%s)",
                site.name,
                fresh.version,
                _what_changed(in_use, fresh),
            )
            applied.append(site.name)
        return applied

    def _apply_changes_safely(self) -> None:
        try:
            self.apply_changes()
        except sqlite3.Error as exc:  # e.g. locked for longer than the busy timeout
            log.error("device configuration unreadable, the versions in use stay: %s", exc)

    def _record_status(self, name: str, state: State, **values: Any) -> None:
        if self._live_state.get(name) != state:
            level = logging.INFO if state == "connected" else logging.WARNING
            log.log(
                level,
                "device %s: %s%s",
                name,
                state,
                f": {values['error']}" if values.get("error") else "",
            )
            self._live_state[name] = state
        try:
            device_store.record_status(self.devices_db, name, state=state, **values)
        except sqlite3.Error as exc:
            log.error("device %s: status not recorded: %s", name, exc)

    async def _watch(self, device: Device) -> None:
        """Read one device's meter every poll period (at a fixed rate, the first read at once)
        and record its status, until cancelled. A failure of any kind is a `stale` status."""
        client: MeterClient | None = None
        next_at = time.monotonic()
        try:
            while True:
                try:
                    if client is None:
                        client = MeterClient(
                            device.model,
                            device.host,
                            device.port,
                            device_id=device.unit_id,
                            retry=self.monitor_retry,
                        )
                    raw = await client.read()
                except Exception as exc:  # a bad address or meter is a status, not a crash
                    self._record_status(
                        device.name,
                        "stale",
                        at_ms=now_ms(),
                        error=str(exc) or type(exc).__name__,
                    )
                else:
                    self._record_status(
                        device.name,
                        "connected",
                        at_ms=raw.timestamp_ms,
                        import_wh=raw.import_wh,
                        export_wh=raw.export_wh,
                        power_w=raw.power_w,
                    )
                next_at = max(next_at + device.poll_period_s, time.monotonic())
                await asyncio.sleep(next_at - time.monotonic())
        finally:
            if client is not None:
                await client.close()

    async def monitor(self, stop: asyncio.Event) -> None:
        """The live side, which needs no node: one task per device reads its meter every poll
        period and records its status; every `check_s` the store is checked for new versions,
        and a device whose version changed gets a new task on its new configuration. Returns
        (its tasks cancelled, their links closed) once `stop` is set."""
        watching: dict[str, tuple[int, asyncio.Task[None]]] = {}
        try:
            while not stop.is_set():
                self._apply_changes_safely()
                for name, device in self.config.items():
                    running = watching.get(name)
                    if running is not None and running[0] == device.version:
                        if not running[1].done():
                            continue
                        if not running[1].cancelled() and running[1].exception() is not None:
                            log.error("device %s: monitor failed: %r", name, running[1].exception())
                    if running is not None:
                        await _cancel(running[1])
                    task = asyncio.create_task(self._watch(device), name=f"device {name}")
                    watching[name] = (device.version, task)
                try:
                    await asyncio.wait_for(stop.wait(), self.check_s)
                except TimeoutError:
                    pass
        finally:
            for _, task in watching.values():
                task.cancel()
            await asyncio.gather(*(task for _, task in watching.values()), return_exceptions=True)

    def refresh_accreditations(self, meters: list[str] | None = None) -> None:
        """Read the chain's genesis hash and the meters' accreditation epochs (all, or those
        given) into their signers: what each meter signs under from now on. Needs the node."""
        genesis = self.chain.genesis_hash
        for meter in self.meter_signers if meters is None else meters:
            signer = self.meter_signers[meter]
            fresh = Accreditation(genesis, self.chain.meter_epoch(meter))
            if signer.accreditation is not None and signer.accreditation != fresh:
                log.warning(
                    "meter %s: accreditation now epoch %d of chain %s (was epoch %d of %s)",
                    meter[:10],
                    fresh.epoch,
                    fresh.genesis_hash_hex[:10],
                    signer.accreditation.epoch,
                    signer.accreditation.genesis_hash_hex[:10],
                )
            signer.accreditation = fresh
        if meters is None:
            self._genesis = genesis

    def _follow_genesis(self) -> None:
        """After a reconnection to a node of another chain, sign for that chain from now on."""
        if self.chain.genesis_hash != self._genesis:
            self.refresh_accreditations()

    def report(self, a: Anomaly, *, error: bool = False) -> None:
        self.queue.record(a)
        (log.error if error else log.warning)(
            "meter %s (%s), interval %d: %s: %s", a.site, a.meter[:10], a.interval, a.kind, a.detail
        )

    def requeue_unsent(self) -> None:
        """After a crash between signing and queueing, the meter's state file still holds the
        last signed reading: queue it, so no counter is ever skipped."""
        for site in self.sites:
            last = self.signers[site.name].last_reading()
            if last is not None and self.queue.add(last, site.name):
                log.info(
                    "re-queued reading %d of %s signed before a restart", last.counter, site.name
                )

    async def read_site(
        self, site: MeterSite, interval: int, interval_ms: int
    ) -> MeterReading | None:
        signer = self.signers[site.name]
        meter = signer.key.public_key_hex
        known = self.queue.site_meter(site.name)
        if known is not None and known != meter:
            self.report(
                Anomaly(site.name, meter, interval, "meter_swap", f"key {meter} replaces {known}")
            )
        self.queue.set_site_meter(site.name, meter)
        device = self.config[site.name]  # the store's configuration, as applied
        try:
            async with MeterClient(
                device.model, device.host, device.port, device_id=device.unit_id, retry=self.retry
            ) as client:
                raw = await client.read()
        except MeterStale as exc:
            self.stale.add(site.name)
            self.report(Anomaly(site.name, meter, interval, "stale", str(exc)), error=True)
            return None
        except (ReadingError, ModbusReplyError) as exc:
            self.report(Anomaly(site.name, meter, interval, "bad_value", str(exc)), error=True)
            return None
        self.stale.discard(site.name)
        previous = self.queue.last(meter)
        if previous is not None and previous.interval >= interval:
            return None  # read for this interval already
        if signer.accreditation is None:  # normally read at start (run); then never here
            self.refresh_accreditations([meter])
        try:
            reading = signer.sign(raw, interval)
        except ReadingError as exc:  # registers ran backwards: a reset or a swapped meter
            self.report(Anomaly(site.name, meter, interval, "meter_reset", str(exc)), error=True)
            return None
        problems = check_reading(reading, previous, device.rated_power_w, interval_ms)
        for kind, detail, fatal in problems:
            self.report(Anomaly(site.name, meter, interval, kind, detail), error=fatal)
        # Even a reading we expect the chain to reject is queued and sent: the chain is the
        # judge, and its verdict is recorded with the reading.
        self.queue.add(reading, site.name)
        return reading

    async def poll(self, interval: int) -> list[MeterReading]:
        """Read every meter for `interval` (which has just ended). Needs no node: readings queue
        up while the chain is unreachable."""
        interval_ms = self.params().interval_ms
        self._apply_changes_safely()  # a change made since the monitor's last look counts too
        readings = await asyncio.gather(
            *(self.read_site(s, interval, interval_ms) for s in self.sites)
        )
        return [r for r in readings if r is not None]

    def params(self):
        # The interval length is frozen once trading starts, so one read serves the whole run.
        if self._params is None:
            self._params = self.chain.market_params()
        return self._params

    def submit_pending(self, *, timeout_s: float = 60.0) -> dict[str, int]:
        """Send queued readings in counter order per meter. Stops at the first reading of a meter
        the chain cannot take yet; returns how many went on chain, were rejected, or wait."""
        done = {"on_chain": 0, "rejected": 0, "waiting": 0}
        blocked: set[str] = set()
        self._follow_genesis()
        for r in self.queue.pending():
            if r.meter in blocked:
                done["waiting"] += 1
                continue
            on_chain = self.chain_counter(r.meter)
            if on_chain is not None and on_chain >= r.counter:
                self.queue.mark(r.meter, r.counter, "on_chain", error="found on chain")
                done["on_chain"] += 1
                continue
            signer = self.meter_signers.get(r.meter)
            current = signer.accreditation if signer is not None else None
            if current is not None and _signed_under_another_epoch(r, current):
                # e.g. queued while the node was down, before a re-accreditation was seen
                r = self.resign(r, "signed before the meter's current accreditation")
            if r.epoch is None or r.genesis_hash is None:
                # Queued before readings were bound, by a meter no site has now: unsendable.
                self.queue.mark(r.meter, r.counter, "rejected", error="unbound")
                self.report(
                    Anomaly(
                        r.site,
                        r.meter,
                        r.interval,
                        "unbound",
                        "signed before readings were bound to a chain, and no key to sign it again",
                    ),
                    error=True,
                )
                done["rejected"] += 1
                continue
            try:
                receipt = self.chain.submit(
                    self.submitter,
                    "submit_reading",
                    Chain.reading_params(
                        r.meter,
                        r.epoch,
                        r.interval,
                        r.counter,
                        r.import_wh,
                        r.export_wh,
                        r.signature,
                    ),
                    wait="inclusion",
                    timeout_s=timeout_s,
                )
            except ChainUnavailable:
                raise
            except ChainError as exc:
                if exc.name in ALREADY_ON_CHAIN:
                    self.queue.mark(r.meter, r.counter, "on_chain", error=exc.name)
                    done["on_chain"] += 1
                elif exc.name in STALE_ACCREDITATION and signer is not None:
                    # The meter was accredited again after this reading was signed. The chain
                    # did not take it: sign it again under the new epoch, same counter, and send
                    # it on the next round (the meter's later readings wait behind it).
                    self.refresh_accreditations([r.meter])
                    if signer.accreditation is not None and _signed_under_another_epoch(
                        r, signer.accreditation
                    ):
                        self.resign(r, exc.name)
                    blocked.add(r.meter)
                    done["waiting"] += 1
                elif exc.name in RETRY_LATER or not exc.is_module_error:
                    blocked.add(r.meter)
                    done["waiting"] += 1
                    log.info(
                        "reading %d of %s waits: %s %s", r.counter, r.site, exc.name, exc.detail
                    )
                else:
                    self.queue.mark(r.meter, r.counter, "rejected", error=exc.name)
                    self.report(
                        Anomaly(r.site, r.meter, r.interval, "rejected_on_chain", exc.name),
                        error=True,
                    )
                    done["rejected"] += 1
                continue
            self.queue.mark(r.meter, r.counter, "on_chain", block=receipt.block_number)
            done["on_chain"] += 1
        return done

    def resign(self, r: QueuedReading, why: str) -> QueuedReading:
        """Sign a pending reading again under its meter's current accreditation, same counter
        and registers (it was never accepted), in the queue too; reported as an anomaly."""
        signer = self.meter_signers[r.meter]
        assert signer.accreditation is not None
        fresh = resign_reading(_as_meter_reading(r), signer.key, signer.accreditation)
        self.queue.resign(fresh)
        was = "unbound (v1)" if r.epoch is None else f"epoch {r.epoch}"
        self.report(
            Anomaly(
                r.site,
                r.meter,
                r.interval,
                "stale_accreditation",
                f"{why}: reading {r.counter} signed under {was}, "
                f"signed again under epoch {fresh.epoch}",
            )
        )
        return dataclasses.replace(
            r, signature=fresh.signature, genesis_hash=fresh.genesis_hash, epoch=fresh.epoch
        )

    def chain_counter(self, meter: str) -> int | None:
        info = self.chain.query("EnergyTrading", "Meters", [meter])
        last = (info or {}).get("last")
        return None if not last else int(last["counter"])

    async def run(
        self,
        *,
        intervals: int | None = None,
        stop: asyncio.Event | None = None,
        drain_s: float = 120.0,
    ) -> None:
        """Poll at each interval's end while a second task keeps the queue flowing to the chain,
        so a node that is down delays submission but never reading, and the live monitor keeps
        each device's status and applies configuration changes. After the last interval it
        keeps submitting for up to `drain_s` until the queue is empty. Setting `stop` ends the
        tasks promptly (before the meters they read go away)."""
        self.requeue_unsent()
        params = self.params()
        self.refresh_accreditations()  # what the meters sign under, until the chain says else
        reading_done = asyncio.Event()
        wake = asyncio.Event()

        async def reader():
            done = 0
            try:
                while intervals is None or done < intervals:
                    now = now_ms()
                    interval = params.interval_at(now)
                    delay = max(0.0, (params.interval_end(interval) - now) / 1000) + 0.2
                    if stop is None:
                        await asyncio.sleep(delay)
                    else:  # wake at once when told to stop, not at the interval's end
                        try:
                            await asyncio.wait_for(stop.wait(), delay)
                            break
                        except TimeoutError:
                            pass
                    await self.poll(interval)
                    wake.set()
                    done += 1
            finally:
                reading_done.set()
                wake.set()

        async def submitter():
            backoff = 0.5
            drain_deadline = None
            while True:
                wake.clear()
                try:
                    result = await asyncio.to_thread(self.submit_pending)
                    backoff = 0.5
                except ChainUnavailable as exc:
                    log.warning(
                        "node unreachable, %d reading(s) stay queued: %s",
                        len(self.queue.pending()),
                        exc,
                    )
                    result = {"waiting": 1}
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                if stop is not None and stop.is_set():
                    return  # what is queued stays queued: the next run sends it
                if reading_done.is_set():
                    if not self.queue.pending():
                        return
                    drain_deadline = drain_deadline or time.monotonic() + drain_s
                    if time.monotonic() > drain_deadline:
                        log.error(
                            "%d reading(s) still queued after %.0f s",
                            len(self.queue.pending()),
                            drain_s,
                        )
                        return
                if result.get("waiting"):
                    await asyncio.sleep(
                        1.0
                    )  # e.g. the chain's clock has not passed the interval yet
                else:
                    try:
                        await asyncio.wait_for(wake.wait(), timeout=1.0)
                    except TimeoutError:
                        pass

        monitor_stop = asyncio.Event()
        monitor = asyncio.create_task(self.monitor(monitor_stop), name="device monitor")
        try:
            await asyncio.gather(reader(), submitter())
        finally:
            monitor_stop.set()
            await monitor


def _market_dir(ingest_dir: Path) -> Path:
    """Where the market's ops.db (the device configuration) is: `wattchain ingest`, `run` and
    the demo keep the ingest's files in <data>/ingest, beside the market's stores; an ingest
    given another folder keeps its device configuration there."""
    return ingest_dir.parent if ingest_dir.name == "ingest" else ingest_dir


def _what_changed(before: Device | None, after: Device) -> str:
    if before is None:
        return (
            f"{after.model} at {after.address}, every {after.poll_period_s} s, "
            f"by {after.updated_by}"
        )
    changes = [
        f"{f}: {getattr(before, f)} -> {getattr(after, f)}"
        for f in _APPLIED_FIELDS
        if getattr(before, f) != getattr(after, f)
    ]
    return ", ".join(changes) or "nothing that ingest uses"


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def _signed_under_another_epoch(r: QueuedReading, current: Accreditation) -> bool:
    """A reading to sign again: queued before readings were bound, or signed for this chain
    under another accreditation epoch than the meter's current one. (One signed for another
    chain is not re-signed: that chain's readings are not this chain's.)"""
    if r.genesis_hash is None or r.epoch is None:
        return True
    return r.genesis_hash.lower() == current.genesis_hash_hex and r.epoch != current.epoch


def _as_meter_reading(r: QueuedReading) -> MeterReading:
    """A queued reading as the meter bridge's MeterReading (the queue keeps no power or time)."""
    return MeterReading(
        meter=r.meter,
        genesis_hash=r.genesis_hash or "",
        epoch=r.epoch or 0,
        interval=r.interval,
        counter=r.counter,
        import_wh=r.import_wh,
        export_wh=r.export_wh,
        power_w=0,
        timestamp_ms=0,
        signature=r.signature,
    )


def load_sites(path: str | Path) -> list[MeterSite]:
    data = json.loads(Path(path).read_text())
    sites = data["sites"] if isinstance(data, dict) else data
    return [MeterSite.from_dict(d) for d in sites]
