"""The one module that talks to pymodbus: a client link and a server for a RegisterBank.

pymodbus churns (3.10 renamed `slave=` to `device_id=`, 3.13 replaced the datastore with
SimDevice), so every pymodbus call of the project lives here and everything else speaks
in Tables, addresses and 16-bit words. Supported: pymodbus >= 3.10, < 4.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from pymodbus import FramerType, ModbusException
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.server import ModbusSerialServer, ModbusTcpServer

from .bank import FUNCTION_TABLE, RegisterBank, ServerReply, Table
from .errors import ConfigurationError, LinkError, ModbusReplyError

log = logging.getLogger(__name__)

# Modbus limits per request (Modbus Application Protocol v1.1b3, 6.3 and 6.12).
MAX_READ_REGISTERS = 125
MAX_WRITE_REGISTERS = 123

FRAMERS = {"socket": FramerType.SOCKET, "rtu": FramerType.RTU}


@dataclass(frozen=True)
class SerialSettings:
    """An RS-485 line. `port` may also be a pyserial URL such as socket://host:port (RTU over
    TCP)."""

    port: str
    baudrate: int = 9600
    bytesize: int = 8
    parity: str = "N"
    stopbits: int = 1


class ModbusLink:
    """One connection to one Modbus device, over TCP or RTU on a serial line.

    Raises LinkError for anything that is not an answer (no connection, timeout) and
    ModbusReplyError for an exception reply. It never retries: MeterClient decides that.
    """

    def __init__(
        self,
        host: str | None = None,
        port: int = 502,
        *,
        serial: SerialSettings | None = None,
        device_id: int = 1,
        timeout_s: float = 1.0,
    ):
        if (host is None) == (serial is None):
            raise ConfigurationError("give either a TCP host or a serial line, not both or neither")
        if not 0 <= device_id <= 247:
            raise ConfigurationError(f"device id {device_id} is outside 0..247")
        if timeout_s <= 0:
            raise ConfigurationError("timeout must be positive")
        self.host, self.port, self.serial = host, port, serial
        self.device_id = device_id
        self.timeout_s = timeout_s
        self._client: AsyncModbusTcpClient | AsyncModbusSerialClient | None = None

    @property
    def name(self) -> str:
        where = self.serial.port if self.serial else f"{self.host}:{self.port}"
        return f"{where} device {self.device_id}"

    def _new_client(self):
        # reconnect_delay=0 and retries=0: reconnects and retries are MeterClient's policy.
        common = dict(timeout=self.timeout_s, retries=0, reconnect_delay=0)
        if self.serial:
            s = self.serial
            return AsyncModbusSerialClient(
                s.port,
                framer=FramerType.RTU,
                baudrate=s.baudrate,
                bytesize=s.bytesize,
                parity=s.parity,
                stopbits=s.stopbits,
                **common,
            )
        return AsyncModbusTcpClient(self.host, port=self.port, **common)

    async def connect(self) -> None:
        if self._client is not None and self._client.connected:
            return
        await self.close()
        self._client = self._new_client()
        try:
            async with asyncio.timeout(self.timeout_s + 1.0):
                ok = await self._client.connect()
        except (TimeoutError, OSError, ModbusException) as exc:
            await self.close()
            raise LinkError(f"cannot connect to {self.name}: {exc or type(exc).__name__}") from exc
        if not ok:
            await self.close()
            raise LinkError(f"cannot connect to {self.name}")

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            client.close()

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.connected

    async def _call(self, what: str, method: str, *args, **kwargs):
        await self.connect()
        call = getattr(self._client, method)
        try:
            # pymodbus has its own timeout; this guard also covers a connect half-open.
            async with asyncio.timeout(self.timeout_s * 2 + 1.0):
                reply = await call(*args, device_id=self.device_id, **kwargs)
        except (TimeoutError, OSError, ModbusException) as exc:
            # A fresh connection next time: a late reply must not be taken for the next one.
            await self.close()
            raise LinkError(f"{what} from {self.name} failed: {exc or type(exc).__name__}") from exc
        if reply.isError():
            raise ModbusReplyError(getattr(reply, "exception_code", 0), f"{what} from {self.name}")
        return reply

    async def read_registers(self, table: Table, address: int, count: int) -> list[int]:
        if table not in (Table.HOLDING_REGISTERS, Table.INPUT_REGISTERS):
            raise ConfigurationError(f"{table.value} are not registers")
        _check_span(address, count, MAX_READ_REGISTERS)
        method = (
            "read_input_registers" if table is Table.INPUT_REGISTERS else "read_holding_registers"
        )
        what = f"read {table.value} 0x{address:04X}..0x{address + count - 1:04X}"
        reply = await self._call(what, method, address, count=count)
        words = list(reply.registers)
        if len(words) != count:
            await self.close()
            raise LinkError(f"{what}: got {len(words)} registers, asked for {count}")
        return words

    async def read_bits(self, table: Table, address: int, count: int = 1) -> list[bool]:
        if not table.is_bits:
            raise ConfigurationError(f"{table.value} are not bits")
        _check_span(address, count, 2000)
        method = "read_coils" if table is Table.COILS else "read_discrete_inputs"
        what = f"read {table.value} {address}..{address + count - 1}"
        reply = await self._call(what, method, address, count=count)
        bits = [bool(b) for b in reply.bits[:count]]
        if len(bits) != count:
            await self.close()
            raise LinkError(f"{what}: got {len(bits)} bits, asked for {count}")
        return bits

    async def write_coil(self, address: int, value: bool) -> None:
        _check_span(address, 1, 1)
        await self._call(f"write coil {address}", "write_coil", address, bool(value))

    async def write_registers(self, address: int, words: Sequence[int]) -> None:
        _check_span(address, len(words), MAX_WRITE_REGISTERS)
        if any(not 0 <= w <= 0xFFFF for w in words):
            raise ConfigurationError(f"register values must be 16-bit: {list(words)}")
        what = f"write holding registers 0x{address:04X}..0x{address + len(words) - 1:04X}"
        await self._call(what, "write_registers", address, list(words))


def _check_span(address: int, count: int, limit: int) -> None:
    if not 1 <= count <= limit:
        raise ConfigurationError(f"count {count} is outside 1..{limit}")
    if not 0 <= address or address + count - 1 > 0xFFFF:
        raise ConfigurationError(f"addresses {address}..{address + count - 1} are outside 0..65535")


# ------------------------------------------------------------------------------------------
# Server side: serve a RegisterBank.
# ------------------------------------------------------------------------------------------


def _old_style_context(bank: RegisterBank, device_id: int):
    """pymodbus 3.10-3.12: a device context object the server calls per request.

    These versions cannot return an exception code from a read: a raise becomes "server
    device failure". The code wanted is kept and put into the reply by trace_pdu; nothing
    awaits between the raise and the send, so another request cannot interleave.
    """
    from pymodbus.datastore import ModbusServerContext
    from pymodbus.datastore.context import ModbusBaseDeviceContext

    pending: list[int] = []

    class BankContext(ModbusBaseDeviceContext):
        def reset(self):
            pass

        def getValues(self, fc_as_hex, address, count=1):
            try:
                return bank.serve_read(FUNCTION_TABLE[fc_as_hex], address, count)
            except ServerReply as reply:
                pending[:] = [reply.code]
                raise

        def setValues(self, fc_as_hex, address, values):
            try:
                bank.serve_write(FUNCTION_TABLE[fc_as_hex], address, list(values))
            except ServerReply as reply:
                return reply.code
            return None

    def trace_pdu(sending: bool, pdu):
        if not sending:
            pending.clear()
        elif pending and pdu.isError():
            pdu.exception_code = pending.pop()
        return pdu

    return ModbusServerContext(devices={device_id: BankContext()}, single=False), trace_pdu


def _simdevice_context(bank: RegisterBank, device_id: int):
    """pymodbus 3.13+: a SimDevice whose action hook serves every request from the bank."""
    from pymodbus.constants import ExcCodes
    from pymodbus.simulator import DataType, SimData, SimDevice
    from pymodbus.simulator.simutils import SimUtils

    blocks = []
    for table in (
        Table.COILS,
        Table.DISCRETE_INPUTS,
        Table.HOLDING_REGISTERS,
        Table.INPUT_REGISTERS,
    ):
        runs = bank.ranges(table) or [(0, 1)]  # SimDevice wants every table non-empty
        if table.is_bits:
            blocks.append([SimData(a, values=[False] * n, datatype=DataType.BITS) for a, n in runs])
        else:
            blocks.append(
                [SimData(a, values=[0] * n, datatype=DataType.REGISTERS) for a, n in runs]
            )

    async def action(func_code, start_address, address, count, registers, values):
        table = FUNCTION_TABLE.get(func_code)
        if table is None:
            return ExcCodes.ILLEGAL_FUNCTION
        try:
            if values is not None:
                bank.serve_write(table, address, list(values))
            elif table.is_bits:
                # `count` is in 16-bit words here and `address` the first bit: serve the first
                # bit through the bank (hooks, faults), then pack the words pymodbus will cut.
                bank.serve_read(table, address, 1)
                first_bit = address // 16 * 16
                bits = bank.bits_or_false(table, first_bit, count * 16)
                offset = address // 16 - start_address
                registers[offset : offset + count] = SimUtils.bitsToRegisters(bits)
            else:
                words = bank.serve_read(table, address, count)
                offset = address - start_address
                registers[offset : offset + count] = words
        except ServerReply as reply:
            return ExcCodes(reply.code)
        return None

    return SimDevice(device_id, simdata=tuple(blocks), action=action), None


def _context_for(bank: RegisterBank, device_id: int):
    """(context, trace_pdu) for this pymodbus: the old device contexts went away in 3.13."""
    import pymodbus.datastore.context as datastore_context

    if hasattr(datastore_context, "ModbusBaseDeviceContext"):
        return _old_style_context(bank, device_id)
    return _simdevice_context(bank, device_id)


async def start_bank_server(
    bank: RegisterBank,
    host: str = "127.0.0.1",
    port: int = 502,
    *,
    device_id: int = 1,
    framer: str = "socket",
    serial: SerialSettings | None = None,
):
    """Start serving `bank` in the running event loop; returns (server, bound port or None).

    framer "socket" is Modbus TCP; "rtu" is RTU frames over TCP (a serial gateway). With
    `serial`, RTU on that line (or a pyserial URL such as socket://127.0.0.1:5020).
    """
    if framer not in FRAMERS:
        raise ConfigurationError(f"framer must be one of {sorted(FRAMERS)}, not {framer!r}")
    context, trace_pdu = _context_for(bank, device_id)
    if serial:
        server = ModbusSerialServer(
            context,
            framer=FramerType.RTU,
            port=serial.port,
            baudrate=serial.baudrate,
            bytesize=serial.bytesize,
            parity=serial.parity,
            stopbits=serial.stopbits,
            trace_pdu=trace_pdu,
        )
    else:
        server = ModbusTcpServer(
            context, framer=FRAMERS[framer], address=(host, port), trace_pdu=trace_pdu
        )
    try:
        await server.serve_forever(background=True)
    except (OSError, RuntimeError) as exc:
        where = serial.port if serial else f"{host}:{port}"
        reason = exc if serial else _bind_problem(host, port) or exc
        raise ConfigurationError(f"cannot serve Modbus on {where}: {reason}") from exc
    return server, _bound_port(server)


def _bind_problem(host: str, port: int) -> str | None:
    """pymodbus only says it could not listen; binding ourselves tells why."""
    import socket

    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.bind((host, port))
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def _bound_port(server) -> int | None:
    sockets = getattr(getattr(server, "transport", None), "sockets", None)
    if sockets:
        return sockets[0].getsockname()[1]
    return None


async def stop_bank_server(server) -> None:
    await server.shutdown()


class ServerThread:
    """A Modbus server for a bank, on its own thread and event loop (tests, demos)."""

    def __init__(
        self,
        bank: RegisterBank,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        device_id: int = 1,
        framer: str = "socket",
        serial: SerialSettings | None = None,
    ):
        self.bank = bank
        self.host = host
        self.port = port
        self._loop = asyncio.new_event_loop()
        self._server = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._args = dict(device_id=device_id, framer=framer, serial=serial)
        self._thread = threading.Thread(target=self._run, name=f"modbus-server-{port}", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._error:
            raise self._error
        if not self._ready.is_set():
            raise ConfigurationError(f"Modbus server on {host}:{port} did not start")

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def main():
            try:
                self._server, bound = await start_bank_server(
                    self.bank, self.host, self.port, **self._args
                )
                self.port = bound or self.port
            except BaseException as exc:  # handed to the starting thread
                self._error = exc
            finally:
                self._ready.set()

        self._loop.run_until_complete(main())
        if self._error is None:
            self._loop.run_forever()
        self._loop.close()

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        if self._server is not None:
            fut = asyncio.run_coroutine_threadsafe(stop_bank_server(self._server), self._loop)
            try:
                fut.result(5)
            except Exception:  # stopping anyway
                log.exception("Modbus server on port %s did not shut down cleanly", self.port)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def serve_bank(
    bank: RegisterBank, host: str = "127.0.0.1", port: int = 0, **kwargs
) -> ServerThread:
    """Serve `bank` on a background thread; port 0 picks a free port (see `.port`)."""
    return ServerThread(bank, host, port, **kwargs)
