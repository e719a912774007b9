"""The client against a plain pymodbus server whose registers are set by hand, at literal
addresses."""

from __future__ import annotations

import asyncio
import math
import struct

import pytest
from bridge_testkit import FAST_RETRY, TIMEOUT_S

from meter_bridge import (
    CommandNotConfirmed,
    ControlMap,
    DiscoveryError,
    MeterClient,
    ModbusReplyError,
    ReadingError,
    RegisterBank,
    Table,
)


def f32(value: float, order: str = "big") -> list[int]:
    high, low = struct.unpack(">HH", struct.pack(">f", value))
    return [high, low] if order == "big" else [low, high]


def eastron_bank(
    *, order="big", import_kwh=1234.567, export_kwh=89.5, p_0c=-1500.0, p_34=2400.0
) -> RegisterBank:
    bank = RegisterBank()
    bank.set_words(Table.INPUT_REGISTERS, 0, [0] * 0x50)
    bank.set_words(Table.INPUT_REGISTERS, 0x0000, f32(231.5, order))
    bank.set_words(Table.INPUT_REGISTERS, 0x0006, f32(6.5, order))
    bank.set_words(Table.INPUT_REGISTERS, 0x000C, f32(p_0c, order))
    bank.set_words(Table.INPUT_REGISTERS, 0x0030, f32(10.5, order))
    bank.set_words(Table.INPUT_REGISTERS, 0x0034, f32(p_34, order))
    bank.set_words(Table.INPUT_REGISTERS, 0x0048, f32(import_kwh, order))
    bank.set_words(Table.INPUT_REGISTERS, 0x004A, f32(export_kwh, order))
    return bank


def read(model, port, **kwargs):
    async def go():
        async with MeterClient(
            model, "127.0.0.1", port, timeout_s=TIMEOUT_S, retry=FAST_RETRY, **kwargs
        ) as c:
            return await c.read()

    return asyncio.run(go())


def test_sdm120_and_sdm630_read_their_own_power_register(serve):
    server = serve(eastron_bank())
    sdm120 = read("sdm120", server.port)
    assert (sdm120.import_wh, sdm120.export_wh, sdm120.power_w) == (1_234_567, 89_500, -1500)
    assert sdm120.voltage_mv == 231_500 and sdm120.current_ma == 6_500
    sdm630 = read("sdm630", server.port)
    assert (sdm630.import_wh, sdm630.export_wh, sdm630.power_w) == (1_234_567, 89_500, 2400)
    assert sdm630.current_ma == 10_500  # 0x0030, sum of line currents
    assert read("sdm230", server.port).power_w == -1500


def test_word_order_little_needs_the_little_map(serve):
    server = serve(eastron_bank(order="little"))
    assert read("sdm630", server.port, word_order="little").import_wh == 1_234_567
    # Read with the wrong word order, the same registers are nonsense: refused or different.
    try:
        wrong = read("sdm630", server.port)
    except ReadingError:
        pass
    else:
        assert wrong.import_wh != 1_234_567


@pytest.mark.parametrize(
    "bad, register, problem",
    [
        (dict(import_kwh=math.nan), r"sdm630\.import_kwh at 0x0048", "NaN"),
        (dict(export_kwh=-12.0), r"sdm630\.export_kwh at 0x004A", "negative"),
        (dict(import_kwh=3e9), r"sdm630\.import_kwh at 0x0048", "absurd"),
        (dict(p_34=5e6), r"sdm630\.power_w at 0x0034", "absurd"),
        (dict(p_34=-math.inf), r"sdm630\.power_w at 0x0034", "-inf"),
    ],
)
def test_bad_register_values_raise_reading_error(serve, bad, register, problem):
    server = serve(eastron_bank(**bad))
    with pytest.raises(ReadingError, match=f"{register}.*{problem}"):
        read("sdm630", server.port)


def text_words(text: str, registers: int) -> list[int]:
    data = text.encode().ljust(registers * 2, b"\0")
    return list(struct.unpack(f">{registers}H", data))


def sunspec_chain(models: list[list[int]]) -> list[int]:
    return [0x5375, 0x6E53] + [w for block in models for w in block] + [0xFFFF, 0]


def common_model() -> list[int]:
    return (
        [1, 66]
        + text_words("Acme", 16)
        + text_words("Meter", 16)
        + [0] * 8
        + text_words("1.0", 8)
        + text_words("SN1", 16)
        + [1, 0x8000]
    )


def model_203(*, w, w_sf, imp, exp, wh_sf) -> list[int]:
    block = [0] * 107
    block[0], block[1] = 203, 105
    block[7], block[15] = 2301, 0xFFFF  # PhV 230.1 V with V_SF -1
    block[2], block[6] = 1234, 0xFFFE  # A 12.34 A with A_SF -2
    block[18], block[22] = w & 0xFFFF, w_sf & 0xFFFF
    block[38:40] = [exp >> 16, exp & 0xFFFF]
    block[46:48] = [imp >> 16, imp & 0xFFFF]
    block[54] = wh_sf & 0xFFFF
    return block


def model_701(*, w, w_sf, injected, absorbed, wh_sf) -> list[int]:
    block = [0] * 155
    block[0], block[1] = 701, 153
    block[10] = w & 0xFFFF
    block[16] = 2299  # LNV
    block[19:23] = [(injected >> s) & 0xFFFF for s in (48, 32, 16, 0)]
    block[23:27] = [(absorbed >> s) & 0xFFFF for s in (48, 32, 16, 0)]
    block[114] = 0xFFFF  # V_SF -1
    block[116] = w_sf & 0xFFFF
    block[120] = wh_sf & 0xFFFF
    return block


def other_model(model_id: int, length: int) -> list[int]:
    return [model_id, length] + [0x1111] * length


@pytest.mark.parametrize("base", [0, 40000, 50000])
def test_sunspec203_discovered_at_each_base(serve, base):
    bank = RegisterBank()
    chain = sunspec_chain(
        [
            common_model(),
            other_model(11, 13),
            model_203(w=-456, w_sf=1, imp=98765, exp=4321, wh_sf=1),
        ]
    )
    bank.set_words(Table.HOLDING_REGISTERS, base, chain)
    server = serve(bank)

    async def go():
        async with MeterClient(
            "sunspec203", "127.0.0.1", server.port, timeout_s=TIMEOUT_S, retry=FAST_RETRY
        ) as c:
            reading = await c.read()
            return reading, c.model_address

    reading, address = asyncio.run(go())
    assert address == base + 2 + 68 + 15  # marker, model 1, model 11, then 203
    assert (reading.import_wh, reading.export_wh, reading.power_w) == (987_650, 43_210, -4560)
    assert reading.voltage_mv == 230_100 and reading.current_ma == 12_340


@pytest.mark.parametrize("base", [0, 40000, 50000])
def test_sunspec701_discovered_at_each_base(serve, base):
    bank = RegisterBank()
    chain = sunspec_chain(
        [common_model(), model_701(w=3210, w_sf=0, injected=2**32 + 99, absorbed=555, wh_sf=0)]
    )
    bank.set_words(Table.HOLDING_REGISTERS, base, chain)
    server = serve(bank)
    reading = read("sunspec701", server.port)
    assert (reading.export_wh, reading.import_wh) == (2**32 + 99, 555)
    assert reading.power_w == -3210  # a DER injecting 3210 W: the site exports
    assert reading.voltage_mv == 229_900


def test_sunspec_explicit_base_and_missing_model(serve):
    bank = RegisterBank()
    bank.set_words(
        Table.HOLDING_REGISTERS, 50000, sunspec_chain([common_model(), other_model(101, 50)])
    )
    server = serve(bank)
    with pytest.raises(
        DiscoveryError, match=r"base 50000 has no model 203; models found: \[1, 101\]"
    ):
        read("sunspec203", server.port)
    with pytest.raises(DiscoveryError, match="no SunSpec marker"):
        read("sunspec203", server.port, sunspec_base=40000)


def test_no_sunspec_device_is_a_discovery_error(serve):
    bank = RegisterBank()
    bank.set_words(Table.HOLDING_REGISTERS, 0, [0x1234, 0x5678])  # something, but not "SunS"
    server = serve(bank)
    with pytest.raises(
        DiscoveryError,
        match=r"no SunSpec marker 'SunS'.*40000 \(exception 2\).*0 \(found 0x1234 0x5678\)",
    ):
        read("sunspec203", server.port)


def test_sunspec_bad_values_raise_reading_error(serve):
    bank = RegisterBank()
    block = model_203(w=100, w_sf=0, imp=5, exp=5, wh_sf=0)
    block[54] = 0x8000  # TotWh_SF not implemented; model 203 starts at 40000 + 2 + 68
    bank.set_words(Table.HOLDING_REGISTERS, 40000, sunspec_chain([common_model(), block]))
    server = serve(bank)
    with pytest.raises(
        ReadingError, match=r"sunspec203\.TotWh_SF at 0x9CBC \(40124\).*not implemented"
    ):
        read("sunspec203", server.port)


def control_bank() -> RegisterBank:
    bank = eastron_bank()
    bank.set_bits(Table.COILS, 0, [True])
    bank.set_words(Table.HOLDING_REGISTERS, 0x1000, [0, 7000])
    return bank


def test_relay_and_load_limit_with_read_back(serve):
    bank = control_bank()
    server = serve(bank)

    async def go():
        async with MeterClient(
            "sdm120", "127.0.0.1", server.port, timeout_s=TIMEOUT_S, retry=FAST_RETRY
        ) as c:
            assert await c.switch_relay(False) is False
            assert await c.relay() is False
            assert await c.set_load_limit(70_000) == 70_000  # above 16 bits: both words used
            return await c.load_limit()

    assert asyncio.run(go()) == 70_000
    assert bank.get(Table.COILS, 0) == [False]
    assert bank.get(Table.HOLDING_REGISTERS, 0x1000, 2) == [1, 70_000 - 65_536]


def test_stuck_relay_and_clamped_limit_are_not_confirmed(serve):
    bank = control_bank()

    def device_ignores_or_clamps(table, address, values):
        if table is Table.COILS:
            return bank.get(table, address, len(values))  # a welded contactor
        limit = min((values[0] << 16) | values[1], 5000)
        return [limit >> 16, limit & 0xFFFF]

    bank.on_write = device_ignores_or_clamps
    server = serve(bank)

    async def go():
        async with MeterClient(
            "sdm120", "127.0.0.1", server.port, timeout_s=TIMEOUT_S, retry=FAST_RETRY
        ) as c:
            with pytest.raises(
                CommandNotConfirmed,
                match="relay coil 0.*wrote False but the device reads back True",
            ):
                await c.switch_relay(False)
            with pytest.raises(
                CommandNotConfirmed, match="load limit register 0x1000.*wrote 8000.*reads back 5000"
            ):
                await c.set_load_limit(8000)
            assert await c.set_load_limit(4000) == 4000

    asyncio.run(go())


def test_write_to_an_unmapped_register_is_an_exception_reply(serve):
    bank = control_bank()
    bank.on_write = lambda table, address, values: values
    server = serve(bank)

    async def go():
        async with MeterClient(
            "sdm120",
            "127.0.0.1",
            server.port,
            timeout_s=TIMEOUT_S,
            retry=FAST_RETRY,
            controls=ControlMap(load_limit_register=0x2000),
        ) as c:
            with pytest.raises(ModbusReplyError, match="exception 2"):
                await c.set_load_limit(100)

    asyncio.run(go())
