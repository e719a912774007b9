"""Register maps of the meters WattChain reads: where each quantity lives and how it is encoded.

A map turns raw 16-bit words into a Measurement (integers: Wh, W, mV, mA) and checks every
value on the way, and encodes a Measurement back into words for the simulator. Offsets come
from the Eastron SDM120/SDM630 Modbus protocol sheets and the SunSpec model definitions
(sunspec/models json/model_203.json, model_701.json); docs/meter_bridge.md lists them.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, replace
from fractions import Fraction

from .bank import Table
from .errors import ConfigurationError, ReadingError

WORD_ORDERS = ("big", "little")
# No meter register may claim more than this: 1 TWh is beyond any grid connection's lifetime.
MAX_ENERGY_WH = 10**12
# A power register above rated power times this margin is a wrong reading, not a surge.
POWER_MARGIN = Fraction(3, 2)
MAX_VOLTAGE_MV = 1_000_000  # low-voltage meters: nothing above 1 kV is real
MAX_CURRENT_MA = 10_000_000


@dataclass(frozen=True)
class Measurement:
    """What one read of a meter says, in integers.

    power_w is the net active power at the connection point: positive while importing
    from the grid, negative while exporting to it.
    """

    import_wh: int
    export_wh: int
    power_w: int
    voltage_mv: int | None = None
    current_ma: int | None = None


# -- word and number codecs ---------------------------------------------------------------


def words_to_bytes(words: list[int], word_order: str) -> bytes:
    """Bytes of a multi-register value; bytes inside a register are always big-endian."""
    if word_order not in WORD_ORDERS:
        raise ConfigurationError(f"word order must be 'big' or 'little', not {word_order!r}")
    ordered = words if word_order == "big" else list(reversed(words))
    return struct.pack(f">{len(ordered)}H", *ordered)


def bytes_to_words(data: bytes, word_order: str) -> list[int]:
    words = list(struct.unpack(f">{len(data) // 2}H", data))
    if word_order not in WORD_ORDERS:
        raise ConfigurationError(f"word order must be 'big' or 'little', not {word_order!r}")
    return words if word_order == "big" else list(reversed(words))


def decode_float32(words: list[int], word_order: str) -> float:
    return struct.unpack(">f", words_to_bytes(words, word_order))[0]


def encode_float32(value: float, word_order: str) -> list[int]:
    return bytes_to_words(struct.pack(">f", value), word_order)


def _nearest_int(value: Fraction) -> int:
    floor = math.floor(value)
    return floor + (1 if value - floor >= Fraction(1, 2) else 0)


def _checked_float(name: str, address: int, value: float, *, signed: bool, limit: float) -> float:
    if math.isnan(value):
        raise ReadingError(name, address, "value is NaN")
    if math.isinf(value):
        raise ReadingError(name, address, f"value is {value}")
    if not signed and value < 0:
        raise ReadingError(
            name, address, f"negative value {value} for a quantity that cannot be negative"
        )
    if abs(value) > limit:
        raise ReadingError(name, address, f"absurd value {value} (limit {limit:g})")
    return value


# -- Eastron SDM ----------------------------------------------------------------------------


@dataclass(frozen=True)
class EastronMap:
    """Eastron SDM meters: input registers (function 4), IEEE-754 float32 over two registers.

    Energy registers hold kWh, converted at once to integer Wh (rounded to nearest).
    """

    model: str
    power_register: int  # total system active power, W
    rated_power_w: int  # for the absurd-value check
    import_register: int = 0x0048  # total import active energy, kWh
    export_register: int = 0x004A  # total export active energy, kWh
    voltage_register: int = 0x0000  # (phase 1) line-to-neutral voltage, V
    current_register: int = 0x0006  # (phase 1) current, A
    word_order: str = "big"  # Eastron sends the high word first
    table: Table = Table.INPUT_REGISTERS
    phases: int = 1

    def __post_init__(self):
        if self.word_order not in WORD_ORDERS:
            raise ConfigurationError(
                f"word order must be 'big' or 'little', not {self.word_order!r}"
            )

    @property
    def needs_discovery(self) -> bool:
        return False

    def _addresses(self) -> list[int]:
        return [
            self.power_register,
            self.import_register,
            self.export_register,
            self.voltage_register,
            self.current_register,
        ]

    def requests(self, base: int = 0) -> list[tuple[Table, int, int]]:
        """One read spanning every point, so all values come from the same instant."""
        first = min(self._addresses())
        last = max(self._addresses()) + 1
        return [(self.table, first, last - first + 1)]

    def decode(self, words: dict[int, int], base: int = 0) -> Measurement:
        def value(name: str, address: int, *, signed: bool, limit: float) -> float:
            raw = decode_float32([words[address], words[address + 1]], self.word_order)
            return _checked_float(f"{self.model}.{name}", address, raw, signed=signed, limit=limit)

        kwh_limit = MAX_ENERGY_WH / 1000
        import_kwh = value("import_kwh", self.import_register, signed=False, limit=kwh_limit)
        export_kwh = value("export_kwh", self.export_register, signed=False, limit=kwh_limit)
        power = value(
            "power_w",
            self.power_register,
            signed=True,
            limit=float(self.rated_power_w * POWER_MARGIN),
        )
        volts = value("voltage_v", self.voltage_register, signed=False, limit=MAX_VOLTAGE_MV / 1000)
        amps = value("current_a", self.current_register, signed=False, limit=MAX_CURRENT_MA / 1000)
        # float32 -> exact Fraction, so the only rounding is the one to whole units.
        return Measurement(
            import_wh=_nearest_int(Fraction(import_kwh) * 1000),
            export_wh=_nearest_int(Fraction(export_kwh) * 1000),
            power_w=_nearest_int(Fraction(power)),
            voltage_mv=_nearest_int(Fraction(volts) * 1000),
            current_ma=_nearest_int(Fraction(amps) * 1000),
        )

    def encode(self, m: Measurement, base: int = 0) -> list[tuple[Table, int, list[int]]]:
        """Registers a meter in state `m` would show (for the simulator)."""
        volts = (m.voltage_mv or 0) / 1000
        amps = (m.current_ma or 0) / 1000
        out = [
            (self.table, self.import_register, encode_float32(m.import_wh / 1000, self.word_order)),
            (self.table, self.export_register, encode_float32(m.export_wh / 1000, self.word_order)),
            (self.table, self.power_register, encode_float32(float(m.power_w), self.word_order)),
        ]
        if self.phases == 1:
            out.append((self.table, self.voltage_register, encode_float32(volts, self.word_order)))
            out.append((self.table, self.current_register, encode_float32(amps, self.word_order)))
        else:
            # Three balanced phases: per-phase voltage, current and power at 0x00, 0x06, 0x0C.
            out.append((self.table, self.current_register, encode_float32(amps, self.word_order)))
            for phase in range(3):
                out.append((self.table, 0x0000 + 2 * phase, encode_float32(volts, self.word_order)))
                out.append(
                    (self.table, 0x0006 + 2 * phase, encode_float32(amps / 3, self.word_order))
                )
                out.append(
                    (self.table, 0x000C + 2 * phase, encode_float32(m.power_w / 3, self.word_order))
                )
        return out


# -- SunSpec --------------------------------------------------------------------------------

SUNSPEC_MARKER = (0x5375, 0x6E53)  # "SunS"
SUNSPEC_BASES = (40000, 0, 50000)  # 40000 first: by far the most common
SUNSPEC_END_ID = 0xFFFF
COMMON_MODEL_ID = 1

# SunSpec "not implemented" markers per point type.
_NOT_IMPLEMENTED = {
    "int16": 0x8000,
    "uint16": 0xFFFF,
    "sunssf": 0x8000,
    "uint32": 0xFFFFFFFF,
    "uint64": 0xFFFFFFFFFFFFFFFF,
    # acc32/acc64: 0 means "not accumulated"; it is also a new meter's honest value.
}
_WORDS = {"int16": 1, "uint16": 1, "sunssf": 1, "acc32": 2, "uint32": 2, "acc64": 4, "uint64": 4}


@dataclass(frozen=True)
class SunSpecPoint:
    name: str
    offset: int  # from the model's ID register
    kind: str
    sf: str | None = None  # name of the scale-factor point


@dataclass(frozen=True)
class SunSpecMap:
    """A SunSpec model in holding registers (function 3), found by walking the model chain.

    Values are integers times 10**sf (sunssf, int16). Energy is floored to whole Wh so a
    cumulative register never rounds up ahead of itself.
    """

    model: str
    model_id: int
    length: int  # the model's L (registers after ID and L)
    points: tuple[SunSpecPoint, ...]
    import_point: str
    export_point: str
    power_point: str
    power_import_positive: bool  # sign of W: meters count import positive, a DER counts injection
    rated_power_w: int
    voltage_point: str | None = None
    current_point: str | None = None
    table: Table = Table.HOLDING_REGISTERS
    word_order: str = (
        "big"  # SunSpec is big-endian throughout; kept a property for gateways that swap
    )

    @property
    def needs_discovery(self) -> bool:
        return True

    def point(self, name: str) -> SunSpecPoint:
        for p in self.points:
            if p.name == name:
                return p
        raise KeyError(name)

    def requests(self, base: int) -> list[tuple[Table, int, int]]:
        """Reads covering the used points of the model whose ID register is at `base`."""
        first = base
        last = base + max(p.offset + _WORDS[p.kind] for p in self.points) - 1
        out = []
        start = first
        while start <= last:
            count = min(125, last - start + 1)
            out.append((self.table, start, count))
            start += count
        return out

    def _raw(self, words: dict[int, int], base: int, p: SunSpecPoint) -> int:
        address = base + p.offset
        data = words_to_bytes([words[address + i] for i in range(_WORDS[p.kind])], self.word_order)
        raw = int.from_bytes(data, "big", signed=p.kind in ("int16", "sunssf"))
        ni = _NOT_IMPLEMENTED.get(p.kind)
        if ni is not None and int.from_bytes(data, "big") == ni:
            raise ReadingError(
                f"{self.model}.{p.name}",
                address,
                "not implemented by this device (SunSpec NI value)",
            )
        return raw

    def _scaled(self, words: dict[int, int], base: int, name: str) -> tuple[Fraction, int]:
        p = self.point(name)
        raw = self._raw(words, base, p)
        sf = 0
        if p.sf:
            sfp = self.point(p.sf)
            sf = self._raw(words, base, sfp)
            if not -10 <= sf <= 10:
                raise ReadingError(
                    f"{self.model}.{sfp.name}",
                    base + sfp.offset,
                    f"scale factor {sf} is outside -10..10",
                )
        return Fraction(raw) * Fraction(10) ** sf, base + p.offset

    def decode(self, words: dict[int, int], base: int) -> Measurement:
        if words.get(base) != self.model_id:
            raise ReadingError(
                f"{self.model}.ID", base, f"expected model {self.model_id}, found {words.get(base)}"
            )

        def energy(name: str) -> int:
            value, address = self._scaled(words, base, name)
            if value < 0:
                raise ReadingError(
                    f"{self.model}.{name}", address, f"negative energy {float(value)} Wh"
                )
            if value > MAX_ENERGY_WH:
                raise ReadingError(
                    f"{self.model}.{name}", address, f"absurd energy {float(value):g} Wh"
                )
            return math.floor(value)

        import_wh = energy(self.import_point)
        export_wh = energy(self.export_point)
        power, address = self._scaled(words, base, self.power_point)
        if abs(power) > self.rated_power_w * POWER_MARGIN:
            raise ReadingError(
                f"{self.model}.{self.power_point}",
                address,
                f"absurd power {float(power):g} W (rated {self.rated_power_w} W)",
            )
        power_w = _nearest_int(power if self.power_import_positive else -power)
        voltage_mv = current_ma = None
        if self.voltage_point:
            volts, address = self._scaled(words, base, self.voltage_point)
            if not 0 <= volts * 1000 <= MAX_VOLTAGE_MV:
                raise ReadingError(
                    f"{self.model}.{self.voltage_point}",
                    address,
                    f"absurd voltage {float(volts):g} V",
                )
            voltage_mv = _nearest_int(volts * 1000)
        if self.current_point:
            amps, address = self._scaled(words, base, self.current_point)
            # SunSpec current is signed on some devices; its size, not its sign, is what we keep.
            if abs(amps) * 1000 > MAX_CURRENT_MA:
                raise ReadingError(
                    f"{self.model}.{self.current_point}",
                    address,
                    f"absurd current {float(amps):g} A",
                )
            current_ma = _nearest_int(abs(amps) * 1000)
        return Measurement(import_wh, export_wh, power_w, voltage_mv, current_ma)

    def encode_model(self, m: Measurement) -> list[int]:
        """The model block (ID, L, points) for a device in state `m`, for the simulator.

        Scale factors: energy 0 (Wh), power 0 or 1 so W fits int16, voltage -1, current -2.
        """
        block = [0] * (self.length + 2)
        block[0], block[1] = self.model_id, self.length
        # Points the map does not use are left 0, except scale factors (0 is a valid sf).
        power = m.power_w if self.power_import_positive else -m.power_w
        w_sf = 0 if abs(power) <= 32767 and self.rated_power_w * POWER_MARGIN <= 32767 else 1
        values = {
            self.import_point: m.import_wh,
            self.export_point: m.export_wh,
            self.power_point: _nearest_int(Fraction(power, 10**w_sf)),
        }
        sfs = {self.point(self.power_point).sf: w_sf}
        if self.voltage_point:
            values[self.voltage_point] = (m.voltage_mv or 0) // 100
            sfs[self.point(self.voltage_point).sf] = -1
        if self.current_point:
            values[self.current_point] = (m.current_ma or 0) // 10
            sfs[self.point(self.current_point).sf] = -2
        sfs[self.point(self.import_point).sf] = 0
        for name, value in list(values.items()) + list(sfs.items()):
            p = self.point(name)
            size = _WORDS[p.kind]
            signed = p.kind in ("int16", "sunssf")
            data = int(value).to_bytes(size * 2, "big", signed=signed)
            words = bytes_to_words(data, self.word_order)
            block[p.offset : p.offset + size] = words
        return block


# Model 203: wye-connect three-phase meter, L = 105.
_MODEL_203_POINTS = (
    SunSpecPoint("A", 2, "int16", "A_SF"),
    SunSpecPoint("A_SF", 6, "sunssf"),
    SunSpecPoint("PhV", 7, "int16", "V_SF"),
    SunSpecPoint("V_SF", 15, "sunssf"),
    SunSpecPoint("W", 18, "int16", "W_SF"),
    SunSpecPoint("W_SF", 22, "sunssf"),
    SunSpecPoint("TotWhExp", 38, "acc32", "TotWh_SF"),
    SunSpecPoint("TotWhImp", 46, "acc32", "TotWh_SF"),
    SunSpecPoint("TotWh_SF", 54, "sunssf"),
)

# Model 701: DER AC measurement, L = 153. Energy points are 64-bit accumulators.
_MODEL_701_POINTS = (
    SunSpecPoint("W", 10, "int16", "W_SF"),
    SunSpecPoint("A", 14, "int16", "A_SF"),
    SunSpecPoint("LNV", 16, "uint16", "V_SF"),
    SunSpecPoint("TotWhInj", 19, "acc64", "TotWh_SF"),
    SunSpecPoint("TotWhAbs", 23, "acc64", "TotWh_SF"),
    SunSpecPoint("A_SF", 113, "sunssf"),
    SunSpecPoint("V_SF", 114, "sunssf"),
    SunSpecPoint("W_SF", 116, "sunssf"),
    SunSpecPoint("TotWh_SF", 120, "sunssf"),
)

SDM120 = EastronMap("sdm120", power_register=0x000C, rated_power_w=45 * 230)
SDM630 = EastronMap(
    "sdm630", power_register=0x0034, rated_power_w=3 * 100 * 230, current_register=0x0030, phases=3
)  # 0x0030: sum of line currents
SUNSPEC_203 = SunSpecMap(
    "sunspec203",
    203,
    105,
    _MODEL_203_POINTS,
    import_point="TotWhImp",
    export_point="TotWhExp",
    power_point="W",
    power_import_positive=True,
    rated_power_w=100_000,
    voltage_point="PhV",
    current_point="A",
)
SUNSPEC_701 = SunSpecMap(
    "sunspec701",
    701,
    153,
    _MODEL_701_POINTS,
    import_point="TotWhAbs",
    export_point="TotWhInj",
    power_point="W",
    power_import_positive=False,
    rated_power_w=100_000,
    voltage_point="LNV",
    current_point="A",
)

MODELS: dict[str, EastronMap | SunSpecMap] = {
    "sdm120": SDM120,
    "sdm230": replace(SDM120, model="sdm230"),  # same register map as the SDM120
    "sdm630": SDM630,
    "sunspec203": SUNSPEC_203,
    "sunspec701": SUNSPEC_701,
}


def meter_map(
    model: str | EastronMap | SunSpecMap,
    *,
    word_order: str | None = None,
    rated_power_w: int | None = None,
) -> EastronMap | SunSpecMap:
    """The register map for a --model name, optionally with another word order or rating."""
    if isinstance(model, (EastronMap, SunSpecMap)):
        chosen = model
    else:
        key = model.lower().replace("-", "").replace("_", "")
        if key not in MODELS:
            raise ConfigurationError(f"unknown meter model {model!r}; known: {', '.join(MODELS)}")
        chosen = MODELS[key]
    if word_order is not None:
        if word_order not in WORD_ORDERS:
            raise ConfigurationError(f"word order must be 'big' or 'little', not {word_order!r}")
        chosen = replace(chosen, word_order=word_order)
    if rated_power_w is not None:
        if rated_power_w <= 0:
            raise ConfigurationError("rated power must be positive")
        chosen = replace(chosen, rated_power_w=rated_power_w)
    return chosen


def sunspec_common_model(
    manufacturer: str, model: str, serial: str, version: str = "1.0"
) -> list[int]:
    """SunSpec model 1 (common), L = 66: strings padded with NULs, two characters a register."""

    def text(value: str, registers: int) -> list[int]:
        data = value.encode("ascii")[: registers * 2].ljust(registers * 2, b"\0")
        return list(struct.unpack(f">{registers}H", data))

    block = [COMMON_MODEL_ID, 66]
    block += (
        text(manufacturer, 16) + text(model, 16) + text("", 8) + text(version, 8) + text(serial, 16)
    )
    block += [1, 0x8000]  # DA (device address), pad
    return block


# -- demand-response controls ------------------------------------------------------------


@dataclass(frozen=True)
class ControlMap:
    """Where the board next to the meter takes demand-response commands.

    relay_coil switches the controlled load's contactor (on = True). load_limit_register
    holds the load's power limit in W as an unsigned 32-bit value, high word first.
    """

    relay_coil: int = 0
    load_limit_register: int = 0x1000
    max_load_limit_w: int = 0xFFFFFFFF


CONTROLS = ControlMap()
