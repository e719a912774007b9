// The operator console's session with the API: the browser signs a login with the unlocked
// key (never a password sent to the server), the API answers a bearer token with the roles
// the chain gives the account. The token lives in this tab only (sessionStorage).

import { ApiError, send } from "./api.js";
import { loginMessage } from "./messages.js";

const KEY = "wattchain.session";

export function current() {
  try {
    const s = JSON.parse(sessionStorage.getItem(KEY) || "null");
    return s && s.expires_ms > Date.now() ? s : null;
  } catch { return null; }
}

export async function login(wallet, address, market, skew) {
  const issued = Math.round(Date.now() + skew);
  const genesis = Uint8Array.from(market.genesis_hash.slice(2).match(/../g), (b) => parseInt(b, 16));
  const signature = wallet.sign(address, loginMessage(genesis, wallet.publicKey(address), issued));
  const s = await send("POST", "/session", { account: address, issued_ms: issued, signature });
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
