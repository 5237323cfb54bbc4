// The console's views: each reads the query API and returns the HTML of the page body.
import { funnelBars, timelineChart } from "./charts.js";
import { count, esc, link, maskPhone, percent, text, when } from "./format.js";

export const STAGES = ["requested", "accepted", "sent", "delivered", "read", "clicked"];
export const OTHER = ["failed", "suppressed", "rejected", "indeterminate", "fell_back"];
const q = encodeURIComponent;

function table(testid, head, rows, empty = "None.") {
  if (!rows.length) return `<p class="muted" data-testid="${testid}-empty">${esc(empty)}</p>`;
  const th = head.map((h) => `<th>${esc(h)}</th>`).join("");
  return `<table data-testid="${testid}"><thead><tr>${th}</tr></thead><tbody>${rows.join("")}</tbody></table>`;
}

function row(cells, attrs = "") {
  return `<tr ${attrs}>${cells.map((c) => `<td>${c}</td>`).join("")}</tr>`;
}

function badge(value) {
  return `<span class="badge ${esc(value)}">${esc(value)}</span>`;
}

function scopePicker(view, campaigns, current) {
  const options = [`<option value="">All campaigns</option>`]
    .concat(
      campaigns.map(
        (c) =>
          `<option value="${esc(c.campaign_id)}" ${c.campaign_id === current ? "selected" : ""}>${esc(c.campaign_id)}</option>`,
      ),
    )
    .join("");
  return `<label class="scope">Campaign <select data-action="scope" data-view="${view}">${options}</select></label>`;
}

export async function campaigns(api) {
  const { items } = await api("/v1/campaigns");
  const rows = items.map((c) =>
    row(
      [
        link("campaigns", c.campaign_id),
        esc(c.first_day === c.last_day ? c.first_day : `${c.first_day} – ${c.last_day}`),
        ...["requested", "accepted", "delivered", "read", "clicked", "failed"].map((s) => count(c.funnel[s])),
        percent(c.rates.delivered),
        percent(c.rates.read),
        percent(c.rates.clicked),
        count(c.billable),
      ],
      `data-campaign="${esc(c.campaign_id)}"`,
    ),
  );
  const head = ["Campaign", "Requested on", "Requested", "Accepted", "Delivered", "Read", "Clicked",
    "Failed", "Delivery rate", "Read rate", "Click rate", "Billable"];
  return `<h1>Campaigns</h1>${table("campaigns", head, rows, "No campaign has messages yet.")}`;
}

function routeTable(billing) {
  const categories = [...new Set(billing.routes.flatMap((r) => Object.keys(r.billable_by_category)))].sort();
  const rows = billing.routes.map((r) =>
    row(
      [
        `<b>${esc(r.api)}</b> <span class="muted">${esc(r.route)}</span>`,
        ...["requested", "accepted", "sent", "delivered", "read", "failed", "fell_back"].map((s) => count(r[s])),
        ...categories.map((c) => count(r.billable_by_category[c])),
        `<b>${count(r.billable)}</b>`,
      ],
      `data-route="${esc(r.route)}"`,
    ),
  );
  const head = ["Route", "Requested", "Accepted", "Sent", "Delivered", "Read", "Failed", "Fell back",
    ...categories.map((c) => `Billable: ${c}`), "Billable"];
  const totals = Object.entries(billing.billable_by_category)
    .map(([c, n]) => `<span class="chip" data-category="${esc(c)}">${esc(c)} <b>${count(n)}</b></span>`)
    .join("");
  return `${table("billing", head, rows, "No messages.")}
    <p class="chips" data-testid="billable-by-category">Billable by pricing category: ${totals || "none"}
    <span class="chip warn">fell back <b data-testid="fell-back-count">${count(billing.fell_back)}</b></span></p>`;
}

function messageRows(items) {
  return items.map((m) =>
    row(
      [
        link("message", m.key, m.command_id || m.key),
        text(m.wamid),
        esc(m.recipient ? maskPhone(m.recipient) : "–"),
        text(m.template_name),
        text(m.endpoint),
        badge(m.state),
        text(m.pricing && m.pricing.category),
        m.fell_back ? badge("fell back") : "",
      ],
      `data-message="${esc(m.key)}"`,
    ),
  );
}
const MESSAGE_HEAD = ["Command id", "wamid", "Recipient", "Template", "Route", "State", "Pricing", ""];

export async function campaign(api, id, shown) {
  const [f, timeline, billing, page] = await Promise.all([
    api(`/v1/campaigns/${q(id)}/funnel`),
    api(`/v1/campaigns/${q(id)}/timeline`),
    api(`/v1/billing?campaign_id=${q(id)}`),
    api(`/v1/messages?campaign_id=${q(id)}&limit=${shown}`),
  ]);
  const rates = {
    accepted: percent(f.rates.accepted),
    delivered: percent(f.rates.delivered),
    read: percent(f.rates.read),
    clicked: percent(f.rates.clicked),
  };
  const other = OTHER.map(
    (name) =>
      `<span class="chip ${f.funnel[name] ? "warn" : ""}">${esc(name.replace("_", " "))} <b data-stage="${name}">${count(f.funnel[name])}</b></span>`,
  ).join("");
  const more = page.next
    ? `<button data-action="more">Show ${count(shown)} more</button>`
    : `<span class="muted">all ${count(page.items.length)} shown</span>`;
  return `<h1>Campaign <span data-testid="campaign-id">${esc(id)}</span></h1>
    <section class="grid2">
      <div class="card"><h2>Funnel</h2>${funnelBars(f.funnel, STAGES, rates)}
        <p class="chips">${other}</p>
        <p class="muted">Failure rate ${percent(f.rates.failed)}. Rates: each stage of the one before; clicks of delivered.</p></div>
      <div class="card"><h2>Over time</h2>${timelineChart(timeline)}</div>
    </section>
    <section class="card"><h2>Routes and billing</h2>${routeTable(billing)}
      <p><a href="#/billing/${q(id)}">Billing and fell-back messages</a> ·
      <a href="#/errors/${q(id)}">Errors</a></p></section>
    <section class="card"><h2>Messages</h2>
      ${table("messages", MESSAGE_HEAD, messageRows(page.items), "No messages.")}<p>${more}</p></section>`;
}

export async function billing(api, id) {
  const scope = id ? `campaign_id=${q(id)}` : "";
  const [list, report, fell] = await Promise.all([
    api("/v1/campaigns"),
    api(`/v1/billing?${scope}`),
    api(`/v1/billing/fell-back?${scope}&limit=200`),
  ]);
  return `<h1>Routes and billing</h1>${scopePicker("billing", list.items, id)}
    <section class="card"><h2>MM API vs Cloud API</h2>${routeTable(report)}</section>
    <section class="card"><h2>Fell back</h2>
      <p class="muted">Sent to /marketing_messages but priced <code>marketing</code>: Meta delivered them
      through the Cloud API (the WABA is not onboarded to the MM API).</p>
      ${table("fell-back", MESSAGE_HEAD, messageRows(fell.items), "No message fell back.")}</section>`;
}

export async function onboarding(api) {
  const o = await api("/v1/onboarding");
  const portfolios = o.portfolios.map((p) =>
    row([esc(p.business_id), when(p.terms_signed_at), text(p.signed_via_waba), text(p.because),
      esc(p.wabas.join(", ") || "–")], `data-business="${esc(p.business_id)}"`),
  );
  const wabas = o.wabas.map((w) =>
    row([esc(w.waba_id), badge(w.status), text(w.meta_status), when(w.since), esc(w.via), text(w.because),
      text(w.business_id), esc(w.phone_numbers.join(", ") || "–")], `data-waba="${esc(w.waba_id)}"`),
  );
  const numbers = o.numbers.map((n) =>
    row([esc(n.phone_number_id), esc(n.waba_id), badge(n.status), when(n.since), text(n.because),
      when(n.first_seen)], `data-number="${esc(n.phone_number_id)}"`),
  );
  return `<h1>Onboarding</h1>
    <section class="card"><h2>Business portfolios</h2>${table("portfolios",
      ["Business", "MM API terms signed", "Signed via WABA", "Because (event)", "WABAs"], portfolios, "No portfolio seen.")}</section>
    <section class="card"><h2>WABAs</h2>${table("wabas",
      ["WABA", "Status", "Meta says", "Since", "Via", "Because (event)", "Business", "Numbers"], wabas, "No WABA seen.")}</section>
    <section class="card"><h2>Phone numbers</h2><p class="muted">A number has its WABA's status.</p>${table("numbers",
      ["Number id", "WABA", "Status", "Since", "Because (event)", "First seen"], numbers, "No number seen.")}</section>`;
}

function examples(keys) {
  return keys.map((k) => link("message", k, k.slice(0, 13) + "…")).join(" ");
}

export async function errors(api, id) {
  const scope = id ? `campaign_id=${q(id)}` : "";
  const [list, e] = await Promise.all([api("/v1/campaigns"), api(`/v1/errors?${scope}`)]);
  const failures = e.failures.map((f) =>
    row([f.code === null ? "–" : esc(f.code), text(f.title), count(f.count), examples(f.examples)],
      `data-code="${esc(f.code ?? "")}"`));
  const suppressed = e.suppressions.map((s) => row([text(s.rule), count(s.count), examples(s.examples)]));
  const rejected = e.rejections.map((r) => row([text(r.reason), count(r.count), examples(r.examples)]));
  const unclear = e.indeterminate.map((u) =>
    row([link("message", u.key, u.command_id || u.key), text(u.campaign_id), when(u.since), badge(u.state),
      esc(u.resolution.replace("_", " ")), u.reconciled ? badge("reconciled") : badge("open")]));
  return `<h1>Errors</h1>${scopePicker("errors", list.items, id)}
    <section class="card"><h2>Failures by Meta's code</h2>${table("failures", ["Code", "Meta's title", "Messages", "Examples"], failures, "No failures.")}</section>
    <section class="grid2"><div class="card"><h2>Suppressed, by rule</h2>${table("suppressions", ["Rule", "Messages", "Examples"], suppressed, "None suppressed.")}</div>
      <div class="card"><h2>Rejected, by reason</h2>${table("rejections", ["Reason", "Messages", "Examples"], rejected, "None rejected.")}</div></section>
    <section class="card"><h2>Indeterminate sends</h2>
      <p class="muted">The sender could not tell whether Meta took these (it is never resent blindly); a later status webhook settles it.</p>
      ${table("indeterminate", ["Message", "Campaign", "Since", "State", "Settled by", ""], unclear, "No indeterminate send.")}</section>`;
}

export async function message(api, id) {
  const m = await api(`/v1/messages/${q(id)}`);
  const facts = [
    ["State", badge(m.state)],
    ["Command id", text(m.command_id)],
    ["wamid", text(m.wamid)],
    ["Recipient", esc(m.recipient ? maskPhone(m.recipient) : "–")],
    ["Campaign", m.campaign_id ? link("campaigns", m.campaign_id) : "–"],
    ["Template", `${text(m.template_name)} (${text(m.template_language)})`],
    ["Route", text(m.endpoint)],
    ["Outcome", `${text(m.outcome)} ${m.outcome_detail ? `· ${text(m.outcome_detail)}` : ""}`],
    ["Pricing", m.pricing ? `${text(m.pricing.category)} · billable ${esc(m.pricing.billable)}` : "–"],
    ["Fell back", m.fell_back ? badge("fell back") : "no"],
    ["Error", m.error_code ? `${esc(m.error_code)}: ${text(m.error_title)}` : "–"],
    ["WABA / number", `${text(m.waba_id)} / ${text(m.phone_number_id)}`],
  ];
  const history = m.history.map((s) =>
    row([when(s.time), `<b>${text(s.what)}</b>`, esc(s.type), `<code>${esc(s.id)}</code>`], `data-step="${esc(s.what)}"`));
  return `<h1>Message <span data-testid="message-id">${esc(m.command_id || m.key)}</span></h1>
    <section class="card"><dl class="facts">${facts.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${v}</dd>`).join("")}</dl></section>
    <section class="card"><h2>History</h2>${table("history", ["Time", "What", "Event", "Event id"], history)}</section>`;
}
