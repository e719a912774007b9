// The card where a person imports, unlocks, locks or forgets the key of an account, kept
// encrypted in this browser (wallet.js). The participant view signs orders with it; the
// operator console signs chain actions and its login.

import { html } from "./dom.js";
import { t } from "./i18n.js";

/**
 * Renders the key card for `address` into `el` (null: only an import form) and calls
 * `changed(address)` after an import, an unlock, a lock or a forget.
 */
export function keyCard(el, wallet, address, changed) {
  const has = address && wallet.storedAddresses().includes(address);
  if (has && wallet.isUnlocked(address)) {
    el.innerHTML = html`<h2>${t("key")}</h2><p>${t("key_unlocked")}</p>
      <button type="button" id="lock">${t("lock")}</button>
      <button type="button" id="forget" class="secondary">${t("forget")}</button>`;
    el.querySelector("#lock").onclick = () => { wallet.lock(address); changed(address); };
    el.querySelector("#forget").onclick = () => { wallet.forget(address); changed(address); };
    return;
  }
  if (has) {
    el.innerHTML = html`<h2>${t("key")}</h2><p>${t("key_locked")}</p>
      <form id="unlock-form" class="row"><label>${t("password")}
        <input id="unlock-password" type="password" autocomplete="current-password" required></label>
        <button type="submit">${t("unlock")}</button></form>
      <p id="key-error" class="bad" role="alert"></p>`;
    el.querySelector("#unlock-form").onsubmit = async (e) => {
      e.preventDefault();
      try {
        await wallet.unlock(address, el.querySelector("#unlock-password").value);
        changed(address);
      } catch (err) { el.querySelector("#key-error").textContent = err.message; }
    };
    return;
  }
  el.innerHTML = html`<h2>${t("key")}</h2><p class="sub">${t("key_none")}</p>
    <form id="import-form" class="stack">
      <label>${t("secret")} <input id="secret" type="password" autocomplete="off" required></label>
      <label>${t("password")} <input id="new-password" type="password" autocomplete="new-password"
        minlength="${wallet.MIN_PASSWORD}" required></label>
      <button type="submit">${t("import_key")}</button></form>
    <p id="key-error" class="bad" role="alert"></p>`;
  el.querySelector("#import-form").onsubmit = async (e) => {
    e.preventDefault();
    try {
      const imported = await wallet.importKey(el.querySelector("#secret").value,
        el.querySelector("#new-password").value);
      changed(imported);
    } catch (err) { el.querySelector("#key-error").textContent = err.message; }
  };
}
