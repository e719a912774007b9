"""Register maps without a network: word order, float32, scale factors, value checks."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meter_bridge import ConfigurationError, Measurement, ReadingError, meter_map
from meter_bridge.registers import decode_float32, encode_float32


def f32_words(value: float, word_order: str = "big") -> list[int]:
    high, low = struct.unpack(">HH", struct.pack(">f", value))
    return [high, low] if word_order == "big" else [low, high]


def sdm_words(
    import_kwh,
    export_kwh,
    power_w,
    *,
    power_at=0x000C,
    order="big",
    volts=230.0,
    amps=5.0,
    current_at=0x0006,
):
    words = {a: 0 for a in range(0x0000, 0x0050)}
    for address, value in (
        (0x0048, import_kwh),
        (0x004A, export_kwh),
        (power_at, power_w),
        (0x0000, volts),
        (current_at, amps),
    ):
        words[address], words[address + 1] = f32_words(value, order)
    return words


def test_float32_word_order_is_high_word_first_for_big():
    # 1234.5 is 0x449A5000 as an IEEE-754 float32.
    assert encode_float32(1234.5, "big") == [0x449A, 0x5000]
    assert encode_float32(1234.5, "little") == [0x5000, 0x449A]
    assert decode_float32([0x449A, 0x5000], "big") == 1234.5
    assert decode_float32([0x5000, 0x449A], "little") == 1234.5
    assert decode_float32([0x5000, 0x449A], "big") != 1234.5


def test_word_order_is_a_map_property():
    assert meter_map("sdm630").word_order == "big"
    little = meter_map("sdm630", word_order="little")
    assert little.word_order == "little"
    words = sdm_words(1234.567, 89.5, -1500.0, power_at=0x0034, order="little", current_at=0x0030)
    assert little.decode(words).import_wh == 1234567
    with pytest.raises(ConfigurationError, match="word order"):
        meter_map("sdm630", word_order="middle")


def test_sdm120_decodes_kwh_to_integer_wh_and_signed_power():
    m = meter_map("sdm120").decode(sdm_words(1234.567, 89.5, -1500.25))
    assert m == Measurement(
        import_wh=1234567, export_wh=89500, power_w=-1500, voltage_mv=230000, current_ma=5000
    )
    assert all(isinstance(v, int) for v in (m.import_wh, m.export_wh, m.power_w))


def test_sdm230_shares_the_sdm120_map():
    sdm120, sdm230 = meter_map("sdm120"), meter_map("sdm230")
    assert sdm230.power_register == sdm120.power_register == 0x000C
    assert sdm230.decode(sdm_words(1.0, 2.0, 3.0)) == sdm120.decode(sdm_words(1.0, 2.0, 3.0))


@pytest.mark.parametrize(
    "bad, problem", [(math.nan, "NaN"), (math.inf, "inf"), (-0.5, "negative"), (2e9, "absurd")]
)
def test_bad_import_register_names_the_register(bad, problem):
    with pytest.raises(ReadingError, match=problem) as err:
        meter_map("sdm120").decode(sdm_words(bad, 1.0, 100.0))
    assert err.value.register == "sdm120.import_kwh" and err.value.address == 0x0048
    assert "0x0048" in str(err.value)


def test_negative_export_and_absurd_power_are_refused():
    with pytest.raises(ReadingError, match="export_kwh.*0x004A.*negative"):
        meter_map("sdm120").decode(sdm_words(1.0, -3.0, 100.0))
    with pytest.raises(ReadingError, match="power_w.*0x000C.*absurd"):
        meter_map("sdm120").decode(sdm_words(1.0, 1.0, 10_000_000.0))
    # The same power is fine for a meter rated for it.
    assert (
        meter_map("sdm120", rated_power_w=8_000_000)
        .decode(sdm_words(1.0, 1.0, 10_000_000.0))
        .power_w
        == 10_000_000
    )


def test_negative_power_is_export_not_an_error():
    assert (
        meter_map("sdm630")
        .decode(sdm_words(1, 1, -20_000.0, power_at=0x0034, current_at=0x0030))
        .power_w
        == -20_000
    )


def test_unknown_model_is_a_clear_error():
    with pytest.raises(ConfigurationError, match="unknown meter model 'sdm999'.*sdm120"):
        meter_map("sdm999")


def sunspec203_block(*, w=0, w_sf=0, imp=0, exp=0, wh_sf=0, volts=2300, v_sf=-1, amps=500, a_sf=-2):
    """Model 203 block (ID at index 0) with the offsets of sunspec/models json/model_203.json."""
    block = [0] * 107
    block[0], block[1] = 203, 105
    block[2], block[6] = amps & 0xFFFF, a_sf & 0xFFFF
    block[7], block[15] = volts & 0xFFFF, v_sf & 0xFFFF
    block[18], block[22] = w & 0xFFFF, w_sf & 0xFFFF
    block[38], block[39] = exp >> 16, exp & 0xFFFF
    block[46], block[47] = imp >> 16, imp & 0xFFFF
    block[54] = wh_sf & 0xFFFF
    return block


def as_words(block, base):
    return {base + i: w for i, w in enumerate(block)}


def test_sunspec203_scale_factors():
    mmap = meter_map("sunspec203")
    m = mmap.decode(
        as_words(sunspec203_block(w=-123, w_sf=1, imp=12345, exp=678, wh_sf=3), 40069), 40069
    )
    assert (m.import_wh, m.export_wh, m.power_w) == (12_345_000, 678_000, -1230)
    assert (m.voltage_mv, m.current_ma) == (230_000, 5_000)
    # Negative energy scale factor: floored, so the register never runs ahead of itself.
    m = mmap.decode(as_words(sunspec203_block(imp=12349, exp=5, wh_sf=-1), 0), 0)
    assert (m.import_wh, m.export_wh) == (1234, 0)


def test_sunspec_not_implemented_and_bad_scale_factor():
    mmap = meter_map("sunspec203")
    with pytest.raises(ReadingError, match=r"sunspec203\.W at 0x9C57 \(40023\).*not implemented"):
        mmap.decode(as_words(sunspec203_block(w=-0x8000), 40005), 40005)  # 0x8000: int16 NI
    with pytest.raises(ReadingError, match=r"TotWh_SF.*outside -10..10"):
        mmap.decode(as_words(sunspec203_block(wh_sf=11), 0), 0)
    with pytest.raises(ReadingError, match="absurd power"):
        mmap.decode(as_words(sunspec203_block(w=30000, w_sf=2), 0), 0)
    with pytest.raises(ReadingError, match="expected model 203"):
        mmap.decode(as_words([701] + sunspec203_block()[1:], 0), 0)


def test_sunspec701_acc64_and_injection_sign():
    block = [0] * 155
    block[0], block[1] = 701, 153
    block[10] = 2500  # W: a DER counts injection positive
    injected = 2**33 + 7
    block[19:23] = [(injected >> s) & 0xFFFF for s in (48, 32, 16, 0)]
    block[23:27] = [0, 0, 0, 777]
    block[116] = 0xFFFF  # W_SF = -1
    block[120] = 1  # TotWh_SF
    m = meter_map("sunspec701").decode(as_words(block, 50000), 50000)
    assert m.export_wh == injected * 10 and m.import_wh == 7770
    assert m.power_w == -250  # injecting 250 W is exporting


eastron_maps = st.sampled_from(["sdm120", "sdm630"])
orders = st.sampled_from(["big", "little"])


@settings(max_examples=60, deadline=None)
@given(
    model=eastron_maps,
    order=orders,
    imp=st.integers(0, 8_000_000),
    exp=st.integers(0, 8_000_000),
    power=st.integers(-10_000, 10_000),
)
def test_eastron_encode_decode_round_trip(model, order, imp, exp, power):
    # Below 8 MWh a float32 kWh value keeps every Wh, so the round trip is exact.
    mmap = meter_map(model, word_order=order)
    words = {a: 0 for a in range(0x50)}
    for _table, address, regs in mmap.encode(Measurement(imp, exp, power, 230_000, 1_000)):
        words.update(zip(range(address, address + len(regs)), regs))
    m = mmap.decode(words)
    assert (m.import_wh, m.export_wh, m.power_w) == (imp, exp, power)


@settings(max_examples=60, deadline=None)
@given(
    model=st.sampled_from(["sunspec203", "sunspec701"]),
    imp=st.integers(0, 2**32 - 1),
    exp=st.integers(0, 2**32 - 1),
    power=st.integers(-30_000, 30_000),
)
def test_sunspec_encode_decode_round_trip(model, imp, exp, power):
    mmap = meter_map(model, rated_power_w=20_000)  # W fits int16 with W_SF = 0
    m = mmap.decode(
        as_words(mmap.encode_model(Measurement(imp, exp, power, 231_400, 12_340)), 40002), 40002
    )
    assert (m.import_wh, m.export_wh, m.power_w, m.voltage_mv, m.current_ma) == (
        imp,
        exp,
        power,
        231_400,
        12_340,
    )
