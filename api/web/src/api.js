// The API, read from the page's own origin. Errors carry the API's documented shape
// ({error, detail}); a 404 can be an answer ("not cleared yet"), so callers may ask for null.

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.detail || `HTTP ${status}`);
    this.status = status;
    this.error = body?.error;
  }
}

export async function get(path, { notFound } = {}) {
  const r = await fetch(path, { headers: { accept: "application/json" } });
  if (r.status === 404 && notFound !== undefined) return notFound;
  if (!r.ok) throw new ApiError(r.status, await r.json().catch(() => null));
  return r.json();
}

/** A state-changing request with a JSON body; the API's error detail on refusal. */
export async function send(method, path, body) {
  const r = await fetch(path, {
    method, headers: { "content-type": "application/json", accept: "application/json" },
    body: JSON.stringify(body),
  });
  const answer = await r.json().catch(() => null);
  if (!r.ok) throw new ApiError(r.status, answer);
  return answer;
}
