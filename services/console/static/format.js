// What the console shows of a value: escaped for HTML, phone numbers masked, numbers and
// times in one style. Every string that reaches the page passes through here.

// The logs' rule (services/common/logging.py mask_phone): the first and last two digits.
export function maskPhone(value) {
  const digits = String(value).replace(/\D/g, "");
  if (digits.length <= 4) return "*".repeat(digits.length);
  return digits.slice(0, 2) + "*".repeat(digits.length - 4) + digits.slice(-2);
}

// A number written with its plus sign inside free text (an error's detail, a reason).
const PHONE_IN_TEXT = /\+\d[\d ()-]{6,18}\d/g;

export function maskText(text) {
  return String(text).replace(PHONE_IN_TEXT, (found) => "+" + maskPhone(found));
}

export function esc(value) {
  return String(value)
    .replaceAll("&", "&amp;")
    .replaceAll("<", "&lt;")
    .replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;")
    .replaceAll("'", "&#39;");
}

// Free text from the API: masked, then escaped; a dash when there is none.
export function text(value) {
  return value === null || value === undefined || value === "" ? "–" : esc(maskText(value));
}

export function count(n) {
  return Number(n || 0).toLocaleString("en-US");
}

export function percent(share) {
  return share === null || share === undefined ? "–" : `${(share * 100).toFixed(1)} %`;
}

// Times in UTC, as the log and the audit reports give them.
export function when(iso) {
  if (!iso) return "–";
  const t = new Date(iso);
  if (Number.isNaN(t.getTime())) return esc(iso);
  return t.toISOString().replace("T", " ").slice(0, 19) + " UTC";
}

export function clock(date) {
  return date.toISOString().slice(11, 19) + " UTC";
}

// A link to another view of the console; ids travel URL-encoded in the hash.
export function link(view, id, label) {
  return `<a href="#/${view}/${encodeURIComponent(id)}">${esc(label ?? id)}</a>`;
}
