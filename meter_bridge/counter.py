"""A meter's reading counter, kept on disk so a restart never signs two readings with one counter.

The state file (JSON, one per meter) holds the last counter used and the last signed reading.
It is written atomically (temporary file, fsync, rename) *before* a signed reading is handed
out, so a crash can leave a gap in counters but never a reuse, and the last reading can be
recovered from the file and sent again.

A state file of version 1 (before readings were bound to a chain and an accreditation epoch)
is read on: its counter continues, and its last reading, whose v1 message no chain accepts any
more, is dropped.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from pathlib import Path

from .errors import ConfigurationError, MalformedReading, ReadingError, StateFileError
from .keys import MeterKey
from .reading import U64_MAX, Accreditation, MeterReading, RawReading, sign_reading

log = logging.getLogger(__name__)

STATE_VERSION = 2


class CounterStore:
    """The state file of one meter."""

    def __init__(self, path: str | os.PathLike, meter: str):
        self.path = Path(path)
        self.meter = meter

    @contextlib.contextmanager
    def locked(self):
        """Exclusive use of the state file across processes (two signers would reuse counters)."""
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StateFileError(f"cannot open lock file {lock_path}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def load(self, start_after: int = 0) -> dict:
        """The stored state; a missing file is a fresh meter whose last counter is `start_after`."""
        if not self.path.exists():
            return {
                "version": STATE_VERSION,
                "meter": self.meter,
                "counter": start_after,
                "last_reading": None,
            }
        try:
            state = json.loads(self.path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            # Never start again from 0: that would reuse counters the chain has seen.
            raise StateFileError(
                f"state file {self.path} is unreadable ({exc}); "
                "restore it, or start a new file after the chain's last counter"
            ) from exc
        if (
            not isinstance(state, dict)
            or not isinstance(state.get("counter"), int)
            or isinstance(state.get("counter"), bool)
        ):
            raise StateFileError(f"state file {self.path} has no integer 'counter'")
        if not 0 <= state["counter"] <= U64_MAX:
            raise StateFileError(
                f"state file {self.path} has counter {state['counter']} outside u64"
            )
        if state.get("meter") != self.meter:
            raise StateFileError(
                f"state file {self.path} belongs to meter {state.get('meter')}, not {self.meter}"
            )
        if state.get("version", 1) == 1 and state.get("last_reading") is not None:
            log.warning(
                "state file %s is of version 1: its last reading (counter %s) was signed with "
                "the v1 message and cannot be sent any more; counters continue after %d",
                self.path,
                state["last_reading"].get("counter")
                if isinstance(state["last_reading"], dict)
                else "?",
                state["counter"],
            )
            state["last_reading"] = None
        if state.get("last_reading") is not None:
            try:
                MeterReading.from_dict(state["last_reading"])
            except MalformedReading as exc:
                raise StateFileError(
                    f"state file {self.path} holds a malformed last reading: {exc}"
                ) from exc
        return state

    def save(self, reading: MeterReading) -> None:
        state = {
            "version": STATE_VERSION,
            "meter": self.meter,
            "counter": reading.counter,
            "last_reading": reading.to_dict(),
        }
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            with open(tmp, "w") as f:
                json.dump(state, f, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise StateFileError(f"cannot write state file {self.path}: {exc}") from exc


class MeterSigner:
    """Signs readings of one meter with consecutive counters, remembered across restarts, under
    the meter's accreditation (its chain's genesis hash and its accreditation epoch).

    The accreditation is what the operator provisions the meter with when accrediting it; after
    a new accreditation, assign the new one to `accreditation` (the counter carries on). A
    signer without one (not provisioned yet) refuses to sign."""

    def __init__(
        self,
        key: MeterKey,
        state_path: str | os.PathLike,
        accreditation: Accreditation | None = None,
        *,
        start_after: int = 0,
    ):
        if accreditation is not None and not isinstance(accreditation, Accreditation):
            raise TypeError(f"accreditation must be an Accreditation, not {accreditation!r}")
        self.key = key
        self.store = CounterStore(state_path, key.public_key_hex)
        self.accreditation = accreditation
        self.start_after = start_after

    @property
    def last_counter(self) -> int:
        with self.store.locked():
            return self.store.load(self.start_after)["counter"]

    def last_reading(self) -> MeterReading | None:
        """The last reading signed, e.g. to send again after a crash."""
        with self.store.locked():
            last = self.store.load(self.start_after)["last_reading"]
        return MeterReading.from_dict(last) if last else None

    def sign(self, raw: RawReading, interval: int) -> MeterReading:
        accreditation = self.accreditation
        if accreditation is None:
            raise ConfigurationError(
                f"meter {self.key.public_key_hex} is not provisioned: it signs only under an "
                "accreditation (its chain's genesis hash and its accreditation epoch)"
            )
        with self.store.locked():
            state = self.store.load(self.start_after)
            last = state["last_reading"]
            if last:
                # A register that runs backwards would be rejected by the chain; refuse it
                # here without spending a counter, and say which register.
                for name in ("import_wh", "export_wh"):
                    if getattr(raw, name) < last[name]:
                        raise ReadingError(
                            name,
                            None,
                            f"ran backwards: {getattr(raw, name)} Wh after "
                            f"{last[name]} Wh in reading {last['counter']}",
                        )
            if state["counter"] >= U64_MAX:
                raise StateFileError("counter exhausted (u64)")
            reading = sign_reading(raw, self.key, accreditation, interval, state["counter"] + 1)
            self.store.save(reading)
        log.info(
            "signed reading %d of meter %s (epoch %d) for interval %d: import %d Wh, export %d Wh",
            reading.counter,
            reading.meter,
            reading.epoch,
            interval,
            reading.import_wh,
            reading.export_wh,
        )
        return reading
