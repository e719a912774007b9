"""WattChain's meter side: read accredited meters over Modbus, sign readings, send demand-response
commands, and simulate meters for demos and tests.

The off-chain ingest worker uses MeterClient (or read_meter), MeterSigner (under the meter's
Accreditation: its chain's genesis hash and accreditation epoch) and verify_reading; see
docs/meter_bridge.md.
"""

from .bank import RegisterBank, Table
from .client import MeterClient, RetryPolicy, read_meter
from .counter import CounterStore, MeterSigner
from .errors import (
    CommandNotConfirmed,
    ConfigurationError,
    DiscoveryError,
    LinkError,
    MalformedReading,
    MeterBridgeError,
    MeterStale,
    ModbusReplyError,
    ReadingError,
    StateFileError,
)
from .keys import MeterKey, verify_signature
from .modbus import SerialSettings, serve_bank
from .reading import (
    Accreditation,
    MeterReading,
    RawReading,
    reading_message,
    resign_reading,
    sign_reading,
    verify_reading,
)
from .registers import CONTROLS, MODELS, ControlMap, Measurement, meter_map
from .simulator import (
    SimulatorConfig,
    SimulatorHandle,
    SimulatorProcess,
    spawn_simulator,
    start_simulator,
)

__all__ = [
    "CONTROLS",
    "MODELS",
    "Accreditation",
    "CommandNotConfirmed",
    "ConfigurationError",
    "ControlMap",
    "CounterStore",
    "DiscoveryError",
    "LinkError",
    "MalformedReading",
    "Measurement",
    "MeterBridgeError",
    "MeterClient",
    "MeterKey",
    "MeterReading",
    "MeterSigner",
    "MeterStale",
    "ModbusReplyError",
    "RawReading",
    "ReadingError",
    "RegisterBank",
    "RetryPolicy",
    "SerialSettings",
    "SimulatorConfig",
    "SimulatorHandle",
    "SimulatorProcess",
    "StateFileError",
    "Table",
    "meter_map",
    "read_meter",
    "reading_message",
    "resign_reading",
    "serve_bank",
    "sign_reading",
    "spawn_simulator",
    "start_simulator",
    "verify_reading",
    "verify_signature",
]
