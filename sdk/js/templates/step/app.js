// {{name}}: {{description}}.
import * as kiln from './kiln.js';

export const step = kiln.step({
  describe: kiln.descriptor('{{name}}', '{{description}}')
    .input('x', 'tensor', 'the tensor to scale')
    .output('y', 'tensor', 'x times the factor')
    .config('factor', '2', 'the multiplier'),

  run(inputs, config) {
    const factor = config.number('factor');
    const x = inputs.tensor('x');
    kiln.tracking.logMetric('factor', factor);
    return { y: x.map((v) => Number(v) * factor, 'float64') };
  },
});
