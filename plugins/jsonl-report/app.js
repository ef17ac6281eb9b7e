// jsonl-report: a tracker that appends each event of a run to `<dir>/<run-id>.jsonl`, one
// JSON object a line, and when the run finishes writes `<dir>/<run-id>.html`, a
// self-contained summary built from that file (params, final metrics, tags, artifacts,
// status). Each batch may reach a fresh instance, so everything it knows is in the file.
//
//   trackers:
//     report:
//       uses: jsonl-report@^0.1
//       with: { dir: out }
//       grants: { dirs: ["out:rw"] }
//
// Lines, by type (`run` is the run id in every one):
//   {"run": ..., "type": "run-started", "workflow": "diabetes-progression"}
//   {"run": ..., "type": "param", "key": "split.seed", "value": "42"}
//   {"run": ..., "type": "metric", "key": "evaluate.test.r2", "value": 0.45, "step": 0, "timestamp_ms": 1700000000000}
//   {"run": ..., "type": "tag", "key": "train.status", "value": "ok"}
//   {"run": ..., "type": "artifact", "name": "train.model", "digest": "sha256:..."}
//   {"run": ..., "type": "run-finished", "status": "ok"}
// A metric whose value is not finite has it as text ("NaN", "Infinity", "-Infinity").
import * as kiln from './kiln.js';
import { renderHtml } from './report.js';

export const tracker = kiln.tracker({
  describe: kiln.descriptor(
    'jsonl-report',
    'Writes a run\'s events as JSON lines, and an HTML summary when the run ends, into a granted directory',
  )
    .requiredConfig('dir', 'the directory to write <run-id>.jsonl and <run-id>.html in; grant it read-write (DIR:rw)')
    .config('html', 'true', 'whether to write the HTML summary when the run finishes'),

  onEvents(runId, events, config) {
    const dir = config.require('dir').trim().replace(/(.)\/+$/, '$1');
    if (dir === '') throw kiln.invalidConfig('config key `dir` is empty');
    const html = config.bool('html');
    const stem = `${dir === '/' ? '' : dir}/${fileStem(runId)}`;
    if (events.length === 0) return;

    kiln.makeDir(dir);
    kiln.appendText(`${stem}.jsonl`, events.map((e) => `${JSON.stringify(line(runId, e))}\n`).join(''));

    if (html && events.some((e) => e.type === 'run-finished')) {
      const { records, skipped } = parseLines(kiln.readText(`${stem}.jsonl`), runId);
      kiln.writeText(`${stem}.html`, renderHtml(runId, records, skipped));
      kiln.log.info(`wrote ${stem}.jsonl and ${stem}.html (${records.length} events)`);
    }
  },
});

/** The run id as a file name: anything but letters, digits, `.`, `_` and `-` becomes `_`. */
function fileStem(runId) {
  const stem = runId.replace(/[^A-Za-z0-9._-]/g, '_');
  if (stem === '' || /^\.+$/.test(stem)) throw kiln.invalidInput(`run id \`${runId}\` cannot name a file`);
  return stem;
}

/** One event as its JSON line. */
function line(run, e) {
  switch (e.type) {
    case 'run-started':
      return { run, type: e.type, workflow: e.workflow };
    case 'param':
    case 'tag':
      return { run, type: e.type, key: e.key, value: e.value };
    case 'metric':
      return {
        run,
        type: e.type,
        key: e.key,
        value: Number.isFinite(e.value) ? e.value : String(e.value),
        step: e.step,
        timestamp_ms: e.timestampMs,
      };
    case 'artifact':
      return { run, type: e.type, name: e.name, digest: e.digest };
    case 'run-finished':
      return { run, type: e.type, status: e.status };
    default:
      return { run, type: e.type, value: e.value };
  }
}

/** This run's records in the file; lines that are not JSON objects are counted, not fatal. */
function parseLines(text, runId) {
  const records = [];
  let skipped = 0;
  for (const l of text.split('\n')) {
    if (l.trim() === '') continue;
    try {
      const r = JSON.parse(l);
      if (r && typeof r === 'object' && !Array.isArray(r) && r.run === runId) records.push(r);
      else skipped++;
    } catch {
      skipped++;
    }
  }
  return { records, skipped };
}
