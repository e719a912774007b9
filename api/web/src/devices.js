// Device configuration, for the operator and the distributor once logged in (operator
// console): each meter's model and register map, its Modbus address, its polling period and
// demand-response settings, its connection state and last readings. A change is checked by
// the API, applied by the meter ingest without a restart, and recorded with who made it.

import { esc, html, table } from "./dom.js";
import { dateTime, energy, number } from "./format.js";
import { t } from "./i18n.js";
import * as session from "./session.js";

// meter_bridge/registers.py MODELS: the register maps the bridge reads.
const MODELS = ["sdm120", "sdm230", "sdm630", "sunspec203", "sunspec701"];

export function devicesView(root, app) {
  const s = session.current();
  if (!s) {
    root.innerHTML = html`<p class="card">${t("devices_login")} <a href="#/operator">${t("nav_operator")}</a></p>`;
    return {};
  }
  root.innerHTML = `<div id="devices" class="grid"></div>`;
  const list = root.querySelector("#devices");
  const editing = new Set();  // forms being edited are not redrawn under the person's hands
  const notes = new Map();  // the last save's outcome per device, kept across redraws

  async function load() {
    const answer = await session.authed("GET", "/devices");
    const devices = Array.isArray(answer) ? answer : answer.items;
    if (!devices.length) { list.innerHTML = `<p class="card">${t("no_devices")}</p>`; return; }
    for (const d of devices) {
      let card = list.querySelector(`[data-device="${CSS.escape(d.name)}"]`);
      if (!card) {
        card = document.createElement("article");
        card.className = "card";
        card.dataset.device = d.name;
        list.append(card);
      }
      // Redrawn only for a new version (the form and open sections stay as they are).
      if (!editing.has(d.name) && card.dataset.version !== String(d.version)) render(card, d);
      else status(card, d);
    }
  }

  function status(card, d) {
    const st = d.status || {};
    const applied = st.applied ?? st.applied_version === d.version;
    card.querySelector(".device-status").innerHTML = [
      [t("connection"), `<span class="state state-${st.state === "connected" ? "cleared" : st.state === "stale" ? "voided" : "open"}">${esc(t("conn_" + (st.state || "unknown")))}</span>`],
      [t("last_reading"), st.last_ok_ms ? esc(dateTime(st.last_ok_ms, app.market.timezone)) : "–"],
      [t("power"), st.power_w != null ? esc(number(st.power_w) + " W") : "–"],
      [t("imported") + " / " + t("exported"), st.import_wh != null ? esc(`${energy(st.import_wh)} / ${energy(st.export_wh)}`) : "–"],
      [t("config_version"), `${d.version} ${applied ? "✓ " + esc(t("applied")) : esc(t("pending_apply"))}`],
    ].concat(st.last_error ? [[t("error"), `<span class="bad">${esc(st.last_error)}</span>`]] : [])
      .map(([k, v]) => `<dt>${esc(k)}</dt><dd>${v}</dd>`).join("");
  }

  function render(card, d) {
    card.dataset.version = String(d.version);
    // Where and how the meter is read decides what the ingest signs: the distributor's.
    const source = s.roles.includes("distributor") ? "" : " disabled";
    card.innerHTML = html`<h2>${esc(d.name)}</h2>
      <p class="sub account">${t("meter_key")}: ${esc(d.meter || "–")}</p>
      <dl class="facts device-status"></dl>
      <form class="row device-form">
        <label>${t("model")} <select name="model"${source}>${MODELS.concat(MODELS.includes(d.model) ? [] : [d.model]).map((m) =>
          `<option${m === d.model ? " selected" : ""}>${esc(m)}</option>`).join("")}</select></label>
        <label>${t("host")} <input name="host" value="${esc(d.host)}" required maxlength="253"${source}></label>
        <label>${t("port")} <input name="port" type="number" min="1" max="65535" value="${d.port}" required${source}></label>
        <label>${t("unit_id")} <input name="unit_id" type="number" min="1" max="247" value="${d.unit_id}" required${source}></label>
        <label>${t("poll_period")} (s) <input name="poll_period_s" type="number" min="1" max="3600" value="${d.poll_period_s}" required></label>
        <label>${t("curtail_limit")} (W) <input name="curtail_limit_w" type="number" min="0" value="${d.curtail_limit_w ?? ""}"></label>
        <label>${t("revert_timer")} (s) <input name="revert_timer_s" type="number" min="0" max="86400" value="${d.revert_timer_s ?? 0}"></label>
        <button type="submit">${t("save")}</button>
      </form>
      <p class="device-out" role="status"></p>
      <details><summary>${t("register_map")}</summary><div class="scroll" tabindex="0"><table>${table(
        [t("quantity_name"), t("register_table"), t("address"), t("encoding")],
        (d.register_map?.points ?? []).map((p) => [p.quantity, p.table,
          p.address ?? (p.point != null ? `${p.point} +${p.offset ?? 0}` : "–"), p.encoding]),
        { empty: t("nothing") })}</table></div></details>
      <details class="device-history"><summary>${t("changes")}</summary><div class="scroll" tabindex="0"><table class="device-changes"></table></div></details>`;
    status(card, d);
    const note = notes.get(d.name);
    if (note) Object.assign(card.querySelector(".device-out"), note);
    const form = card.querySelector("form");
    form.oninput = () => { editing.add(d.name); notes.delete(d.name); };
    form.onsubmit = async (e) => {
      e.preventDefault();
      const f = Object.fromEntries(new FormData(form));
      const change = {};
      for (const k of ["port", "unit_id", "poll_period_s", "revert_timer_s"]) {
        if (k in f && Number(f[k]) !== d[k]) change[k] = Number(f[k]);
      }
      for (const k of ["model", "host"]) if (k in f && f[k] !== d[k]) change[k] = f[k];
      const curtail = f.curtail_limit_w === "" ? null : Number(f.curtail_limit_w);
      if (curtail !== (d.curtail_limit_w ?? null)) change.curtail_limit_w = curtail;
      const out = card.querySelector(".device-out");
      try {
        const saved = await session.authed("PATCH", `/devices/${encodeURIComponent(d.name)}`, change);
        editing.delete(d.name);
        notes.set(d.name, { className: "device-out ok", textContent: t("saved", { version: saved.version }) });
        render(card, saved);  // with the status the answer carries: applied or not yet
      } catch (err) { out.className = "device-out bad"; out.textContent = err.message; }
    };
    card.querySelector(".device-history").ontoggle = (e) => e.target.open && changes(card, d.name);
  }

  async function changes(card, name) {
    const page = await session.authed("GET", `/devices/${encodeURIComponent(name)}/changes`);
    const rows = Array.isArray(page) ? page : page.items;
    card.querySelector(".device-changes").innerHTML = table([t("when"), t("who"), t("field"), t("before"), t("after")],
      rows.map((c) => [dateTime(c.at_ms, app.market.timezone), c.by, c.field, c.old ?? "–", c.new ?? "–"]),
      { empty: t("nothing") });
  }

  load().catch(app.fail);
  return { refresh: () => load().catch(app.fail) };
}
