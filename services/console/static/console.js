// The console's shell: routes (#/view/id), fetches from the query API, and polls it so the
// numbers move while a campaign runs, without a reload.
import { clock, count, esc, maskPhone, maskText } from "./format.js";
import * as views from "./views.js";

const POLL_MS = 2000;
const PAGE = 50;
const view = document.getElementById("view");
const live = document.getElementById("live");
const state = { shown: PAGE, shownFor: null, html: "", updates: 0, busy: false };

class NotFound extends Error {}

async function api(path) {
  const response = await fetch(path, { headers: { accept: "application/json" } });
  const body = await response.json().catch(() => ({}));
  if (response.status === 404) throw new NotFound(body.error || "not found");
  if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
  return body;
}

function route() {
  const [name, ...rest] = location.hash.replace(/^#\/?/, "").split("/");
  const id = rest.length ? decodeURIComponent(rest.join("/")) : null;
  return { name: name || "campaigns", id };
}

const WHAT = { campaigns: "Campaign", message: "Message", billing: "Campaign", errors: "Campaign" };

function notFound(r, error) {
  const what = WHAT[r.name] || "Page";
  return `<div class="notice" data-testid="not-found"><h1>${esc(what)} “${esc(maskText(r.id ?? r.name))}” not found</h1>
    <p>${esc(maskText(error.message))}</p>
    <p class="muted">The console keeps looking: it appears here as soon as the projections hold it.</p></div>`;
}

function render(r) {
  if (r.name === "campaigns" && r.id) {
    if (state.shownFor !== r.id) Object.assign(state, { shown: PAGE, shownFor: r.id });
    return views.campaign(api, r.id, state.shown);
  }
  const known = { campaigns: views.campaigns, billing: views.billing, onboarding: views.onboarding,
    errors: views.errors, message: views.message };
  const show = known[r.name];
  if (!show) return Promise.reject(new NotFound(`no view called ${r.name}`));
  if (r.name === "message" && !r.id) return Promise.resolve(lookupHelp());
  return show(api, r.id);
}

function lookupHelp() {
  return `<h1>Message lookup</h1><p>Enter a command id or a wamid above to see the message's whole history.</p>`;
}

async function refresh() {
  const r = route();
  let html;
  try {
    html = await render(r);
  } catch (error) {
    html = error instanceof NotFound ? notFound(r, error)
      : `<div class="notice error" data-testid="api-error"><h1>The query API answered with an error</h1><p>${esc(maskText(error.message))}</p></div>`;
  }
  const current = route();
  if (current.name !== r.name || current.id !== r.id) return; // the user moved on meanwhile
  if (html !== state.html) {
    state.html = html;
    state.updates += 1;
    view.innerHTML = html;
    view.dataset.updates = String(state.updates);
  }
  view.dataset.view = r.name;
  for (const a of document.querySelectorAll("nav a[data-nav]")) {
    a.classList.toggle("active", a.dataset.nav === r.name);
  }
}

// How far behind the log the projection is: the projector's own count (/ready's lag).
async function status() {
  try {
    const response = await fetch("/ready", { headers: { accept: "application/json" } });
    const s = await response.json();
    const lag = s.lag ?? 0;
    live.dataset.lag = String(lag);
    live.className = s.failed ? "failed" : s.ready && lag === 0 ? "ok" : "behind";
    const where = s.failed ? `projector failed (${esc(s.failed)})`
      : lag === 0 ? "up to date with the log" : `${count(lag)} records behind the log`;
    live.innerHTML = `<i></i>live · <span data-testid="lag-text">${where}</span> · updated ${clock(new Date())}`;
  } catch {
    live.className = "failed";
    live.innerHTML = `<i></i>query API unreachable; retrying`;
  }
}

async function tick() {
  if (state.busy) return; // a slow answer: skip a beat rather than pile requests up
  if (document.hidden) return; // nobody is looking: spare the store the reads
  state.busy = true;
  try {
    await Promise.all([status(), refresh()]);
  } finally {
    state.busy = false;
  }
}

document.getElementById("lookup").addEventListener("submit", (event) => {
  event.preventDefault();
  const id = document.getElementById("lookup-id").value.trim();
  if (id) location.hash = `#/message/${encodeURIComponent(id)}`;
});

view.addEventListener("click", (event) => {
  if (event.target.closest("[data-action=more]")) {
    state.shown += PAGE;
    tick();
  }
});

view.addEventListener("change", (event) => {
  const picker = event.target.closest("[data-action=scope]");
  if (picker) location.hash = `#/${picker.dataset.view}${picker.value ? "/" + encodeURIComponent(picker.value) : ""}`;
});

window.addEventListener("hashchange", () => {
  state.html = "";
  view.innerHTML = `<p class="muted">Loading…</p>`;
  refresh(); // now, not at the next beat of the poll
});

// For the browser test: the masking rule, to compare with the logs' on a table of numbers.
window.mmbusConsole = { maskPhone, maskText };
tick();
setInterval(tick, POLL_MS);
