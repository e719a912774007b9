// The app's charts, on Chart.js (only the parts it uses, so the bundle stays small). Each
// chart lives in a canvas and is replaced in place when its data changes.

import {
  BarController, BarElement, CategoryScale, Chart, Filler, Legend, LinearScale,
  LineController, LineElement, PointElement, Tooltip,
} from "chart.js";
import { energy, price, TICKS_PER_BRL } from "./format.js";
import { t } from "./i18n.js";

Chart.register(
  BarController, BarElement, CategoryScale, Filler, Legend, LinearScale, LineController,
  LineElement, PointElement, Tooltip,
);
Chart.defaults.font.family = "system-ui, sans-serif";
Chart.defaults.animation = false;  // live data: redraw at once

export const COLORS = { demand: "#0b6b3a", supply: "#a3361f", price: "#1f4fa3", volume: "#7a8ba0",
  import: "#a3361f", export: "#0b6b3a" };

/**
 * Draws `config` into `canvas`, replacing the chart already there. The canvas states how many
 * points it shows (`data-points`), for people using a screen reader's table mode and for the
 * browser tests.
 */
function draw(canvas, config) {
  Chart.getChart(canvas)?.destroy();
  canvas.dataset.points = config.data.datasets
    .reduce((n, d) => n + d.data.filter((v) => v !== null && v !== undefined).length, 0);
  return new Chart(canvas, config);
}

/** Cumulative steps of a book side: [kWh so far, price] points, best price first. */
function steps(levels) {
  const points = [];
  let wh = 0;
  for (const l of levels) {
    points.push({ x: wh / 1000, y: l.price_ticks / TICKS_PER_BRL });
    wh += l.quantity_wh;
    points.push({ x: wh / 1000, y: l.price_ticks / TICKS_PER_BRL });
  }
  return points;
}

/**
 * Supply and demand curves of a book (its price levels), with the clearing's price (a
 * horizontal line, when there is one price) and its volume (a vertical line) marked.
 */
export function supplyDemand(canvas, book, clearing) {
  const bids = [...book.bids].sort((a, b) => b.price_ticks - a.price_ticks);
  const offers = [...book.offers].sort((a, b) => a.price_ticks - b.price_ticks);
  const demand = steps(bids), supply = steps(offers);
  const maxX = Math.max(1e-3, ...demand.map((p) => p.x), ...supply.map((p) => p.x));
  const prices = [...demand, ...supply].map((p) => p.y);
  const datasets = [
    { label: t("demand"), data: demand, borderColor: COLORS.demand, backgroundColor: COLORS.demand },
    { label: t("supply"), data: supply, borderColor: COLORS.supply, backgroundColor: COLORS.supply },
  ];
  if (clearing?.price != null && clearing.volume_wh > 0) {
    const y = clearing.price / TICKS_PER_BRL;
    datasets.push({ label: t("clearing_price") + ": " + price(clearing.price),
      data: [{ x: 0, y }, { x: maxX, y }], borderColor: COLORS.price, borderDash: [6, 4] });
  }
  if (clearing?.volume_wh > 0) {
    const x = clearing.volume_wh / 1000;
    const lo = Math.min(0, ...prices), hi = Math.max(1e-3, ...prices);
    datasets.push({ label: t("cleared_volume") + ": " + energy(clearing.volume_wh),
      data: [{ x, y: lo }, { x, y: hi }], borderColor: COLORS.volume, borderDash: [2, 3] });
  }
  return draw(canvas, {
    type: "line",
    data: { datasets: datasets.map((d) => ({ pointRadius: 0, borderWidth: 2, ...d })) },
    options: {
      responsive: true, maintainAspectRatio: false, parsing: true,
      scales: {
        x: { type: "linear", min: 0, title: { display: true, text: "kWh" } },
        y: { title: { display: true, text: "R$/kWh" } },
      },
      plugins: { tooltip: { callbacks: {
        label: (c) => `${c.dataset.label}: ${energy(c.parsed.x * 1000)} @ ${price(c.parsed.y * TICKS_PER_BRL)}`,
      } } },
    },
  });
}

/**
 * Price and volume per interval: bars of kWh traded, a line of the clearing price. An interval
 * without trade has no price point (a gap), never a price of 0.
 */
export function history(canvas, rows, label) {
  return draw(canvas, {
    data: {
      labels: rows.map((r) => label(r.interval)),
      datasets: [
        { type: "bar", label: t("volume") + " (kWh)", yAxisID: "kwh",
          data: rows.map((r) => r.volume_wh / 1000), backgroundColor: COLORS.volume },
        { type: "line", label: t("price") + " (R$/kWh)", yAxisID: "brl", spanGaps: false,
          data: rows.map((r) => (r.volume_wh > 0 && r.price != null ? r.price / TICKS_PER_BRL : null)),
          borderColor: COLORS.price, backgroundColor: COLORS.price, pointRadius: 3 },
      ],
    },
    options: {
      responsive: true, maintainAspectRatio: false,
      scales: {
        kwh: { type: "linear", position: "left", beginAtZero: true, title: { display: true, text: "kWh" } },
        brl: { type: "linear", position: "right", grid: { drawOnChartArea: false },
          title: { display: true, text: "R$/kWh" } },
      },
    },
  });
}

/** Energy moved between zones: one bar per (from, to) pair. */
export function flows(canvas, flowRows) {
  return draw(canvas, {
    type: "bar",
    data: {
      labels: flowRows.map((f) => (f.from_zone === f.to_zone
        ? t("same_zone", { zone: f.from_zone }) : `${f.from_zone} → ${f.to_zone}`)),
      datasets: [{ label: "kWh", data: flowRows.map((f) => f.quantity_wh / 1000),
        backgroundColor: flowRows.map((f) => (f.from_zone === f.to_zone ? COLORS.volume : COLORS.price)) }],
    },
    options: { indexAxis: "y", responsive: true, maintainAspectRatio: false,
      plugins: { legend: { display: false } } },
  });
}

/** A meter's import and export per interval (kWh). */
export function meterEnergy(canvas, rows, label) {
  return draw(canvas, {
    type: "bar",
    data: {
      labels: rows.map((r) => label(r.interval)),
      datasets: [
        { label: t("imported"), data: rows.map((r) => r.import_wh / 1000), backgroundColor: COLORS.import },
        { label: t("exported"), data: rows.map((r) => r.export_wh / 1000), backgroundColor: COLORS.export },
      ],
    },
    options: { responsive: true, maintainAspectRatio: false,
      scales: { y: { beginAtZero: true, title: { display: true, text: "kWh" } } } },
  });
}
