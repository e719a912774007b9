// The participant's signing key, kept in this browser only. It is imported once (a secret
// phrase or a secret URI such as //Alice on the dev chain) and stored encrypted with a
// password, as polkadot-js's keyring encrypts its JSON backups (scrypt + xsalsa20-poly1305).
// The unlocked key lives in this page's memory until it is locked or the page is closed; the
// API only ever sees signatures. Loaded on demand, so the market view stays light.

import { Keyring } from "@polkadot/keyring";
import { u8aToHex } from "@polkadot/util";
import { cryptoWaitReady, decodeAddress } from "@polkadot/util-crypto";

const STORE = "wattchain.keys";  // address -> encrypted keyring JSON
export const MIN_PASSWORD = 8;

let keyring = null;
const unlocked = new Map();  // address -> keypair, this page only

async function ready() {
  if (!keyring) {
    await cryptoWaitReady();
    keyring = new Keyring({ type: "sr25519", ss58Format: 42 });
  }
  return keyring;
}

function stored() {
  try { return JSON.parse(localStorage.getItem(STORE) || "{}"); } catch { return {}; }
}

export function storedAddresses() {
  return Object.keys(stored());
}

/** Imports `secret` (phrase or URI), stores it encrypted with `password`; returns its address. */
export async function importKey(secret, password) {
  if ((password || "").length < MIN_PASSWORD) throw new Error(`password: at least ${MIN_PASSWORD} characters`);
  const kr = await ready();
  let pair;
  try { pair = kr.createFromUri(secret.trim()); } catch (e) { throw new Error("secret: " + e.message); }
  const keys = stored();
  keys[pair.address] = pair.toJson(password);
  localStorage.setItem(STORE, JSON.stringify(keys));
  unlocked.set(pair.address, pair);
  return pair.address;
}

/** Unlocks the stored key of `address` with its password (wrong password: an error). */
export async function unlock(address, password) {
  const json = stored()[address];
  if (!json) throw new Error("no key for this account in this browser");
  const pair = (await ready()).createFromJson(json);
  try { pair.decodePkcs8(password); } catch { throw new Error("wrong password"); }
  unlocked.set(address, pair);
}

export const isUnlocked = (address) => unlocked.has(address);
export const lock = (address) => unlocked.delete(address);

export function forget(address) {
  const keys = stored();
  delete keys[address];
  localStorage.setItem(STORE, JSON.stringify(keys));
  unlocked.delete(address);
}

/** The owner's 32-byte public key. */
export const publicKey = (address) => decodeAddress(address);

/** Signs `message` (bytes) with the unlocked key of `address`: 0x + 64-byte signature. */
export function sign(address, message) {
  return u8aToHex(pairOf(address).sign(message));
}

/** The unlocked keypair of `address`, for signing extrinsics with @polkadot/api. */
export function pairOf(address) {
  const pair = unlocked.get(address);
  if (!pair) throw new Error("unlock the key first");
  return pair;
}
