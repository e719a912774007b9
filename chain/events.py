"""A block's events (`System.Events`) decoded by functions compiled once per runtime from its
metadata's type registry. scalecodec, which substrate-interface decodes them with, takes about
0.3 ms an event: a block of 3,000 relayed orders took a second, as long as the indexer had for it.

Values come out in scalecodec's shapes, which the rest of the code reads: accounts as SS58, unit
variants as their name, other variants as {name: value}, structs as dicts, a one-field tuple
struct as its field, bytes and byte arrays as 0x hex, `Option` as None or its value. A chain test
decodes real blocks both ways and compares them."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from market import ss58

# decode(data, pos) -> (value, position after it)
Decode = Callable[[bytes, int], tuple[Any, int]]

# Fixed-width integers: name -> (bytes, signed).
_FIXED = {
    f"{sign}{bits}": (bits // 8, sign == "i") for sign in "ui" for bits in (8, 16, 32, 64, 128, 256)
}


def read_compact(data: bytes, pos: int) -> tuple[int, int]:
    """SCALE's compact integer at `pos`: (its value, the position after it)."""
    mode = data[pos] & 3
    if mode == 0:
        return data[pos] >> 2, pos + 1
    if mode == 1:
        return int.from_bytes(data[pos : pos + 2], "little") >> 2, pos + 2
    if mode == 2:
        return int.from_bytes(data[pos : pos + 4], "little") >> 2, pos + 4
    size = (data[pos] >> 2) + 4
    return int.from_bytes(data[pos + 1 : pos + 1 + size], "little"), pos + 1 + size


class EventDecoder:
    """Decodes the raw value of `System.Events` into (pallet, event, attributes, extrinsic
    index or None) tuples, in block order."""

    def __init__(self, registry: list[dict], events_type: int):
        self._types = {t["id"]: t["type"] for t in registry}
        self._compiled: dict[int, Decode] = {}
        self._records = self._record_decoder(events_type)

    def decode(self, data: bytes) -> list[tuple[str, str, Any, int | None]]:
        count, pos = read_compact(data, 0)
        out = []
        for _ in range(count):
            record, pos = self._records(data, pos)
            out.append(record)
        if pos != len(data):
            raise ValueError(f"{len(data) - pos} bytes left after {count} events")
        return out

    # -- the record: phase, the runtime's event (pallet variant around the pallet's event), topics
    def _record_decoder(self, events_type: int) -> Decode:
        record_type = self._types[events_type]["def"]["sequence"]["type"]
        fields = {
            f["name"]: f["type"] for f in self._types[record_type]["def"]["composite"]["fields"]
        }
        phase = self._decoder(fields["phase"])
        topics = self._decoder(fields["topics"])
        pallets = {
            v["index"]: (v["name"], self._event_of(v["fields"][0]["type"]))
            for v in self._types[fields["event"]]["def"]["variant"]["variants"]
        }

        def record(data: bytes, pos: int) -> tuple[Any, int]:
            when, pos = phase(data, pos)
            pallet, events = pallets[data[pos]]
            name, fields_of = events[data[pos + 1]]
            attributes, pos = fields_of(data, pos + 2)
            _, pos = topics(data, pos)
            index = when.get("ApplyExtrinsic") if isinstance(when, dict) else None
            return (pallet, name, attributes, index), pos

        return record

    def _event_of(self, type_id: int) -> dict[int, tuple[str, Decode]]:
        return {
            v["index"]: (v["name"], self._fields(v["fields"]))
            for v in self._types[type_id]["def"]["variant"]["variants"]
        }

    # -- generic types -----------------------------------------------------------------------
    def _decoder(self, type_id: int) -> Decode:
        found = self._compiled.get(type_id)
        if found is None:
            # Recursive types reach themselves through this late-bound stub.
            self._compiled[type_id] = lambda data, pos: self._compiled[type_id](data, pos)
            found = self._compiled[type_id] = self._compile(type_id)
        return found

    def _compile(self, type_id: int) -> Decode:
        t = self._types[type_id]
        ((kind, spec),) = t["def"].items()
        path = t.get("path") or []
        if path[-1:] == ["AccountId32"]:
            return lambda data, pos: (ss58(data[pos : pos + 32]), pos + 32)
        if kind == "primitive":
            return _primitive(spec)
        if kind == "compact":
            return read_compact
        if kind == "composite":
            return self._fields(spec["fields"], unit=())
        if kind == "variant":
            if path == ["Option"]:
                some = self._fields(spec["variants"][1]["fields"])
                return lambda data, pos: (None, pos + 1) if data[pos] == 0 else some(data, pos + 1)
            return self._variant(spec["variants"])
        if kind in ("sequence", "array"):
            item_type = spec["type"]
            item = self._types[item_type]["def"]
            is_byte = item.get("primitive") == "u8"
            if kind == "array":
                n = spec["len"]
                if is_byte:
                    return lambda data, pos: ("0x" + data[pos : pos + n].hex(), pos + n)
                return self._repeat(item_type, lambda data, pos: (n, pos))
            if is_byte:

                def byte_vec(data: bytes, pos: int) -> tuple[str, int]:
                    n, pos = read_compact(data, pos)
                    return "0x" + data[pos : pos + n].hex(), pos + n

                return byte_vec
            return self._repeat(item_type, read_compact)
        if kind == "tuple":
            return _tuple_of([self._decoder(i) for i in spec])
        raise ValueError(f"type {type_id} ({kind}) has no decoder here")

    def _repeat(self, item_type: int, length: Decode) -> Decode:
        item = self._decoder(item_type)

        def repeat(data: bytes, pos: int) -> tuple[list, int]:
            n, pos = length(data, pos)
            out = []
            for _ in range(n):
                value, pos = item(data, pos)
                out.append(value)
            return out, pos

        return repeat

    def _fields(self, fields: list[dict], unit: Any = None) -> Decode:
        """Named fields as a dict, one unnamed field as its value, several as a tuple."""
        if not fields:
            return lambda data, pos: (unit, pos)
        decoders = [self._decoder(f["type"]) for f in fields]
        if fields[0].get("name") is None:
            return decoders[0] if len(decoders) == 1 else _tuple_of(decoders)
        named = list(zip([f["name"] for f in fields], decoders))

        def struct_of(data: bytes, pos: int) -> tuple[dict, int]:
            out = {}
            for name, part in named:
                out[name], pos = part(data, pos)
            return out, pos

        return struct_of

    def _variant(self, variants: list[dict]) -> Decode:
        cases: dict[int, tuple[str, Decode | None]] = {
            v["index"]: (v["name"], self._fields(v["fields"]) if v["fields"] else None)
            for v in variants
        }

        def variant(data: bytes, pos: int) -> tuple[Any, int]:
            name, fields_of = cases[data[pos]]
            if fields_of is None:
                return name, pos + 1
            value, pos = fields_of(data, pos + 1)
            return {name: value}, pos

        return variant


def _tuple_of(parts: list[Decode]) -> Decode:
    def tuple_of(data: bytes, pos: int) -> tuple[Any, int]:
        out = []
        for part in parts:
            value, pos = part(data, pos)
            out.append(value)
        return tuple(out), pos

    return tuple_of


def _primitive(name: str) -> Decode:
    if name in _FIXED:
        size, signed = _FIXED[name]
        return lambda data, pos: (
            int.from_bytes(data[pos : pos + size], "little", signed=signed),
            pos + size,
        )
    if name == "bool":
        return lambda data, pos: (data[pos] == 1, pos + 1)
    if name == "str":

        def text(data: bytes, pos: int) -> tuple[str, int]:
            n, pos = read_compact(data, pos)
            return data[pos : pos + n].decode("utf-8"), pos + n

        return text
    if name == "char":
        return lambda data, pos: (chr(struct.unpack_from("<I", data, pos)[0]), pos + 4)
    raise ValueError(f"primitive {name} has no decoder here")
