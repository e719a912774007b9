// Small helpers for building the pages' markup from data: every value is escaped unless a
// column is marked raw (markup this app made itself).

export const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) =>
  ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));

/** A template tag that leaves its values as they are: for the app's own markup only. */
export const html = (strings, ...values) => strings.reduce((s, part, i) => s + part + (values[i] ?? ""), "");

/** A table of `rows` under `headers`; cells are escaped unless their column is in `raw`. */
export function table(headers, rows, { raw = [], empty } = {}) {
  const head = `<thead><tr>${headers.map((h) => `<th scope="col">${esc(h)}</th>`).join("")}</tr></thead>`;
  const body = rows.length
    ? rows.map((r) => `<tr>${r.map((c, i) => `<td>${raw.includes(i) ? c : esc(c)}</td>`).join("")}</tr>`).join("")
    : `<tr><td colspan="${headers.length}" class="sub">${esc(empty ?? "–")}</td></tr>`;
  return head + `<tbody>${body}</tbody>`;
}
