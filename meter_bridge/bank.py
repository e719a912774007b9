"""The register bank a Modbus server serves: four tables of addressed values, nothing else.

The simulator and the tests fill a bank and hand it to `modbus.serve_bank`; it knows no
pymodbus, so the adapter in modbus.py is the only place that changes when pymodbus does.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable, Iterable, Sequence


class Table(enum.Enum):
    """The four Modbus data tables."""

    COILS = "coils"
    DISCRETE_INPUTS = "discrete inputs"
    HOLDING_REGISTERS = "holding registers"
    INPUT_REGISTERS = "input registers"

    @property
    def is_bits(self) -> bool:
        return self in (Table.COILS, Table.DISCRETE_INPUTS)

    @property
    def writable(self) -> bool:
        return self in (Table.COILS, Table.HOLDING_REGISTERS)


# Function code -> table, for the server side.
FUNCTION_TABLE = {
    1: Table.COILS,
    5: Table.COILS,
    15: Table.COILS,
    2: Table.DISCRETE_INPUTS,
    3: Table.HOLDING_REGISTERS,
    6: Table.HOLDING_REGISTERS,
    16: Table.HOLDING_REGISTERS,
    22: Table.HOLDING_REGISTERS,
    23: Table.HOLDING_REGISTERS,
    4: Table.INPUT_REGISTERS,
}

ILLEGAL_ADDRESS = 0x02
ILLEGAL_VALUE = 0x03


class ServerReply(Exception):
    """Raised inside a bank to make the server answer with a Modbus exception code."""

    def __init__(self, code: int):
        super().__init__(f"Modbus exception {code}")
        self.code = code


# before_read(table, address, count): refresh values before they are served.
ReadHook = Callable[[Table, int, int], None]
# on_write(table, address, values) -> values to store; raise ServerReply to refuse.
WriteHook = Callable[[Table, int, list], Sequence]


class RegisterBank:
    """Thread-safe tables of 16-bit registers and bits, keyed by Modbus address."""

    def __init__(self) -> None:
        self._tables: dict[Table, dict[int, int | bool]] = {t: {} for t in Table}
        self._lock = threading.RLock()
        self._faults: list[int] = []
        self.before_read: ReadHook | None = None
        self.on_write: WriteHook | None = None
        self.requests = 0  # requests served, so tests can count retries

    # -- filling (simulator and tests) -------------------------------------------------
    def set_words(self, table: Table, address: int, words: Iterable[int]) -> None:
        if table.is_bits:
            raise ValueError(f"{table.value} hold bits, not registers")
        with self._lock:
            for i, word in enumerate(words):
                if not 0 <= word <= 0xFFFF:
                    raise ValueError(f"register value {word} at {address + i} is not 16-bit")
                self._check_address(address + i)
                self._tables[table][address + i] = word

    def set_bits(self, table: Table, address: int, bits: Iterable[bool]) -> None:
        if not table.is_bits:
            raise ValueError(f"{table.value} hold registers, not bits")
        with self._lock:
            for i, bit in enumerate(bits):
                self._check_address(address + i)
                self._tables[table][address + i] = bool(bit)

    def get(self, table: Table, address: int, count: int = 1) -> list:
        """Stored values without hooks or faults (for the simulator and tests)."""
        with self._lock:
            return [self._tables[table][a] for a in range(address, address + count)]

    def bits_or_false(self, table: Table, address: int, count: int) -> list[bool]:
        """Bits for a span, False where undefined (a server packs whole 16-bit words)."""
        with self._lock:
            stored = self._tables[table]
            return [bool(stored.get(a, False)) for a in range(address, address + count)]

    def ranges(self, table: Table) -> list[tuple[int, int]]:
        """Contiguous (start, count) runs of defined addresses."""
        with self._lock:
            addresses = sorted(self._tables[table])
        runs: list[tuple[int, int]] = []
        for a in addresses:
            if runs and runs[-1][0] + runs[-1][1] == a:
                runs[-1] = (runs[-1][0], runs[-1][1] + 1)
            else:
                runs.append((a, 1))
        return runs

    def inject_faults(self, code: int, count: int = 1) -> None:
        """Answer the next `count` requests with Modbus exception `code` (a busy or failing
        meter)."""
        with self._lock:
            self._faults.extend([code] * count)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    # -- serving (called by the server adapter) ----------------------------------------
    def serve_read(self, table: Table, address: int, count: int) -> list:
        with self._lock:
            self.requests += 1
            self._raise_fault()
            self._require(table, address, count)
            if self.before_read:
                self.before_read(table, address, count)
            return [self._tables[table][a] for a in range(address, address + count)]

    def serve_write(self, table: Table, address: int, values: Sequence) -> None:
        with self._lock:
            self.requests += 1
            self._raise_fault()
            if not table.writable:
                raise ServerReply(ILLEGAL_ADDRESS)
            self._require(table, address, len(values))
            values = list(values)
            if self.on_write:
                values = list(self.on_write(table, address, values))
            for i, value in enumerate(values):
                self._tables[table][address + i] = bool(value) if table.is_bits else int(value)

    def _raise_fault(self) -> None:
        if self._faults:
            raise ServerReply(self._faults.pop(0))

    def _require(self, table: Table, address: int, count: int) -> None:
        stored = self._tables[table]
        if count < 1 or any(a not in stored for a in range(address, address + count)):
            raise ServerReply(ILLEGAL_ADDRESS)

    @staticmethod
    def _check_address(address: int) -> None:
        if not 0 <= address <= 0xFFFF:
            raise ValueError(f"Modbus address {address} is outside 0..65535")
