// The operator console. Logging in signs a login message with the operator's (or the
// distributor's) key, kept encrypted in this browser; the API answers a session for what it
// keeps itself (alert acknowledgements, device configuration). Chain actions are extrinsics
// the same key signs here and sends to the node: the API never holds a role's key and has
// no endpoint that changes the chain for anyone (docs/web.md, "Threat model").

import { get } from "./api.js";
import { esc, html, table } from "./dom.js";
import { dateTime, energy, price, shortAccount, TICKS_PER_BRL } from "./format.js";
import { t } from "./i18n.js";
import { keyCard } from "./keycard.js";
import { SOURCES } from "./messages.js";
import * as session from "./session.js";

const CHAIN_SOURCE = { solar: "Solar", wind: "Wind", hydro: "Hydro", biomass: "Biomass", grid_mix: "GridMix" };
const CHAIN_MECHANISM = { uniform: "Uniform", "pay-as-bid": "PayAsBid", zonal: "Zonal" };

export function operatorView(root, app) {
  root.innerHTML = `<section class="grid"><article class="card" id="login"></article>
    <article class="card" id="key"></article></section><div id="console"></div>`;
  const $ = (id) => root.querySelector("#" + id);
  let wallet = null, chain = null, api = null;
  let account = session.current()?.account || app.market.operator || "";

  async function start() {
    wallet = await import("./wallet.js");
    showLogin();
  }

  function showLogin() {
    const s = session.current();
    if (s) {
      $("login").innerHTML = html`<h2>${t("operator")}</h2>
        <p>${esc(t("logged_in_as", { account: s.account, roles: s.roles.map((r) => t("role_" + r)).join(", ") }))}</p>
        <button type="button" id="logout" class="secondary">${t("logout")}</button>`;
      $("logout").onclick = () => { session.logout(); showLogin(); };
      account = s.account;
      showKey();
      showConsole(s);
      return;
    }
    $("console").innerHTML = "";
    $("login").innerHTML = html`<h2>${t("operator")}</h2><p class="sub">${t("login_hint")}</p>
      <form id="login-form" class="stack">
        <label>${t("account")} <input id="login-account" value="${esc(account)}" required
          autocomplete="username" spellcheck="false"></label>
        <button type="submit">${t("login")}</button></form>
      <p id="login-error" class="bad" role="alert"></p>`;
    // The key card follows the account typed here (only when it changed: a re-rendered card
    // would lose what is being typed into it).
    $("login-account").onchange = (e) => {
      const typed = e.target.value.trim();
      if (typed !== account) { account = typed; showKey(); }
    };
    $("login-form").onsubmit = async (e) => {
      e.preventDefault();
      account = $("login-account").value.trim();
      try {
        await session.login(wallet, account, app.market);
        showLogin();
      } catch (err) { $("login-error").textContent = err.message; }
    };
    showKey();
  }

  function showKey() {
    keyCard($("key"), wallet, account, (changed) => {
      account = changed;
      if ($("login-account")) $("login-account").value = changed;
      showKey();
    });
  }

  /** The node's API (chain.js, loaded on first use). */
  async function node() {
    chain = chain || await import("./chain.js");
    api = api || await chain.connect(app.market.node_rpc_url);
    return api;
  }

  /** Runs a chain action signed with the logged-in key; its result in `out`. */
  async function act(out, build, { asRoot = false } = {}) {
    out.className = "sub";
    out.textContent = t("sending");
    try {
      await node();
      const block = await chain.submit(api, wallet.pairOf(account), build(api.tx.energyTrading), { asRoot });
      out.className = "ok";
      out.textContent = t("done_in_block", { block: block.slice(0, 10) + "…" });
      return true;
    } catch (err) {
      out.className = "bad";
      out.textContent = t("order_refused", { detail: err.message });
      return false;
    }
  }

  /** Meters are the distributor's; the operator accredits through governance (sudo on dev). */
  const meterAuthority = (s) => ({ asRoot: !s.roles.includes("distributor") });

  function showConsole(s) {
    if (!s.roles.includes("operator") && !s.roles.includes("distributor")) {
      $("console").innerHTML = `<p class="card bad">${esc(t("console_needs_role"))}</p>`;
      return;
    }
    const p = app.market.params;
    const isOperator = s.roles.includes("operator");
    $("console").innerHTML = html`
      <section class="grid">
        <form class="card" id="register"><h2>${t("register_participant")}</h2>
          <label>${t("account")} <input name="who" required spellcheck="false"></label>
          <label>${t("zone")} <input name="zone" type="number" min="0" max="65535" value="0" required></label>
          <button type="submit">${t("sign_send")}</button><p role="status"></p></form>
        <form class="card" id="accredit"><h2>${t("accredit_meter")}</h2>
          <label>${t("meter_key")} <input name="meter" required pattern="0x[0-9a-fA-F]{64}" spellcheck="false"></label>
          <label>${t("owner")} <input name="owner" required spellcheck="false"></label>
          <label>${t("zone")} <input name="zone" type="number" min="0" max="65535" value="0" required></label>
          <label>${t("source")} <select name="source">${SOURCES.map((x) => `<option value="${x}">${t(x)}</option>`).join("")}</select></label>
          <label>${t("rated_power")} (W) <input name="rated" type="number" min="1" max="4294967295" value="10000" required></label>
          <button type="submit">${t("sign_send")}</button><p role="status"></p></form>
        <form class="card" id="revoke"><h2>${t("revoke_meter")}</h2>
          <label>${t("meter_key")} <input name="meter" required pattern="0x[0-9a-fA-F]{64}" spellcheck="false"></label>
          <button type="submit">${t("sign_send")}</button><p role="status"></p></form>
      </section>
      <section class="grid">
        <article class="card"><h2>${t("grid")}</h2><div class="scroll" tabindex="0"><table id="lines"></table></div>
          <form id="line" class="row">
            <label>${t("zone")} A <input name="a" type="number" min="0" max="65535" required></label>
            <label>${t("zone")} B <input name="b" type="number" min="0" max="65535" required></label>
            <label>${t("capacity")} (kWh) <input name="capacity" type="number" min="0" step="0.001" required></label>
            <label>${t("fee")} (R$/kWh) <input name="fee" type="number" min="0" step="0.01" required></label>
            <button type="submit">${t("set_line")}</button></form><p id="line-out" role="status"></p></article>
        <form class="card" id="params"><h2>${t("market_params")}</h2>
          <div class="row">
            <label>${t("interval_ms")} <input name="interval_ms" type="number" min="1" value="${p.interval_ms}" required></label>
            <label>${t("gate_ms")} <input name="gate_closure_ms" type="number" min="0" value="${p.gate_closure_ms}" required></label>
            <label>${t("min_price")} (R$/kWh) <input name="min_price" type="number" min="0" step="0.01" value="${p.min_price_ticks / TICKS_PER_BRL}" required></label>
            <label>${t("max_price")} (R$/kWh) <input name="max_price" type="number" min="0" step="0.01" value="${p.max_price_ticks / TICKS_PER_BRL}" required></label>
            <label>${t("max_quantity")} (kWh) <input name="max_kwh" type="number" min="0.001" step="0.001" value="${p.max_quantity_wh / 1000}" required></label>
            <label>${t("tariff_field")} (R$/kWh) <input name="tariff" type="number" min="0" step="0.01" value="${p.utility_tariff_ticks / TICKS_PER_BRL}" required></label>
            <label>${t("feed_in")} (R$/kWh) <input name="feed_in" type="number" min="0" step="0.01" value="${p.feed_in_ticks / TICKS_PER_BRL}" required></label>
            <label>${t("reading_window_ms")} <input name="reading_window_ms" type="number" min="0" value="${p.reading_window_ms}" required></label>
            <label>${t("mechanism")} <select name="mechanism">${Object.keys(CHAIN_MECHANISM).map((m) =>
              `<option value="${m}"${m === p.mechanism ? " selected" : ""}>${t(m)}</option>`).join("")}</select></label>
          </div>
          <button type="submit">${t("sign_send")}</button><p role="status"></p></form>
        <form class="card" id="submitter"><h2>${t("submitters")}</h2>
          <label>${t("account")} <input name="who" required spellcheck="false"></label>
          <label><input name="allowed" type="checkbox" checked> ${t("allowed")}</label>
          <button type="submit">${t("sign_send")}</button><p role="status"></p></form>
      </section>
      <section class="grid"><article class="card wide"><h2>${t("alerts")}</h2>
        <div class="scroll" tabindex="0"><table id="op-alerts"></table></div><p id="ack-out" role="status"></p></article>
        <article class="card"><h2>${t("nav_devices")}</h2><p><a href="#/devices">${t("devices_link")}</a></p></article></section>`;
    if (!isOperator) {
      for (const id of ["register", "line", "params", "submitter"]) {
        for (const el of root.querySelectorAll(`#${id} input, #${id} select, #${id} button`)) el.disabled = true;
      }
    }
    const on = (id, fn) => {
      const form = $(id);
      form.onsubmit = (e) => { e.preventDefault(); fn(Object.fromEntries(new FormData(form)), form.querySelector("[role=status]") || $("line-out"), form); };
    };
    on("register", (f, out) => act(out, (tx) => tx.registerParticipant(f.who.trim(), Number(f.zone))));
    on("accredit", (f, out) => act(out, (tx) => tx.accreditMeter(f.meter.trim(), f.owner.trim(), Number(f.zone),
      CHAIN_SOURCE[f.source], Number(f.rated)), meterAuthority(s)));
    on("revoke", (f, out) => act(out, (tx) => tx.revokeMeter(f.meter.trim()), meterAuthority(s)));
    on("line", async (f, out) => {
      if (await act(out, (tx) => tx.setLine(Number(f.a), Number(f.b), Math.round(Number(f.capacity) * 1000),
        Math.round(Number(f.fee) * TICKS_PER_BRL)))) lines();
    });
    on("params", (f, out) => act(out, (tx) => tx.setMarketParams({
      intervalMs: Number(f.interval_ms), gateClosureMs: Number(f.gate_closure_ms),
      minPriceTicks: Math.round(Number(f.min_price) * TICKS_PER_BRL),
      maxPriceTicks: Math.round(Number(f.max_price) * TICKS_PER_BRL),
      maxQuantityWh: Math.round(Number(f.max_kwh) * 1000),
      utilityTariffTicks: Math.round(Number(f.tariff) * TICKS_PER_BRL),
      feedInTicks: Math.round(Number(f.feed_in) * TICKS_PER_BRL),
      readingWindowMs: Number(f.reading_window_ms), mechanism: CHAIN_MECHANISM[f.mechanism],
    })));
    on("submitter", (f, out) => act(out, (tx) => tx.setClearingSubmitter(f.who.trim(), f.allowed === "on")));
    $("lines").addEventListener("click", async (e) => {
      const [a, b] = (e.target.dataset.remove || "").split("-");
      if (a !== undefined && b !== undefined && await act($("line-out"), (tx) => tx.removeLine(Number(a), Number(b)))) lines();
    });
    $("op-alerts").addEventListener("click", async (e) => {
      const id = e.target.dataset.ack;
      if (!id) return;
      try { await session.authed("POST", `/alerts/${id}/ack`); alerts(); }
      catch (err) { $("ack-out").className = "bad"; $("ack-out").textContent = err.message; }
    });
    lines();
    alerts();
  }

  async function lines() {
    try {
      const grid = (await (await node()).query.energyTrading.grid()).toJSON();
      $("lines").innerHTML = table([t("zone") + " A", t("zone") + " B", t("capacity"), t("fee"), ""],
        grid.map((l) => [l.a, l.b, energy(l.capacityWh), price(l.feeTicks),
          `<button type="button" class="small secondary" data-remove="${l.a}-${l.b}">${t("remove")}</button>`]),
        { raw: [4], empty: t("no_lines") });
    } catch (err) { $("line-out").className = "bad"; $("line-out").textContent = err.message; }
  }

  async function alerts() {
    const page = await get("/alerts?limit=20");
    $("op-alerts").innerHTML = table([t("when"), t("alert"), t("status")],
      page.items.map((a) => [dateTime(a.at_ms, app.market.timezone), `<strong>${esc(a.name)}</strong> ${esc(a.detail)}`,
        a.acked_ms ? esc(t("acked_by", { account: shortAccount(a.acked_by) }))
          : `<button type="button" class="small" data-ack="${a.id}">${t("acknowledge")}</button>`]),
      { raw: [1, 2], empty: t("no_alerts") });
  }

  start().catch(app.fail);
  return { refresh: () => $("op-alerts") && alerts().catch(app.fail) };
}
