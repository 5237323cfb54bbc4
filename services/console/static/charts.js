// Inline SVG charts, drawn from the API's numbers: no chart library, nothing fetched.
import { count, esc } from "./format.js";

export const SERIES = [
  { name: "delivered", label: "Delivered", color: "#2563eb" },
  { name: "read", label: "Read", color: "#16a34a" },
  { name: "clicked", label: "Clicked", color: "#d97706" },
];

// Running totals, from a zero before the first bucket, so the lines rise as the campaign did.
function cumulative(points, name) {
  let total = 0;
  return [0, ...points.map((p) => (total += p[name]))];
}

function timeLabel(iso, bucketSeconds, later = 0) {
  const t = new Date(Date.parse(iso) + later * 1000).toISOString();
  return bucketSeconds >= 86400 ? t.slice(0, 10) : t.slice(11, 19);
}

// Running totals of deliveries, reads and clicks per time bucket.
export function timelineChart(timeline) {
  const points = timeline.points;
  if (!points.length) {
    return `<p class="muted" data-testid="timeline-empty">No deliveries, reads or clicks yet.</p>`;
  }
  const width = 720, height = 240, left = 48, right = 16, top = 16, bottom = 36;
  const lines = SERIES.map((s) => ({ ...s, values: cumulative(points, s.name) }));
  const max = Math.max(1, ...lines.map((l) => l.values[l.values.length - 1]));
  const span = points.length;
  const x = (i) => left + ((width - left - right) * i) / span;
  const y = (v) => top + (height - top - bottom) * (1 - v / max);
  const paths = lines
    .map((l) => {
      const coords = l.values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`);
      return `<polyline fill="none" stroke="${l.color}" stroke-width="2.5" points="${coords.join(" ")}"><title>${esc(l.label)}: ${count(l.values[l.values.length - 1])}</title></polyline>`;
    })
    .join("");
  const grid = [0, 0.5, 1]
    .map((f) => {
      const v = Math.round(max * f);
      return `<line x1="${left}" x2="${width - right}" y1="${y(v)}" y2="${y(v)}" class="grid"/><text x="${left - 6}" y="${y(v) + 4}" text-anchor="end">${count(v)}</text>`;
    })
    .join("");
  const first = timeLabel(points[0].start, timeline.bucket_seconds);
  // The right edge is the end of the last bucket: each point is a total at its bucket's end.
  const last = timeLabel(points[points.length - 1].start, timeline.bucket_seconds, timeline.bucket_seconds);
  const legend = lines
    .map(
      (l) =>
        `<span class="legend"><i style="background:${l.color}"></i>${esc(l.label)} <b data-series="${l.name}">${count(l.values[l.values.length - 1])}</b></span>`,
    )
    .join("");
  return `<figure class="chart" data-testid="timeline-chart">
    <svg viewBox="0 0 ${width} ${height}" role="img" aria-label="Deliveries, reads and clicks over time">
      ${grid}${paths}
      <text x="${left}" y="${height - 10}">${esc(first)}</text>
      <text x="${width - right}" y="${height - 10}" text-anchor="end">${esc(last)}</text>
    </svg>
    <figcaption>${legend}<span class="muted">running totals, ${count(timeline.bucket_seconds)} s buckets</span></figcaption>
  </figure>`;
}

// One horizontal bar per funnel stage, as a share of the requested messages.
export function funnelBars(stages, names, rates) {
  const base = Math.max(1, stages.requested);
  return `<div class="funnel" data-testid="funnel">${names
    .map((name) => {
      const n = stages[name] || 0;
      const width = Math.min(100, (100 * n) / base);
      const rate = rates[name];
      return `<div class="stage"><span class="name">${esc(name)}</span>
        <span class="bar"><i style="width:${width.toFixed(1)}%"></i></span>
        <b class="n" data-stage="${esc(name)}">${count(n)}</b>
        <span class="rate muted">${rate === undefined ? "" : esc(rate)}</span></div>`;
    })
    .join("")}</div>`;
}
