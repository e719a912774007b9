// The browser's signed messages against the golden vectors the chain and Python are held to:
// same bytes, and the vectors' signatures verify with @polkadot/util-crypto.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import test from "node:test";
import { hexToU8a, u8aToHex } from "@polkadot/util";
import { cryptoWaitReady, signatureVerify } from "@polkadot/util-crypto";
import { cancelMessage, loginMessage, orderMessage } from "../src/messages.js";

// The vectors hold u64::MAX, beyond JSON numbers in JavaScript: read long integers as text.
const raw = readFileSync(new URL("../../../docs/vectors/signed-messages.json", import.meta.url), "utf8");
const vectors = JSON.parse(raw.replace(/:\s*(\d{16,})/g, ': "$1"'));
const genesis = hexToU8a(vectors.genesis_hash);

test("order messages match the golden vectors and their signatures verify", async () => {
  await cryptoWaitReady();
  assert.ok(vectors.orders.length >= 2);
  for (const v of vectors.orders) {
    const msg = orderMessage(genesis, hexToU8a(v.owner), v.spec);
    assert.equal(u8aToHex(msg), v.message);
    assert.ok(signatureVerify(msg, v.signature, v.owner).isValid);
  }
});

test("cancel messages match the golden vectors", async () => {
  await cryptoWaitReady();
  for (const v of vectors.cancels) {
    const msg = cancelMessage(genesis, hexToU8a(v.owner), v.client_order_id);
    assert.equal(u8aToHex(msg), v.message);
    assert.ok(signatureVerify(msg, v.signature, v.owner).isValid);
  }
});

test("a bad spec is refused by name", () => {
  const owner = new Uint8Array(32);
  assert.throws(() => orderMessage(genesis, owner, { side: "buy", source: "solar" }), /side buy/);
  assert.throws(() => orderMessage(genesis, new Uint8Array(31), {}), /owner must be 32 bytes/);
});

test("the login message is the API's (market.login_message)", () => {
  // Python: login_message(bytes(range(32)), Alice's public key, bytes(range(100, 132))).hex()
  const alice = hexToU8a("0xd43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d");
  const challenge = Uint8Array.from({ length: 32 }, (_, i) => 100 + i);
  const msg = loginMessage(genesis, alice, challenge);
  assert.equal(u8aToHex(msg), "0x77617474636861696e3a6c6f67696e3a7631000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1fd43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d6465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f80818283");
  assert.throws(() => loginMessage(genesis, alice, challenge.slice(1)), /challenge must be 32 bytes/);
});
