// The HTML summary of one run, from its JSON-lines records: one self-contained page (no
// scripts, no external files) with the status, params, final metrics, tags and artifacts.

// A run ends ok, failed or cancelled; anything else shows amber.
const STATUS_COLOURS = { ok: '#1a7f37', failed: '#cf222e', cancelled: '#6e7781' };

function escape(value) {
  return String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function formatNumber(v) {
  if (typeof v !== 'number') return String(v);
  if (Number.isInteger(v)) return String(v);
  return String(Number(v.toPrecision(6)));
}

function table(headers, rows) {
  if (rows.length === 0) return '<p class="none">none</p>';
  const head = headers.map((h) => `<th>${escape(h)}</th>`).join('');
  const body = rows.map((cells) => `<tr>${cells.map((c) => `<td>${c}</td>`).join('')}</tr>`).join('\n');
  return `<table><thead><tr>${head}</tr></thead><tbody>\n${body}\n</tbody></table>`;
}

/** A small line chart of a metric's points (by step), when it has two or more. */
function sparkline(points) {
  const finite = points.filter((p) => typeof p.value === 'number');
  if (finite.length < 2) return '';
  const w = 120;
  const h = 24;
  const steps = finite.map((p) => p.step);
  const values = finite.map((p) => p.value);
  const [s0, s1] = [Math.min(...steps), Math.max(...steps)];
  const [v0, v1] = [Math.min(...values), Math.max(...values)];
  const x = (s) => (s1 === s0 ? w / 2 : ((s - s0) / (s1 - s0)) * (w - 2) + 1);
  const y = (v) => (v1 === v0 ? h / 2 : h - 1 - ((v - v0) / (v1 - v0)) * (h - 2));
  const path = finite.map((p) => `${x(p.step).toFixed(1)},${y(p.value).toFixed(1)}`).join(' ');
  return `<svg width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" role="img" aria-label="history"><polyline fill="none" stroke="#0969da" stroke-width="1.5" points="${path}"/></svg>`;
}

/** The last value of each key. */
function latest(records, type) {
  const out = new Map();
  for (const r of records) if (r.type === type) out.set(String(r.key), r.value);
  return out;
}

/**
 * The page for run `runId`.
 * @param {string} runId
 * @param {object[]} records the run's JSON-lines records, in order
 * @param {number} skipped lines of the file that were not this run's records
 */
export function renderHtml(runId, records, skipped = 0) {
  let workflow = '';
  let status = 'running';
  const metrics = new Map();
  const artifacts = [];
  for (const r of records) {
    if (r.type === 'run-started') workflow = String(r.workflow ?? '');
    else if (r.type === 'run-finished') status = String(r.status ?? '');
    else if (r.type === 'artifact') artifacts.push(r);
    else if (r.type === 'metric') {
      const key = String(r.key);
      if (!metrics.has(key)) metrics.set(key, []);
      metrics.get(key).push({ value: r.value, step: Number(r.step) || 0 });
    }
  }

  const byKey = ([a], [b]) => (a < b ? -1 : a > b ? 1 : 0);
  const params = [...latest(records, 'param')].sort(byKey).map(([k, v]) => [escape(k), escape(v)]);
  const tags = [...latest(records, 'tag')].sort(byKey).map(([k, v]) => [escape(k), escape(v)]);
  const metricRows = [...metrics].sort(byKey).map(([key, points]) => {
    // The final value is the one at the highest step (the last logged among equals).
    const last = points.reduce((best, p) => (p.step >= best.step ? p : best));
    return [escape(key), `<b>${escape(formatNumber(last.value))}</b>`, String(last.step), String(points.length), sparkline(points)];
  });
  const artifactRows = artifacts.map((a) => [escape(a.name ?? ''), `<code>${escape(a.digest ?? '')}</code>`]);
  const colour = STATUS_COLOURS[status] ?? '#9a6700';
  const title = workflow ? `${workflow}: run ${runId}` : `Run ${runId}`;
  const note = skipped ? `; ${skipped} other line${skipped === 1 ? '' : 's'} of the file left out` : '';

  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escape(title)}</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; padding: 0 1rem; color: #1f2328; }
h1 { font-size: 1.4rem; margin-bottom: .2rem; } h2 { font-size: 1.1rem; margin-top: 1.6rem; }
.status { display: inline-block; padding: .1rem .6rem; border-radius: 1rem; color: #fff; background: ${colour}; }
table { border-collapse: collapse; width: 100%; } th, td { text-align: left; padding: .3rem .6rem; border-bottom: 1px solid #d0d7de; vertical-align: middle; }
th { background: #f6f8fa; } code { font-size: 12px; word-break: break-all; } .none, footer { color: #656d76; }
</style>
</head>
<body>
<h1>${escape(title)}</h1>
<p>Status: <span class="status">${escape(status)}</span></p>
<h2>Metrics</h2>
${table(['metric', 'final value', 'step', 'points', 'history'], metricRows)}
<h2>Params</h2>
${table(['param', 'value'], params)}
<h2>Tags</h2>
${table(['tag', 'value'], tags)}
<h2>Artifacts</h2>
${table(['artifact', 'digest'], artifactRows)}
<footer><p>${records.length} events of run <code>${escape(runId)}</code>, from ${escape(runId)}.jsonl${escape(note)}. Written by jsonl-report.</p></footer>
</body>
</html>
`;
}
