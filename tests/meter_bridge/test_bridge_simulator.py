"""The simulator: its profiles and energy integration, and the client reading it over Modbus."""

from __future__ import annotations

import asyncio

import pytest
from bridge_testkit import FAST_RETRY, TIMEOUT_S

from meter_bridge import (
    CommandNotConfirmed,
    ConfigurationError,
    MeterClient,
    SerialSettings,
    read_meter,
    spawn_simulator,
    start_simulator,
)
from meter_bridge.simulator import SimulatedMeter, SiteModel, SiteProfile, clear_sky_fraction

HOUR = 3600.0


class ManualClock:
    """Wall time the test moves by hand, so integration is checked exactly."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_solar_is_a_daylight_bell():
    assert clear_sky_fraction(2 * HOUR) == 0 and clear_sky_fraction(22 * HOUR) == 0
    noon = clear_sky_fraction(12.25 * HOUR)
    assert noon == pytest.approx(1.0)
    assert 0 < clear_sky_fraction(8 * HOUR) < clear_sky_fraction(10 * HOUR) < noon
    assert clear_sky_fraction(16 * HOUR) < clear_sky_fraction(14 * HOUR) < noon
    assert clear_sky_fraction(24 * HOUR + 12.25 * HOUR) == pytest.approx(noon)  # every day


def test_household_load_peaks_morning_and_evening():
    load = SiteModel(SiteProfile.named("consumer")).load_w
    night, morning, midday, evening = (
        load(3 * HOUR),
        load(7.25 * HOUR),
        load(13 * HOUR),
        load(19.5 * HOUR),
    )
    assert morning > 2 * night and evening > 2 * midday and evening > morning


def test_clouds_are_seeded():
    day = [t * 300.0 + 6 * HOUR for t in range(150)]
    a = SiteModel(SiteProfile.named("prosumer", seed=7))
    b = SiteModel(SiteProfile.named("prosumer", seed=7))
    c = SiteModel(SiteProfile.named("prosumer", seed=8))
    assert [a.pv_w(t) for t in day] == [b.pv_w(t) for t in day]
    assert [a.pv_w(t) for t in day] != [c.pv_w(t) for t in day]
    assert max(a.pv_w(t) for t in day) <= 5000
    clear = [5000 * clear_sky_fraction(t) for t in day]
    assert any(
        pv < 0.8 * sky for pv, sky in zip((a.pv_w(t) for t in day), clear) if sky > 1000
    )  # some clouds


def test_registers_integrate_net_power_at_speed():
    clock = ManualClock()
    meter = SimulatedMeter(
        SiteProfile.named("consumer"),
        speed=3600,
        start_hour=3.0,
        clock=clock,
        import_wh=1000,
        export_wh=0,
    )
    expected_mwh = 0
    t = 3 * HOUR
    for _ in range(60):  # one simulated hour in 60 s steps, as the meter integrates it
        expected_mwh += round(meter.net_power_w(t + 30) / 3.6 * 60)
        t += 60
    clock.now += 1.0  # one wall second at speed 3600: one simulated hour
    m = meter.measurement()
    assert m.import_wh == 1000 + expected_mwh // 1000
    assert 100 < m.import_wh - 1000 < 1000  # a night hour of a household: a few hundred Wh
    assert m.export_wh == 0
    assert meter.hour() == pytest.approx(4.0)


def test_prosumer_exports_at_noon_and_relay_does_not_stop_pv():
    clock = ManualClock()
    meter = SimulatedMeter(
        SiteProfile.named("prosumer", rated_power_w=6000), speed=60, start_hour=12.0, clock=clock
    )
    start = meter.measurement()
    assert start.power_w < -1000
    meter.set_relay(False)
    assert meter.measurement().power_w == -round(meter.model.pv_w(meter.t_s))
    clock.now += 60  # one simulated hour
    end = meter.measurement()
    assert end.import_wh == start.import_wh
    assert end.export_wh - start.export_wh > 1000


@pytest.mark.parametrize("model", ["sdm120", "sdm230", "sdm630", "sunspec203", "sunspec701"])
def test_client_reads_every_model_from_the_simulator(model):
    with start_simulator(0, model, "prosumer", speed=3600, start_hour=12.0) as sim:

        async def go():
            async with MeterClient(
                model, sim.host, sim.port, timeout_s=TIMEOUT_S, retry=FAST_RETRY
            ) as c:
                first = await c.read()
                await asyncio.sleep(0.3)  # 18 simulated minutes
                return first, await c.read()

        first, second = asyncio.run(go())
    assert first.model == model
    assert first.power_w < 0  # midday PV surplus
    assert second.export_wh - first.export_wh > 100  # several kW for ten minutes
    assert second.import_wh == first.import_wh
    assert 220_000 < first.voltage_mv < 240_000
    assert second.timestamp_ms > first.timestamp_ms


@pytest.mark.parametrize("base", [0, 50000])
def test_simulator_serves_sunspec_at_other_bases(base):
    with start_simulator(
        0, "sunspec701", "consumer", speed=1, start_hour=19.5, sunspec_base=base
    ) as sim:

        async def go():
            async with MeterClient(
                "sunspec701", sim.host, sim.port, timeout_s=TIMEOUT_S, retry=FAST_RETRY
            ) as c:
                return await c.read(), c.model_address

        reading, address = asyncio.run(go())
    assert address == base + 2 + 68
    assert reading.power_w > 500 and reading.export_wh == 0  # an evening household


def test_relay_off_drops_the_load_and_stops_import():
    with start_simulator(0, "sdm630", "consumer", speed=600, start_hour=19.0) as sim:

        async def go():
            async with MeterClient(
                "sdm630", sim.host, sim.port, timeout_s=TIMEOUT_S, retry=FAST_RETRY
            ) as c:
                on = await c.read()
                assert await c.switch_relay(False) is False
                off1 = await c.read()
                await asyncio.sleep(0.2)
                off2 = await c.read()
                assert await c.switch_relay(True) is True
                back = await c.read()
                return on, off1, off2, back

        on, off1, off2, back = asyncio.run(go())
    assert on.power_w > 500
    assert off1.power_w == 0 and off2.power_w == 0
    assert off2.import_wh == off1.import_wh  # no load, no PV: the register stands still
    assert back.power_w > 500


def test_load_limit_caps_power_and_clamps_above_the_controller_maximum():
    with start_simulator(
        0, "sunspec203", "consumer", speed=1, start_hour=19.5, load_limit_max_w=5000
    ) as sim:

        async def go():
            async with MeterClient(
                "sunspec203", sim.host, sim.port, timeout_s=TIMEOUT_S, retry=FAST_RETRY
            ) as c:
                before = await c.read()
                assert await c.set_load_limit(400) == 400
                limited = await c.read()
                with pytest.raises(
                    CommandNotConfirmed, match="wrote 9000 but the device reads back 5000"
                ):
                    await c.set_load_limit(9000)
                return before, limited, await c.load_limit()

        before, limited, final = asyncio.run(go())
    assert before.power_w > 1000
    assert 0 < limited.power_w <= 410  # W_SF = 1: 10 W steps
    assert final == 5000


def test_rtu_framing_over_a_serial_url():
    with start_simulator(0, "sdm120", "consumer", speed=1, framer="rtu", device_id=7) as sim:

        async def go():
            serial = SerialSettings(f"socket://127.0.0.1:{sim.port}")
            async with MeterClient(
                "sdm120", serial=serial, device_id=7, timeout_s=TIMEOUT_S, retry=FAST_RETRY
            ) as c:
                reading = await c.read()
                assert await c.switch_relay(False) is False
                return reading

        reading = asyncio.run(go())
    assert reading.import_wh >= 1_250_000 and reading.power_w > 0


def test_read_meter_opens_reads_and_closes():
    with start_simulator(0, "sdm120", "consumer", speed=1, start_hour=7.25) as sim:
        reading = asyncio.run(
            read_meter(sim.host, sim.port, "sdm120", device_id=1, timeout_s=TIMEOUT_S)
        )
    assert reading.model == "sdm120" and reading.power_w > 300 and reading.export_wh == 0


def test_a_taken_port_is_a_clear_error():
    with start_simulator(0, "sdm630") as sim:
        with pytest.raises(
            ConfigurationError,
            match=f"(?i)cannot serve Modbus on 127.0.0.1:{sim.port}: address already in use",
        ):
            start_simulator(sim.port, "sdm630")
        with pytest.raises(
            ConfigurationError, match="(?i)simulator did not start.*address already in use"
        ):
            spawn_simulator(sim.port, "sdm630")
