// How the market's numbers read for people: money in R$ (Brazilian formatting by default),
// energy in kWh (Wh where precision matters), times in the market's own time zone.
// The chain's integers: prices in ticks per kWh (100 ticks = R$ 1), money in units
// (1/1000 tick, so 100,000 units = R$ 1), energy in Wh.

import { lang } from "./i18n.js";

export const TICKS_PER_BRL = 100;
export const UNITS_PER_BRL = 100_000;

const cache = new Map();
function fmt(key, make) {
  const k = lang() + "|" + key;
  if (!cache.has(k)) cache.set(k, make(lang()));
  return cache.get(k);
}

/** R$ 1.234,56 (pt-BR) or R$1,234.56 (en) from money units. */
export function brl(units) {
  if (units === null || units === undefined) return "–";
  return fmt("brl", (l) => new Intl.NumberFormat(l, { style: "currency", currency: "BRL" }))
    .format(Number(units) / UNITS_PER_BRL);
}

/** A price per kWh in R$ from ticks: "R$ 0,80/kWh". */
export function price(ticks) {
  if (ticks === null || ticks === undefined) return "–";
  return fmt("price", (l) => new Intl.NumberFormat(l, {
    style: "currency", currency: "BRL", minimumFractionDigits: 2, maximumFractionDigits: 2,
  })).format(ticks / TICKS_PER_BRL) + "/kWh";
}

/** Energy in kWh with Wh precision: 1.234,5 kWh; below 1 kWh in Wh: 500 Wh. */
export function energy(wh) {
  if (wh === null || wh === undefined) return "–";
  if (Math.abs(wh) < 1000) return number(wh) + " Wh";
  return fmt("kwh", (l) => new Intl.NumberFormat(l, { maximumFractionDigits: 3 }))
    .format(wh / 1000) + " kWh";
}

export function number(n) {
  return fmt("int", (l) => new Intl.NumberFormat(l)).format(n);
}

/** "14:15" or "14:15:30" in the market's zone; seconds when intervals are not whole minutes. */
export function clock(ms, tz, withSeconds) {
  const opts = { timeZone: tz, hour: "2-digit", minute: "2-digit", hourCycle: "h23" };
  if (withSeconds) opts.second = "2-digit";
  return fmt("clock" + tz + withSeconds, (l) => new Intl.DateTimeFormat(l, opts)).format(new Date(ms));
}

export function dateTime(ms, tz) {
  return fmt("dt" + tz, (l) => new Intl.DateTimeFormat(l, {
    timeZone: tz, dateStyle: "short", timeStyle: "medium",
  })).format(new Date(ms));
}

/** An interval as its clock times: "14:15–14:30" (the market's time zone). */
export function intervalSpan(k, market) {
  const ms = market.params.interval_ms;
  const secs = ms % 60000 !== 0;
  return clock(k * ms, market.timezone, secs) + "–" + clock((k + 1) * ms, market.timezone, secs);
}

/** "3 min 05 s" / "42 s" to a moment. */
export function countdown(msLeft) {
  const s = Math.max(0, Math.round(msLeft / 1000));
  const m = Math.floor(s / 60);
  return m ? `${m} min ${String(s % 60).padStart(2, "0")} s` : `${s} s`;
}

export function shortAccount(a) {
  return a ? a.slice(0, 6) + "…" + a.slice(-4) : "–";
}
