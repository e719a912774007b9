"""Units of money and energy. Energy is in integer Wh; money in integer units of 1/1000 tick,
where a tick (the unit of a price per Wh) is R$ 0.01: 1 BRL = 100 ticks = 100,000 units."""

from __future__ import annotations

UNITS_PER_TICK = 1_000
UNITS_PER_BRL = 100_000
U16_MAX = 2**16 - 1
U32_MAX = 2**32 - 1
U64_MAX = 2**64 - 1


def units_to_brl(units: int) -> str:
    """Money units as a BRL amount with 5 decimals (`-1.50000`)."""
    sign = "-" if units < 0 else ""
    units = abs(int(units))
    return f"{sign}{units // UNITS_PER_BRL}.{units % UNITS_PER_BRL:05d}"
