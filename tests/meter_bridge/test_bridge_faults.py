"""Faults: exception replies, timeouts and a dead meter lead to retries, then a stale meter."""

from __future__ import annotations

import asyncio
import time

import pytest
from bridge_testkit import FAST_RETRY, TIMEOUT_S

from meter_bridge import (
    MeterClient,
    MeterStale,
    ModbusReplyError,
    RegisterBank,
    RetryPolicy,
    Table,
    start_simulator,
)

BUSY = 0x06


def test_transient_busy_replies_are_retried(serve):
    with start_simulator(0, "sdm630", "consumer", speed=1) as sim:
        sim.inject_faults(BUSY, 2)  # the first two requests are answered "busy"

        async def go():
            async with MeterClient(
                "sdm630", sim.host, sim.port, timeout_s=TIMEOUT_S, retry=FAST_RETRY
            ) as c:
                reading = await c.read()
                return reading, c.stale

        before = sim.bank.requests
        reading, stale = asyncio.run(go())
        assert reading.import_wh > 0 and not stale
        assert sim.bank.requests - before == 3  # two busy answers, then the read


def test_persistent_busy_makes_the_meter_stale_until_it_answers(serve):
    with start_simulator(0, "sunspec203", "prosumer", speed=1) as sim:

        async def go():
            async with MeterClient(
                "sunspec203", sim.host, sim.port, timeout_s=TIMEOUT_S, retry=FAST_RETRY
            ) as c:
                sim.inject_faults(BUSY, 100)
                started = time.monotonic()
                with pytest.raises(
                    MeterStale,
                    match=(
                        r"sunspec203 at 127\.0\.0\.1:\d+ device 1 is stale"
                        r".*3 attempts.*exception 6"
                    ),
                ):
                    await c.read()
                waited = time.monotonic() - started
                assert c.stale and c.failed_operations == 1
                with pytest.raises(MeterStale):
                    await c.read()
                assert c.failed_operations == 2
                sim.bank.clear_faults()
                reading = await c.read()
                assert not c.stale and c.failed_operations == 0
                return waited, reading

        waited, reading = asyncio.run(go())
        assert waited >= 0.02 + 0.04  # backoff: 20 ms, then 40 ms
        assert reading.export_wh > 0


def test_illegal_address_is_not_retried_and_not_stale(serve):
    bank = RegisterBank()
    bank.set_words(Table.INPUT_REGISTERS, 0x0100, [0] * 4)  # nothing where an SDM keeps its values
    server = serve(bank)

    async def go():
        async with MeterClient(
            "sdm120", "127.0.0.1", server.port, timeout_s=TIMEOUT_S, retry=FAST_RETRY
        ) as c:
            with pytest.raises(
                ModbusReplyError,
                match=(
                    r"exception 2 \(illegal data address\) to read input registers"
                    r" 0x0000\.\.0x004B"
                ),
            ) as err:
                await c.read()
            return err.value, c.stale

    error, stale = asyncio.run(go())
    assert error.permanent and not stale


def test_a_refused_request_is_asked_once(serve):
    bank = RegisterBank()
    bank.set_words(Table.INPUT_REGISTERS, 0, [0] * 0x50)
    bank.inject_faults(0x02, 5)  # the meter refuses these registers every time
    server = serve(bank)

    async def go():
        async with MeterClient(
            "sdm120", "127.0.0.1", server.port, timeout_s=TIMEOUT_S, retry=FAST_RETRY
        ) as c:
            with pytest.raises(ModbusReplyError):
                await c.read()

    asyncio.run(go())
    assert bank.requests == 1


def test_dead_server_gives_stale_after_backoff(closed_port):
    async def go():
        async with MeterClient(
            "sdm630", "127.0.0.1", closed_port, timeout_s=TIMEOUT_S, retry=FAST_RETRY
        ) as c:
            started = time.monotonic()
            with pytest.raises(MeterStale, match="cannot connect") as err:
                await c.read()
            return time.monotonic() - started, err.value, c.stale

    waited, error, stale = asyncio.run(go())
    assert stale and error.attempts == 3
    assert 0.06 <= waited < 3


def test_silent_server_times_out_then_stale(silent_server):
    port, accepted = silent_server
    retry = RetryPolicy(attempts=2, backoff_s=0.01, backoff_max_s=0.01)

    async def go():
        async with MeterClient("sdm120", "127.0.0.1", port, timeout_s=0.2, retry=retry) as c:
            started = time.monotonic()
            with pytest.raises(MeterStale) as err:
                await c.read()
            return time.monotonic() - started, err.value

    waited, error = asyncio.run(go())
    assert waited >= 2 * 0.2  # each attempt waited out its timeout
    assert waited < 5
    assert len(accepted) >= 1  # it did connect: the meter is there but silent
    assert "failed" in str(error.last_error)


def test_meter_that_stops_answering_and_comes_back():
    sim = start_simulator(0, "sdm120", "consumer", speed=1)
    port = sim.port

    async def go():
        async with MeterClient(
            "sdm120", "127.0.0.1", port, timeout_s=TIMEOUT_S, retry=FAST_RETRY
        ) as c:
            first = await c.read()
            sim.stop()
            with pytest.raises(MeterStale):
                await c.read()
            assert c.stale
            again = start_simulator(port, "sdm120", "consumer", speed=1)
            try:
                second = await c.read()
            finally:
                again.stop()
            assert not c.stale
            return first, second

    first, second = asyncio.run(go())
    assert first.model == second.model == "sdm120"
