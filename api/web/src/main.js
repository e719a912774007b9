// The WattChain web app: one page, a view per route (#/market, #/participant/<account>,
// #/operator, #/devices),
// the market read once a few seconds and live events from /stream. Its markup is built here;
// `index.html` only holds the shell.

import "./app.css";
import { get } from "./api.js";
import { marketView } from "./market.js";
import { participantView } from "./participant.js";
import { operatorView } from "./operator.js";
import { devicesView } from "./devices.js";
import { LANGUAGES, lang, setLang, t } from "./i18n.js";
import { esc } from "./dom.js";

const REFRESH_MS = 4000;

const app = {
  market: null,
  skew: 0,  // the API's clock minus this browser's, so countdowns follow the market's time
  now: () => Date.now() + app.skew,
  fail: (err) => {
    document.getElementById("status").textContent = t("api_down", { error: err.message });
    document.getElementById("status").className = "status bad";
  },
};

let view = null;

async function readMarket() {
  const before = Date.now();
  app.market = await get("/market");
  app.skew = app.market.now_ms - (before + Date.now()) / 2;
  const m = app.market;
  const status = document.getElementById("status");
  status.className = "status" + (m.node_reachable ? "" : " bad");
  status.textContent = m.node_reachable
    ? t("blocks", { best: m.best_block ?? "–", finalized: m.finalized_block ?? "–", indexed: m.indexed_block ?? "–" })
    : t("node_down");
}

function shell() {
  document.title = t("title");
  document.documentElement.lang = lang();
  document.getElementById("app").innerHTML = `
    <header>
      <h1>${esc(t("title"))}</h1>
      <nav aria-label="WattChain">
        <a href="#/market" id="nav-market">${t("nav_market")}</a>
        <a href="#/participant" id="nav-participant">${t("nav_participant")}</a>
        <a href="#/operator" id="nav-operator">${t("nav_operator")}</a>
        <a href="#/devices" id="nav-devices">${t("nav_devices")}</a>
        <label class="lang">${t("language")}
          <select id="lang">${Object.entries(LANGUAGES).map(([k, v]) =>
            `<option value="${k}"${k === lang() ? " selected" : ""}>${v}</option>`).join("")}</select>
        </label>
      </nav>
      <p id="status" class="status" role="status">${t("connecting")}</p>
    </header>
    <main id="view"></main>`;
  document.getElementById("lang").addEventListener("change", (e) => {
    setLang(e.target.value);
    shell();
    route();
  });
}

function route() {
  const [, name = "market", arg = ""] = location.hash.split("/");
  // Each view gets a fresh element: what a view left running writes into its own detached
  // one, never into the next view's.
  const root = document.createElement("main");
  root.id = "view";
  document.getElementById("view").replaceWith(root);
  for (const a of document.querySelectorAll("nav a")) {
    a.toggleAttribute("aria-current", a.id === "nav-" + name);
  }
  const views = {
    market: () => marketView(root, app),
    participant: () => participantView(root, app, decodeURIComponent(arg)),
    operator: () => operatorView(root, app),
    devices: () => devicesView(root, app),
  };
  view = (views[name] || views.market)();
}

async function start() {
  setLang(lang());
  shell();
  for (;;) {
    try { await readMarket(); break; } catch (err) { app.fail(err); }
    await new Promise((r) => setTimeout(r, 2000));
  }
  route();
  window.addEventListener("hashchange", route);
  setInterval(() => view?.tick?.(), 1000);
  setInterval(() => readMarket().then(() => view?.refresh?.()).catch(app.fail), REFRESH_MS);
  // A clearing or a settlement changes what every view shows: refresh at once.
  const events = new EventSource("/stream");
  for (const kind of ["clearing", "settlement"]) {
    events.addEventListener(kind, () => view?.refresh?.());
  }
}

start();
