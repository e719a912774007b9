"""`--chain local`: Alice and Bob run separate validator nodes on loopback, author blocks in
turn with Aura and finalize them together with GRANDPA, and a council's multisig governs.
Also: the dev chain's metadata shows the market's calls, `purge-chain` removes a chain, and
`build-spec` writes a usable spec."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

from chain import PALLET, Chain
from market import keypair, ss58
from wattchain.node import free_port


def peer_id(binary, key_file) -> str:
    out = subprocess.run(
        [str(binary), "key", "inspect-node-key", "--file", str(key_file)],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip().splitlines()[-1]


class Validator:
    def __init__(self, binary, name, base, bootnode=None, node_key_file=None):
        self.rpc_port, self.p2p_port = free_port(), free_port()
        cmd = [
            str(binary),
            "--chain",
            "local",
            f"--{name}",
            "--validator",
            "--base-path",
            str(base),
            "--port",
            str(self.p2p_port),
            "--rpc-port",
            str(self.rpc_port),
            "--no-prometheus",
            "--no-telemetry",
            "--no-mdns",
        ]
        if node_key_file:
            cmd += ["--node-key-file", str(node_key_file)]
        if bootnode:
            cmd += ["--bootnodes", bootnode]
        self.log = open(base.parent / f"{name}.log", "wb")
        self.process = subprocess.Popen(
            cmd, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def chain(self, timeout_s=90) -> Chain:
        return Chain(f"ws://127.0.0.1:{self.rpc_port}").connect(timeout_s=timeout_s)

    def stop(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
        self.log.close()


def test_two_validators_author_and_finalize_together(node_binary, tmp_path):
    key_file = tmp_path / "alice.key"
    key_file.write_text("11" * 32)
    (tmp_path / "alice").mkdir()
    (tmp_path / "bob").mkdir()
    alice = Validator(node_binary, "alice", tmp_path / "alice", node_key_file=key_file)
    bootnode = f"/ip4/127.0.0.1/tcp/{alice.p2p_port}/p2p/{peer_id(node_binary, key_file)}"
    bob_key = tmp_path / "bob.key"
    bob_key.write_text("22" * 32)
    bob = Validator(node_binary, "bob", tmp_path / "bob", bootnode=bootnode, node_key_file=bob_key)
    try:
        a, b = alice.chain(), bob.chain()
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            if min(a.finalized_number(), b.finalized_number()) >= 4:
                break
            time.sleep(1)
        fa, fb = a.finalized_number(), b.finalized_number()
        assert min(fa, fb) >= 4, f"finalized: alice #{fa}, bob #{fb}"
        # Same chain on both: the same hash at a finalized height.
        height = min(fa, fb)
        assert a.block_hash(height) == b.block_hash(height)
        # Aura alternates: blocks authored by both validators are on the chain.
        authors = set()
        for n in range(1, height + 1):
            digest = a.substrate.get_block_header(a.block_hash(n))["header"]["digest"]["logs"]
            authors.add(str(digest[0]))
        assert len(authors) >= 2, "both validators should have authored blocks"
        check_council_governs(a)
        a.close()
        b.close()
    finally:
        alice.stop()
        bob.stop()


def check_council_governs(chain: Chain) -> None:
    """The local network's sudo key is its council's 2-of-3 multisig (the operator Alice, the
    regulator Charlie, the distributor Ferdie): one member alone cannot act, two can, e.g.
    hand the market operator's role to another key (as after losing the operator's)."""
    s = chain.substrate
    alice, charlie, ferdie = (keypair(u) for u in ("//Alice", "//Charlie", "//Ferdie"))
    council = s.generate_multisig_account(
        [m.ss58_address for m in (alice, charlie, ferdie)], threshold=2
    )
    assert ss58(chain.query("Sudo", "Key")) == council.ss58_address
    dave = keypair("//Dave").ss58_address
    assert chain.market_operator() == alice.ss58_address
    call = s.compose_call(
        "Sudo",
        "sudo",
        {"call": s.compose_call(PALLET, "set_market_operator", {"who": dave})},
    )
    first = s.submit_extrinsic(
        s.create_multisig_extrinsic(call, alice, council, era={"period": 64}),
        wait_for_inclusion=True,
    )
    assert first.is_success, first.error_message
    assert chain.market_operator() == alice.ss58_address, "one approval must not act"
    second = s.submit_extrinsic(
        s.create_multisig_extrinsic(call, ferdie, council, era={"period": 64}),
        wait_for_inclusion=True,
    )
    assert second.is_success, second.error_message
    assert chain.market_operator() == dave


def test_dev_metadata_shows_the_market_calls(chain):
    chain.connect()  # the session's connection may have idled out during the long tests before
    pallet = chain.substrate.get_metadata_module("EnergyTrading")
    assert pallet is not None
    calls = (
        {c["name"] for c in pallet.value["calls"]["type"]["def"]["variant"]["variants"]}
        if isinstance(pallet.value.get("calls"), dict)
        and "def" in pallet.value["calls"].get("type", {})
        else {f.name for f in pallet.calls}
    )
    for name in (
        "accredit_meter",
        "register_participant",
        "place_order",
        "place_orders_relayed",
        "cancel_order",
        "cancel_orders_relayed",
        "submit_clearing",
        "submit_reading",
        "settle_interval",
    ):
        assert name in calls, f"{name} missing from {sorted(calls)}"
    assert chain.query("Sudo", "Key") is not None, "the dev chain has sudo"


def test_build_spec_and_purge_chain(node_binary, tmp_path):
    spec = subprocess.run(
        [str(node_binary), "build-spec", "--chain", "local", "--disable-default-bootnode"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    parsed = json.loads(spec)
    assert parsed["id"] == "wattchain_local"
    assert parsed["properties"]["tokenSymbol"] == "BRL"
    base = tmp_path / "purge"
    node = subprocess.Popen(
        [
            str(node_binary),
            "--dev",
            "--base-path",
            str(base),
            "--rpc-port",
            str(free_port()),
            "--port",
            str(free_port()),
            "--no-prometheus",
            "--no-telemetry",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(8)
    node.send_signal(signal.SIGINT)
    node.wait(20)
    db = base / "chains" / "wattchain_dev" / "paritydb"
    assert db.exists(), f"no ParityDB under {base}: {list(base.rglob('*'))[:10]}"
    subprocess.run(
        [str(node_binary), "purge-chain", "--dev", "--base-path", str(base), "-y"],
        check=True,
        capture_output=True,
    )
    assert not db.exists()
