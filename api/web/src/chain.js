// The operator console's link to the node: chain actions are extrinsics signed in the browser
// with the role's own key and sent to the node's RPC (@polkadot/api). Loaded on demand: it is
// the app's largest part, and only the console needs it.

import { ApiPromise, WsProvider } from "@polkadot/api";

let connecting = null;

/** The node's API; a failed connection is tried afresh on the next call. */
export function connect(url) {
  if (!connecting) {
    const provider = new WsProvider(url, 2_000);
    connecting = ApiPromise.create({ provider, noInitWarn: true, throwOnConnect: true })
      .catch((err) => { connecting = null; provider.disconnect().catch(() => {}); throw err; });
  }
  return connecting;
}

/** The dispatch error's pallet and name, and its doc line: "energyTrading.NotOperator: ...". */
function explain(api, err) {
  if (err.isModule) {
    const d = api.registry.findMetaError(err.asModule);
    return `${d.section}.${d.name}${d.docs.length ? ": " + d.docs.join(" ") : ""}`;
  }
  return err.toString();
}

/**
 * Signs `call` with `pair` and sends it; resolves with the hash of the block that included it
 * once the call succeeded, rejects with the chain's error. With `asRoot`, the call goes
 * through `sudo.sudo` (governance calls, when the key is the chain's sudo key).
 */
export async function submit(api, pair, call, { asRoot = false } = {}) {
  if (asRoot && !api.tx.sudo) throw new Error("this chain has no sudo: governance must act (docs/web.md)");
  const tx = asRoot ? api.tx.sudo.sudo(call) : call;
  return new Promise((resolve, reject) => {
    let unsub = null;
    const done = (fn, value) => { unsub?.(); fn(value); };
    tx.signAndSend(pair, ({ status, dispatchError, events }) => {
      if (dispatchError) return done(reject, new Error(explain(api, dispatchError)));
      if (status.isInvalid || status.isDropped || status.isUsurped) {
        return done(reject, new Error(`the node ${status.type.toLowerCase()} the transaction`));
      }
      if (!status.isInBlock) return;
      for (const { event } of events) {
        if (api.events.sudo?.Sudid?.is(event) && event.data[0].isErr) {
          return done(reject, new Error(explain(api, event.data[0].asErr)));
        }
      }
      done(resolve, status.asInBlock.toHex());
    }).then((u) => { unsub = u; }).catch(reject);
  });
}

/** The sudo key's account, if the chain has one. */
export async function sudoKey(api) {
  return api.query.sudo ? (await api.query.sudo.key()).toString() : null;
}
