// The operator console's session with the API: the browser signs the API's one-time challenge
// with the unlocked key (never a password sent to the server), the API answers a bearer token
// with the roles the chain gives the account. The token lives in this tab only
// (sessionStorage).

import { ApiError, send } from "./api.js";
import { hexToBytes, loginMessage } from "./messages.js";

const KEY = "wattchain.session";

export function current() {
  try {
    const s = JSON.parse(sessionStorage.getItem(KEY) || "null");
    return s && s.expires_ms > Date.now() ? s : null;
  } catch { return null; }
}

export async function login(wallet, address, market) {
  const { challenge } = await send("POST", "/session/challenge", {});
  const message = loginMessage(hexToBytes(market.genesis_hash), wallet.publicKey(address), hexToBytes(challenge));
  const signature = wallet.sign(address, message);
  const s = await send("POST", "/session", { account: address, challenge, signature });
  sessionStorage.setItem(KEY, JSON.stringify(s));
  return s;
}

export function logout() {
  sessionStorage.removeItem(KEY);
}

/** A request with the session's token; an expired session is forgotten. */
export async function authed(method, path, body) {
  const s = current();
  const r = await fetch(path, {
    method,
    headers: { "content-type": "application/json", accept: "application/json",
      ...(s ? { authorization: "Bearer " + s.token } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const answer = await r.json().catch(() => null);
  if (r.status === 401) logout();
  if (!r.ok) throw new ApiError(r.status, answer);
  return answer;
}
