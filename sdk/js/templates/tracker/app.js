// {{name}}: {{description}}.
import * as kiln from './kiln.js';

export const tracker = kiln.tracker({
  describe: kiln.descriptor('{{name}}', '{{description}}')
    .config('prefix', '', 'log only the metrics whose key starts with this'),

  onEvents(runId, events, config) {
    const prefix = config.get('prefix');
    for (const event of events) {
      if (event.type === 'metric' && event.key.startsWith(prefix)) {
        if (!Number.isFinite(event.value)) {
          throw kiln.invalidInput(`metric \`${event.key}\` is not finite`);
        }
        kiln.log.info(`${runId}: ${event.key} = ${event.value} at step ${event.step}`);
      } else if (event.type === 'run-finished') {
        kiln.log.info(`${runId}: ${event.status}`);
      }
    }
  },
});
