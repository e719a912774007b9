// The messages an owner signs, byte for byte as the chain checks them (docs/chain-interface.md;
// the golden vectors in docs/vectors/signed-messages.json are the test):
//   order:  b"wattchain:order:v1"  ++ genesis[32] ++ owner[32] ++ OrderSpec (37 bytes)
//   cancel: b"wattchain:cancel:v1" ++ genesis[32] ++ owner[32] ++ client_order_id u64
// OrderSpec = client_order_id u64, interval u64, side u8, quantity_wh u64, price_ticks u64,
// zone u16, source u8, renewable_only u8; little-endian, no padding.

export const SIDES = ["bid", "offer"];
export const SOURCES = ["solar", "wind", "hydro", "biomass", "grid_mix"];

const text = (s) => new TextEncoder().encode(s);
const ORDER_TAG = text("wattchain:order:v1");
const CANCEL_TAG = text("wattchain:cancel:v1");

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

function check32(name, bytes) {
  if (!(bytes instanceof Uint8Array) || bytes.length !== 32) throw new Error(`${name} must be 32 bytes`);
}

/** The 37 SCALE bytes of an order's spec; integers may be numbers or bigints. */
export function encodeSpec(spec) {
  const out = new Uint8Array(37);
  const v = new DataView(out.buffer);
  const side = SIDES.indexOf(spec.side), source = SOURCES.indexOf(spec.source);
  if (side < 0) throw new Error(`side ${spec.side} is not bid or offer`);
  if (source < 0) throw new Error(`source ${spec.source} is not one of ${SOURCES.join(", ")}`);
  v.setBigUint64(0, BigInt(spec.client_order_id), true);
  v.setBigUint64(8, BigInt(spec.interval), true);
  v.setUint8(16, side);
  v.setBigUint64(17, BigInt(spec.quantity_wh), true);
  v.setBigUint64(25, BigInt(spec.price_ticks), true);
  v.setUint16(33, spec.zone, true);
  v.setUint8(35, source);
  v.setUint8(36, spec.renewable_only ? 1 : 0);
  return out;
}

export function orderMessage(genesis, owner, spec) {
  check32("genesis hash", genesis);
  check32("owner", owner);
  return concat(ORDER_TAG, genesis, owner, encodeSpec(spec));
}

export function cancelMessage(genesis, owner, clientOrderId) {
  check32("genesis hash", genesis);
  check32("owner", owner);
  const id = new Uint8Array(8);
  new DataView(id.buffer).setBigUint64(0, BigInt(clientOrderId), true);
  return concat(CANCEL_TAG, genesis, owner, id);
}

/** Bytes from 0x hex (a genesis hash, a challenge). */
export const hexToBytes = (hex) => Uint8Array.from(hex.replace(/^0x/, "").match(/../g), (b) => parseInt(b, 16));

/** A fresh client order id: 53 random bits, so it survives JSON numbers exactly. */
export function freshClientOrderId() {
  const [hi, lo] = crypto.getRandomValues(new Uint32Array(2));
  return (hi & 0x1fffff) * 2 ** 32 + lo;
}

const LOGIN_TAG = text("wattchain:login:v1");

/** What a browser signs to open an API session: tag ++ genesis ++ account ++ the API's challenge. */
export function loginMessage(genesis, account, challenge) {
  check32("genesis hash", genesis);
  check32("account", account);
  check32("challenge", challenge);
  return concat(LOGIN_TAG, genesis, account, challenge);
}
