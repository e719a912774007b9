// A participant's view: its balances and energy tokens, its meters' import and export, its
// orders, trades and settlement in R$, and the clearing house's report for a period (CSV).
// With its key imported into this browser, the participant places and cancels orders here:
// the page signs them (wallet.js) and the API relays them to the chain.

import { get, send } from "./api.js";
import * as charts from "./charts.js";
import { brl, energy, intervalSpan, price, TICKS_PER_BRL } from "./format.js";
import { t } from "./i18n.js";
import { esc, html, table } from "./dom.js";
import { bookCard } from "./book.js";
import { keyCard } from "./keycard.js";
import { downloadCsv, downloadPdf } from "./report.js";
import { cancelMessage, freshClientOrderId, hexToBytes, orderMessage, SOURCES } from "./messages.js";

const ACCOUNT_KEY = "wattchain.account";
const AHEAD = 6;  // intervals offered in the order form

export function participantView(root, app, account) {
  account = account || localStorage.getItem(ACCOUNT_KEY) || "";
  root.innerHTML = html`
    <form id="pick" class="card pick">
      <label for="account">${t("account")}</label>
      <input id="account" name="account" autocomplete="off" spellcheck="false" size="50"
        value="${esc(account)}" pattern="[1-9A-HJ-NP-Za-km-z]{46,50}|0x[0-9a-fA-F]{64}" required>
      <button type="submit">${t("show")}</button>
      <p class="sub">${t("participant_hint")}</p>
    </form>
    <div id="who"></div>`;
  const $ = (id) => root.querySelector("#" + id);
  $("pick").addEventListener("submit", (e) => {
    e.preventDefault();
    location.hash = "#/participant/" + encodeURIComponent($("account").value.trim());
  });
  if (!account) {
    showKey(null);
    return {};
  }
  localStorage.setItem(ACCOUNT_KEY, account);
  const label = (k) => intervalSpan(k, app.market);
  let who = null;
  let wallet = null;  // wallet.js, loaded when the participant's key is wanted
  let book = null;  // the order book card, once the participant is shown

  async function loadWallet() {
    wallet = wallet || await import("./wallet.js");
    return wallet;
  }

  async function load() {
    who = await get(`/participants/${encodeURIComponent(account)}`);
    account = who.account;
    if (!who.registered) {
      $("who").innerHTML = `<p class="card bad">${t("not_registered")}</p>`;
      return;
    }
    if (!$("balances")) render();
    const [bal, orders, positions, settlements] = await Promise.all([
      get(`/participants/${account}/balances`).catch(() => null),
      get(`/participants/${account}/orders?limit=20`),
      get(`/participants/${account}/positions?limit=20`),
      get(`/participants/${account}/settlements?limit=20`),
    ]);
    $("balances").innerHTML = bal ? [
      [t("free"), brl(bal.free)], [t("held"), brl(bal.held)],
      [t("awaiting"), brl(bal.awaiting_settlement)], [t("tokens"), energy(bal.energy_wh)],
    ].map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`).join("") : "–";
    const canCancel = (o) => o.status === "open" && wallet?.isUnlocked(account)
      && Number.isSafeInteger(o.client_order_id)
      && app.now() < o.interval * app.market.params.interval_ms - app.market.params.gate_closure_ms;
    $("orders").innerHTML = table(
      [t("interval"), t("side"), t("quantity"), t("price"), t("status"), ""],
      orders.items.map((o) => [label(o.interval), t(o.side), energy(o.quantity_wh),
        price(o.price_ticks), t(o.status) + (o.filled_wh ? ` (${energy(o.filled_wh)})` : ""),
        canCancel(o) ? `<button type="button" class="small" data-cancel="${o.client_order_id}">${t("cancel")}</button>` : ""]),
      { empty: t("nothing"), raw: [5] });
    $("positions").innerHTML = table(
      [t("interval"), t("bought"), t("sold"), t("paid"), t("received")],
      positions.items.map((p) => [label(p.interval), energy(p.bought_wh), energy(p.sold_wh),
        brl(p.paid), brl(p.received)]),
      { empty: t("nothing") });
    $("settlements").innerHTML = table(
      [t("interval"), t("contracted"), t("metered"), t("imbalance"), t("amount")],
      settlements.items.map((s) => [label(s.interval), energy(s.contracted_wh),
        energy(s.metered_wh) + (s.estimated ? ` (${t("estimated")})` : ""), energy(s.imbalance_wh),
        brl(s.amount)]),
      { empty: t("nothing") });
    intervalChoices();
    await Promise.all([meters(who.meters), book.refresh()]);
  }

  /**
   * The order form's intervals follow the clock: those whose gate closed drop off. A choice
   * that dropped off is not replaced by another: the form asks for a new one.
   */
  function intervalChoices() {
    const sel = $("o-interval");
    const first = app.market.next_open_interval;
    if (!sel || Number(sel.dataset.first) === first) return;
    const chosen = sel.value;
    sel.dataset.first = String(first);
    sel.innerHTML = `<option value="">${esc(t("choose_interval"))}</option>` +
      Array.from({ length: AHEAD }, (_, i) => first + i)
        .map((k) => `<option value="${k}">${esc(label(k))}</option>`).join("");
    sel.value = [...sel.options].some((o) => o.value === chosen) ? chosen : "";
  }

  function render() {
    const last = app.market.current_interval;
    $("who").innerHTML = html`
      <section class="grid">
        <article class="card"><h2>${t("balances")}</h2>
          <p class="sub account">${esc(account)} — ${t("zone")} ${who.zone}</p>
          <dl id="balances" class="facts"></dl></article>
        <article class="card wide"><h2>${t("meter_energy")}</h2>
          <p id="meters-note" class="sub"></p>
          <div class="chart small"><canvas id="meter-chart" role="img" aria-label="${t("meter_energy")}"></canvas></div>
        </article>
      </section>
      <section class="grid">
        <article class="card" id="key"></article>
        <article class="card wide" id="trade"></article>
      </section>
      <section class="grid two">
        <article class="card"><h2>${t("my_orders")}</h2><div class="scroll" tabindex="0"><table id="orders"></table></div></article>
        <article class="card"><h2>${t("positions")}</h2><div class="scroll" tabindex="0"><table id="positions"></table></div></article>
        <article class="card"><h2>${t("settlements")}</h2><div class="scroll" tabindex="0"><table id="settlements"></table></div></article>
        <article class="card" id="book-card"></article>
      </section>
      <form id="report" class="card">
        <h2>${t("report")}</h2>
        <label>${t("from_interval")} <input id="from" type="number" min="0" value="${Math.max(0, last - 96)}"></label>
        <label>${t("to_interval")} <input id="to" type="number" min="0" value="${last}"></label>
        <button type="submit" value="csv">${t("download_csv")}</button>
        <button type="submit" value="pdf">${t("download_pdf")}</button>
      </form>`;
    $("report").addEventListener("submit", (e) => {
      e.preventDefault();
      const [from, to] = [$("from").value, $("to").value];
      const period = `${t("from_interval")} ${from} (${label(Number(from))}) — ${t("to_interval")} ${to} (${label(Number(to))})`;
      (e.submitter?.value === "pdf" ? downloadPdf(account, from, to, period) : downloadCsv(account, from, to))
        .catch(app.fail);
    });
    $("orders").addEventListener("click", (e) => {
      const id = e.target.dataset?.cancel;
      if (id) cancel(Number(id)).catch((err) => say(t("order_refused", { detail: err.message }), true));
    });
    showKey(account);
    book = bookCard($("book-card"), app);
  }

  /** The key card; with no account chosen yet, a stored key names it. */
  async function showKey(address) {
    const w = await loadWallet();
    if (!address) {
      const mine = w.storedAddresses();
      if (mine.length === 1) { location.hash = "#/participant/" + mine[0]; return; }
      $("who").innerHTML = `<article class="card" id="key"></article>`;
    }
    keyCard($("key"), w, address, (changed) => {
      if (changed !== address) { location.hash = "#/participant/" + changed; return; }
      showKey(address);
      load();
    });
    tradeCard();
  }

  /** The order form, when the participant's key is unlocked. */
  function tradeCard() {
    const el = $("trade");
    if (!el || !who) return;
    if (!wallet?.isUnlocked(account)) {
      el.innerHTML = `<h2>${t("new_order")}</h2><p class="sub">${t("key_none")}</p>`;
      return;
    }
    const m = app.market, p = m.params;
    const intervals = Array.from({ length: AHEAD }, (_, i) => m.next_open_interval + i);
    el.innerHTML = html`<h2>${t("new_order")}</h2>
      <form id="order-form" class="row">
        <label>${t("interval")} <select id="o-interval" required data-first="${m.next_open_interval}">${intervals.map((k) =>
          `<option value="${k}">${esc(label(k))}</option>`).join("")}</select></label>
        <label>${t("side")} <select id="o-side"><option value="bid">${t("bid")}</option>
          <option value="offer">${t("offer")}</option></select></label>
        <label>${t("quantity")} (kWh) <input id="o-kwh" type="number" min="0.001" step="0.001" value="0.5" required></label>
        <label>${t("price")} (R$/kWh) <input id="o-price" type="number" step="0.01"
          min="${p.min_price_ticks / TICKS_PER_BRL}" max="${p.max_price_ticks / TICKS_PER_BRL}" value="0.80" required></label>
        <label id="o-source-l">${t("source")} <select id="o-source">${SOURCES.map((s) =>
          `<option value="${s}">${t(s)}</option>`).join("")}</select></label>
        <label id="o-green-l"><input id="o-green" type="checkbox"> ${t("renewable_only")}</label>
        <button type="submit">${t("sign_send")}</button>
      </form>
      <p id="order-result" role="status"></p>`;
    const side = el.querySelector("#o-side");
    const sync = () => {
      el.querySelector("#o-source-l").hidden = side.value !== "offer";
      el.querySelector("#o-green-l").hidden = side.value !== "bid" || p.mechanism === "uniform";
    };
    side.onchange = sync;
    sync();
    el.querySelector("#order-form").onsubmit = (e) => {
      e.preventDefault();
      place().catch((err) => say(t("order_refused", { detail: err.message }), true));
    };
  }

  function say(text, bad = false) {
    const out = $("order-result");
    if (out) { out.textContent = text; out.className = bad ? "bad" : "ok"; }
  }

  async function place() {
    const f = (id) => $("trade").querySelector("#" + id);
    const sideValue = f("o-side").value;
    const spec = {
      client_order_id: freshClientOrderId(),
      interval: Number(f("o-interval").value),
      side: sideValue,
      // Integers on the wire: Wh and ticks per kWh (the form speaks kWh and R$/kWh).
      quantity_wh: Math.round(Number(f("o-kwh").value) * 1000),
      price_ticks: Math.round(Number(f("o-price").value) * TICKS_PER_BRL),
      zone: who.zone,
      source: sideValue === "offer" ? f("o-source").value : "grid_mix",
      renewable_only: sideValue === "bid" && f("o-green").checked && !f("o-green-l").hidden,
    };
    const genesis = hexToBytes(app.market.genesis_hash);
    const signature = wallet.sign(account, orderMessage(genesis, wallet.publicKey(account), spec));
    const accepted = await send("POST", "/orders", { owner: account, ...spec, signature });
    say(t("order_sent", { id: accepted.client_order_id }));
    follow(accepted.client_order_id);
  }

  /** Follows an accepted order until it is on chain (or refused there). */
  async function follow(id) {
    for (let i = 0; i < 60; i++) {
      await new Promise((r) => setTimeout(r, 1000));
      const o = await get(`/orders/${account}/${id}`).catch(() => null);
      if (o?.relay_status === "onchain") { say(t("order_onchain", { id })); load(); return; }
      if (o?.relay_status === "rejected") { say(t("order_refused", { detail: o.relay_error || o.relay_status }), true); return; }
    }
  }

  async function cancel(id) {
    const genesis = hexToBytes(app.market.genesis_hash);
    const signature = wallet.sign(account, cancelMessage(genesis, wallet.publicKey(account), id));
    await send("DELETE", `/orders/${account}/${id}`, { signature });
    say(t("cancel_sent", { id }));
  }

  async function meters(keys) {
    // A reading is the energy its meter counted since the previous one (the baseline, a
    // meter's first registers, counts none): one bar per interval, the owner's meters summed.
    const series = new Map();
    for (const key of keys) {
      const page = await get(`/meters/${key}/readings?limit=100`);
      for (const r of page.items.filter((r) => r.kind === "reading")) {
        const s = series.get(r.interval) ?? { interval: r.interval, import_wh: 0, export_wh: 0 };
        s.import_wh += r.import_wh;
        s.export_wh += r.export_wh;
        series.set(r.interval, s);
      }
    }
    const rows = [...series.values()].sort((a, b) => a.interval - b.interval);
    $("meters-note").textContent = keys.length
      ? `${t("meters")}: ${keys.map((k) => k.slice(0, 10) + "…").join(", ")}` + (rows.length ? "" : ` — ${t("no_readings")}`)
      : t("no_readings");
    charts.meterEnergy($("meter-chart"), rows, (k) => intervalSpan(k, app.market));
  }

  load().catch(app.fail);
  return { refresh: () => load().catch(app.fail) };
}
