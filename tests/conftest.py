"""Shared fixtures: free loopback ports and a real wattchain-node (from WATTCHAIN_NODE, or the
path `make node` builds to), started by the tests themselves on free ports."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # a checkout without `pip install -e .`
    sys.path.insert(0, str(REPO_ROOT))

# Imported only once the sys.path line above has run, hence E402.
from wattchain.node import DevNode, find_binary  # noqa: E402
from wattchain.node import free_port as _free_port  # noqa: E402


@pytest.fixture
def free_port():
    """A function returning a free loopback TCP port."""
    return _free_port


@pytest.fixture(scope="session")
def node_binary() -> Path:
    binary = find_binary()
    if binary is None:
        pytest.fail("no wattchain-node: set WATTCHAIN_NODE (make test does) or run `make node`")
    return binary


@pytest.fixture(scope="session")
def start_node(node_binary, tmp_path_factory):
    """start_node(base_path=None) -> a running DevNode (stopped at the end of the session)."""
    nodes = []

    def start(base_path=None, **kwargs) -> DevNode:
        logs = tmp_path_factory.mktemp("node-logs")
        node = DevNode(
            node_binary, base_path=base_path, log_path=logs / "node.log", **kwargs
        ).start()
        nodes.append(node)
        return node

    yield start
    for node in nodes:
        node.stop()


@pytest.fixture(scope="session")
def dev_node(start_node) -> DevNode:
    """One dev chain shared by the tests that only read or add independent orders."""
    return start_node()


@pytest.fixture(scope="session")
def chain(dev_node):
    from chain import Chain

    connection = Chain(dev_node.url).connect()
    yield connection
    connection.close()


def pytest_collection_modifyitems(config, items):
    """Every test that needs the node binary, directly or through a fixture, is a `chain` test:
    `pytest -m "not chain"` is the quick loop that needs no node."""
    for item in items:
        if "node_binary" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.chain)


def pytest_configure(config):
    # Child processes (API, workers) import the packages from this checkout.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p
    )
