// The public market view: the live interval and its gate countdown, the progress of recent
// clearings, the supply and demand curves of a clearing, price and volume history, flows
// between zones and the operator's alerts.

import { get } from "./api.js";
import { bookCard } from "./book.js";
import * as charts from "./charts.js";
import { countdown, dateTime, energy, intervalSpan, number, price } from "./format.js";
import { t } from "./i18n.js";
import { esc, html, table } from "./dom.js";

const RECENT = 12;  // intervals in the progress table
const HISTORY = 24;  // clearings in the history chart and the curves' choice

export function marketView(root, app) {
  root.innerHTML = html`
    <section class="grid">
      <article class="card" aria-labelledby="live-h">
        <h2 id="live-h">${t("live")}</h2>
        <dl id="live" class="facts"></dl>
      </article>
      <article class="card wide" aria-labelledby="progress-h">
        <h2 id="progress-h">${t("progress")}</h2>
        <div class="scroll" tabindex="0"><table id="progress"></table></div>
      </article>
    </section>

    <section class="grid">
      <article class="card wide" aria-labelledby="sd-h">
        <h2 id="sd-h">${t("supply_demand")}</h2>
        <label>${t("interval")} <select id="sd-interval"></select></label>
        <p id="sd-note" class="sub"></p>
        <div class="chart"><canvas id="sd-chart" role="img" aria-label="${t("supply_demand")}"></canvas></div>
      </article>
      <article class="card" id="book-card"></article>
    </section>
    <section class="grid">
      <article class="card wide" aria-labelledby="hist-h">
        <h2 id="hist-h">${t("history")}</h2>
        <div class="chart"><canvas id="hist-chart" role="img" aria-label="${t("history")}"></canvas></div>
      </article>
      <article class="card" aria-labelledby="flows-h">
        <h2 id="flows-h">${t("flows")}</h2>
        <div class="chart small"><canvas id="flows-chart" role="img" aria-label="${t("flows")}"></canvas></div>
        <p id="flows-note" class="sub"></p>
      </article>
    </section>
    <article class="card" aria-labelledby="alerts-h">
      <h2 id="alerts-h">${t("alerts")}</h2>
      <ul id="alerts" class="alerts"></ul>
    </article>`;
  const $ = (id) => root.querySelector("#" + id);
  const label = (k) => intervalSpan(k, app.market);
  let shown = null;  // the interval whose curves are drawn


  function live() {
    const m = app.market, p = m.params;
    const left = m.next_gate_closure_ms - app.now();
    $("live").innerHTML = [
      [t("current_interval"), label(m.current_interval)],
      [t("next_open"), `${label(m.next_open_interval)} — ${t("gate_in", { left: countdown(left) })}`],
      [t("interval_length"), t("gate_before", { length: countdown(p.interval_ms), gate: countdown(p.gate_closure_ms) })],
      [t("mechanism"), t(p.mechanism)],
      [t("price_bounds"), `${price(p.min_price_ticks)} … ${price(p.max_price_ticks)}`],
      [t("tariff"), `${price(p.utility_tariff_ticks)} / ${price(p.feed_in_ticks)}`],
    ].map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`).join("");
    $("live").querySelector("dd:nth-of-type(2)").id = "countdown";
  }

  async function progress() {
    const last = app.market.next_open_interval;
    const recent = await get(`/intervals?from_interval=${Math.max(0, last - RECENT + 1)}&to_interval=${last}`);
    recent.reverse();
    $("progress").innerHTML = table(
      [t("interval"), t("state"), t("orders"), t("price"), t("volume")],
      recent.map((r) => [
        label(r.interval),
        `<span class="state state-${esc(r.state)}" title="${esc(r.error || "")}">${esc(t("state_" + r.state, { verified: r.verified_pages, pages: r.pages }))}</span>`,
        number(r.orders),
        ["cleared", "settled"].includes(r.state)
          ? (r.volume_wh > 0 ? esc(r.price != null ? price(r.price) : t(r.mechanism)) : `<em>${esc(t("no_trade"))}</em>`)
          : "–",
        r.volume_wh != null ? energy(r.volume_wh) : "–",
      ]),
      { raw: [1, 3] },
    );
  }

  /**
   * The latest clearings: the price and volume history, and the intervals whose curves can be
   * drawn (the newest that traded is drawn first).
   */
  async function clearings() {
    const page = await get(`/clearings?limit=${HISTORY}`);
    const rows = [...page.items].reverse();
    charts.history($("hist-chart"), rows, label);
    const sel = $("sd-interval"), chosen = sel.value;
    sel.innerHTML = page.items.map((c) => `<option value="${c.interval}">${esc(label(c.interval))} (${c.interval})${
      c.volume_wh > 0 ? "" : " — " + esc(t("no_trade"))}</option>`).join("");
    if (!page.items.length) { $("sd-note").textContent = t("no_clearing_yet"); return; }
    const traded = page.items.find((c) => c.volume_wh > 0) ?? page.items[0];
    sel.value = page.items.some((c) => String(c.interval) === chosen) ? chosen : String(traded.interval);
    if (String(shown) !== sel.value) await curves(Number(sel.value));
  }

  async function curves(k) {
    shown = k;
    const [book, clearing] = await Promise.all([
      get(`/intervals/${k}/book?limit=1`),
      get(`/intervals/${k}/clearing`, { notFound: null }),
    ]);
    charts.supplyDemand($("sd-chart"), book, clearing);
    const traded = clearing && clearing.volume_wh > 0;
    $("sd-note").textContent = t("curves_for", { label: `${label(k)} (${k})` }) + " — " + (traded
      ? `${t("cleared_volume")}: ${energy(clearing.volume_wh)}, ${clearing.price != null ? price(clearing.price) : t(clearing.mechanism)}`
      : t("no_trade"));
    const flows = clearing?.flows ?? [];
    charts.flows($("flows-chart"), flows);
    $("flows-note").textContent = flows.length ? "" : t("no_flows");
  }

  async function alerts() {
    const page = await get("/alerts?limit=8");
    $("alerts").innerHTML = page.items.length
      ? page.items.map((a) => `<li><time>${esc(dateTime(a.at_ms, app.market.timezone))}</time>
          <strong>${esc(a.name)}</strong> ${esc(a.detail)}</li>`).join("")
      : `<li class="sub">${t("no_alerts")}</li>`;
  }

  $("sd-interval").addEventListener("change", (e) => curves(Number(e.target.value)).catch(app.fail));
  const book = bookCard($("book-card"), app);
  live();
  const slow = () => Promise.all([progress(), clearings(), book.refresh(), alerts()]).catch(app.fail);
  slow();
  return {
    tick: live,           // every second: the countdown
    refresh: slow,        // every few seconds, and on a clearing or settlement event
  };
}
