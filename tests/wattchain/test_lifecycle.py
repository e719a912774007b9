"""No child outlives a killed parent, and one program per data folder. Without a node: the
parents are small Python programs (or `wattchain run` with a node URL nobody answers, or
`wattchain node` with a stand-in binary) and the children sleep."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import pytest
from process_testkit import (
    SLEEPER,
    children_of,
    command_line,
    fake_node,
    kill9_and_reap,
    python,
    running,
    wait_for,
    wattchain,
)

from market.settings import Settings
from wattchain.lifecycle import DataFolderBusy, DataLock, port_free
from wattchain.node import DevNode, free_port
from wattchain.processes import Child


def _kill9_parent_and_expect_children_gone(parent: subprocess.Popen, children: list[int]):
    assert children and all(running(pid) for pid in children)
    kill9_and_reap(parent)
    wait_for(lambda: not any(running(pid) for pid in children), 5, f"{children} to die")


def test_a_child_dies_with_its_killed_parent(tmp_path):
    parent = python(
        "import sys, time\n"
        "from wattchain.processes import Child\n"
        f"c = Child([], {str(tmp_path / 'c.log')!r}, program={SLEEPER!r}).launch()\n"
        "print(c.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    child = int(parent.stdout.readline())
    _kill9_parent_and_expect_children_gone(parent, [child])


def test_a_node_dies_with_its_killed_parent(tmp_path):
    binary = fake_node(tmp_path)
    parent = python(
        "import time\n"
        "from wattchain.node import DevNode\n"
        f"n = DevNode({str(binary)!r}, base_path={str(tmp_path / 'chain')!r}).launch()\n"
        "print(n.process.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    node = int(parent.stdout.readline())
    _kill9_parent_and_expect_children_gone(parent, [node])


def test_kill_9_of_wattchain_run_takes_its_children_and_a_second_run_is_refused(tmp_path):
    """Its node URL answers nothing, so the API and ingest wait for it: the parts are children
    for long enough to kill their parent. A second `run` on the folder is refused meanwhile."""
    data = tmp_path / "market"
    sites = tmp_path / "sites.json"
    site = {"name": "a", "model": "sdm630", "host": "127.0.0.1", "port": 1, "key_uri": "//M/a"}
    sites.write_text(json.dumps({"sites": [site]}))
    nowhere = f"ws://127.0.0.1:{free_port()}"
    args = ("run", "--data", str(data), "--node", nowhere, "--sites", str(sites), "--api-port")
    run = wattchain(*args, str(free_port()), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        children = wait_for(
            lambda: len(children_of(run.pid)) == 3 and children_of(run.pid), 10, "3 parts"
        )
        parts = sorted(command_line(pid).split()[3] for pid in children)
        assert parts == ["api", "ingest", "workers"]
        second = subprocess.run(
            [sys.executable, "-m", "wattchain.cli", *args, str(free_port())],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert second.returncode == 1
        assert second.stderr.strip() == (
            f"error: data folder {data} is in use by PID {run.pid} (wattchain run) (lock "
            "market.lock); stop it first, or use another data folder (--data)"
        )
        assert children_of(run.pid) == children  # the first one is undisturbed
        _kill9_parent_and_expect_children_gone(run, children)
    finally:
        if run.poll() is None:
            run.kill()
    # Free again once every part is gone: those counted above, and one the supervisor may have
    # been restarting when it was killed (it dies with it too, a moment later).
    wait_for(lambda: _lock_free(data), 5, "the data folder's lock to be free")


def _lock_free(data) -> bool:
    try:
        DataLock.acquire(data, "market", "test").release()
    except DataFolderBusy:
        return False
    return True


def test_kill_9_of_wattchain_node_takes_its_node_and_a_second_node_is_refused(tmp_path):
    data = tmp_path / "market"
    env = {"WATTCHAIN_NODE": str(fake_node(tmp_path))}
    port = str(free_port())
    node = wattchain("node", "--data", str(data), "--rpc-port", port, env=env)
    try:
        (child,) = wait_for(lambda: children_of(node.pid), 10, "the node")
        second = wattchain(
            "node", "--data", str(data), "--rpc-port", str(free_port()), env=env,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert second.wait(30) == 1
        assert f"data folder {data} is in use by PID {node.pid} (wattchain node)" in (
            second.stderr.read()
        )
        _kill9_parent_and_expect_children_gone(node, [child])
    finally:
        if node.poll() is None:
            node.kill()
    DataLock.acquire(data, "chain", "test").release()


def test_run_and_node_on_one_chain_folder_exclude_each_other(tmp_path):
    """`run` takes the chain's lock too when it starts its own node (not with --node)."""
    with DataLock.acquire(tmp_path, "chain", "wattchain node"):
        refused = subprocess.run(
            [sys.executable, "-m", "wattchain.cli", "run", "--data", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=30,
            env=dict(os.environ, WATTCHAIN_NODE=str(fake_node(tmp_path))),
        )
    assert refused.returncode == 1
    assert f"is in use by PID {os.getpid()} (wattchain node) (lock chain.lock)" in refused.stderr


def test_the_lock_stays_with_a_child_it_was_passed_to(tmp_path):
    lock = DataLock.acquire(tmp_path, "market", "wattchain run")
    with pytest.raises(DataFolderBusy, match=f"in use by PID {os.getpid()} \\(wattchain run\\)"):
        DataLock.acquire(tmp_path, "market", "wattchain run")
    child = Child([], tmp_path / "c.log", program=SLEEPER, keep_fds=(lock.fd,)).launch()
    lock.release()
    with pytest.raises(DataFolderBusy):  # a part still shutting down keeps the folder taken
        DataLock.acquire(tmp_path, "market", "wattchain run")
    child.stop()
    DataLock.acquire(tmp_path, "market", "again").release()
    assert (tmp_path / "market.lock").read_text() == f"{os.getpid()} again\n"


def test_a_lock_held_on_by_an_orphan_names_it(tmp_path):
    """The holder exited but left a process with the lock: the error says which one."""
    parent = python(
        "import subprocess, sys\n"
        "from wattchain.lifecycle import DataLock\n"
        f"lock = DataLock.acquire({str(tmp_path)!r}, 'chain', 'wattchain node')\n"
        f"p = subprocess.Popen({SLEEPER!r}, pass_fds=(lock.fd,), start_new_session=True)\n"
        "print(p.pid, flush=True)\n"
    )
    orphan = int(parent.stdout.readline())
    parent.wait(10)
    try:
        with pytest.raises(DataFolderBusy) as busy:
            DataLock.acquire(tmp_path, "chain", "wattchain node")
        assert (
            f"in use by PID {parent.pid} (wattchain node) which has exited, but a process it "
            f"started still holds the lock: PID {orphan} (lock chain.lock)"
        ) in str(busy.value)
    finally:
        os.kill(orphan, signal.SIGKILL)


def test_ports_in_use_are_refused_before_anything_starts(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert not port_free(port)
        with pytest.raises(RuntimeError, match=f"RPC port {port} is in use"):
            DevNode(fake_node(tmp_path), rpc_port=port).launch()
        refused = subprocess.run(
            [sys.executable, "-m", "wattchain.cli", "run", "--data", str(tmp_path / "d")]
            + ["--node", "ws://127.0.0.1:1", "--api-port", str(port)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert refused.returncode == 1
    assert f"error: API port {port} is in use" in refused.stderr
    assert not (tmp_path / "d" / "logs").exists()  # nothing was started


def test_ports_come_from_options_over_variables_over_the_file(tmp_path, monkeypatch):
    config = tmp_path / "w.toml"
    config.write_text("rpc_port = 9950\napi_port = 8050\nrestart_limit = 4\n")
    assert Settings.from_env(config).rpc_port == 9950
    monkeypatch.setenv("WATTCHAIN_RPC_PORT", "9960")
    settings = Settings.from_env(config, api_port=8070, rpc_port=None)
    assert (settings.rpc_port, settings.api_port, settings.restart_limit) == (9960, 8070, 4)
    assert Settings.from_env(rpc_port=0).rpc_port == 0  # 0: a free port, printed
