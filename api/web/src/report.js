// The clearing house's report for one participant over a period, as the files people keep:
// CSV for spreadsheets, PDF to file or print (jsPDF, loaded only when asked for).

import { get } from "./api.js";
import { brl, energy } from "./format.js";
import { t } from "./i18n.js";

async function fetchReport(account, from, to) {
  return get(`/reports/clearing-house?from_interval=${from}&to_interval=${to}&account=${account}`);
}

function save(blob, name) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

export async function downloadCsv(account, from, to) {
  const report = await fetchReport(account, from, to);
  const rows = report.parties ?? [];
  const cols = rows.length ? Object.keys(rows[0]) : ["account"];
  const cell = (v) => (/[",\n]/.test(String(v)) ? `"${String(v).replace(/"/g, '""')}"` : String(v));
  const csv = [cols.join(","), ...rows.map((r) => cols.map((c) => cell(r[c] ?? "")).join(","))].join("\n");
  save(new Blob([csv + "\n"], { type: "text/csv" }), `wattchain-report-${from}-${to}.csv`);
}

// The report's lines as people read them: energy in kWh, money in R$.
const LINES = [
  ["bought", "bought_wh", energy], ["sold", "sold_wh", energy], ["contracted", "contracted_wh", energy],
  ["metered", "metered_wh", energy], ["imbalance", "imbalance_wh", energy],
  ["paid", "paid_for_energy", brl], ["received", "received_for_energy", brl],
  ["imbalance_paid", "imbalance_paid", brl], ["imbalance_received", "imbalance_received", brl],
  ["net_money", "net_money", brl],
];

export async function downloadPdf(account, from, to, periodLabel) {
  const [report, { jsPDF }, { autoTable }] = await Promise.all([
    fetchReport(account, from, to), import("jspdf"), import("jspdf-autotable"),
  ]);
  const doc = new jsPDF({ unit: "pt", format: "a4" });
  doc.setFontSize(14);
  doc.text(t("report"), 40, 50);
  doc.setFontSize(9);
  doc.text(`${account}`, 40, 68);
  doc.text(periodLabel, 40, 82);
  doc.text(t("settled_intervals", { n: (report.period?.intervals ?? []).length }), 40, 96);
  const party = (report.parties ?? [])[0];
  autoTable(doc, {
    startY: 110,
    head: [[t("field"), t("amount")]],
    body: party ? LINES.filter(([, key]) => key in party).map(([label, key, f]) => [t(label), f(party[key])])
      : [[t("nothing"), ""]],
    styles: { fontSize: 10 },
    columnStyles: { 1: { halign: "right" } },
  });
  save(doc.output("blob"), `wattchain-report-${from}-${to}.pdf`);
}
