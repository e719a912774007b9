// The order book of the next open intervals, by price level: offers above, bids below. The
// market view and the participant view both show it.

import { get } from "./api.js";
import { esc, html, table } from "./dom.js";
import { energy, intervalSpan, number, price } from "./format.js";
import { t } from "./i18n.js";

const AHEAD = 3;  // intervals offered: the next open one and those after it

/** Renders the book card into `el`; call `refresh()` to read it again. */
export function bookCard(el, app) {
  el.innerHTML = html`<h2>${t("book")}</h2>
    <label>${t("interval")} <select class="book-interval"></select></label>
    <div class="scroll" tabindex="0"><table class="book"></table></div>`;
  const sel = el.querySelector(".book-interval");
  async function refresh() {
    const m = app.market;
    const ks = Array.from({ length: AHEAD }, (_, i) => m.next_open_interval + i);
    const chosen = Number(sel.value) || ks[0];
    sel.innerHTML = ks.map((k) => `<option value="${k}">${esc(intervalSpan(k, m))}</option>`).join("");
    sel.value = String(ks.includes(chosen) ? chosen : ks[0]);
    const b = await get(`/intervals/${sel.value}/book?limit=1`);
    const rows = [...b.offers].reverse().map((l) => ["offer", l]).concat(b.bids.map((l) => ["bid", l]));
    el.querySelector(".book").innerHTML = table(
      [t("side"), t("price"), t("quantity"), t("orders")],
      rows.map(([side, l]) => [`<span class="${side}">${esc(t(side))}</span>`, price(l.price_ticks),
        energy(l.quantity_wh), number(l.orders)]),
      { raw: [0], empty: t("nothing") });
  }
  sel.addEventListener("change", () => refresh().catch(app.fail));
  return { refresh };
}
