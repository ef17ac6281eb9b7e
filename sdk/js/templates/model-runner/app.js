// {{name}}: {{description}}.
//
// The artifact is JSON: {"features": ["a", "b"], "weights": [0.5, -1], "bias": 2}; a
// prediction is bias + the weighted sum of the features, one per row.
import * as kiln from './kiln.js';

export const modelRunner = kiln.modelRunner({
  describe: kiln.descriptor('{{name}}', '{{description}}'),

  load(artifact, _config) {
    let model;
    try {
      model = JSON.parse(new TextDecoder().decode(artifact));
    } catch (e) {
      throw kiln.invalidInput(`the artifact is not JSON: ${e.message}`);
    }
    const { features, weights, bias = 0 } = model ?? {};
    if (!Array.isArray(features) || !Array.isArray(weights) || features.length !== weights.length) {
      throw kiln.invalidInput('the artifact needs `features` and `weights`, lists of the same length');
    }
    return {
      metadata: kiln.metadata()
        .input('features', 'table', `a table with the columns ${features.join(', ')}`)
        .output('prediction', 'tensor', 'one prediction per row')
        .property('features', features.join(',')),

      predict(inputs) {
        const x = inputs.table('features').toTensor(features);
        const [rows, cols] = x.shape;
        const y = new Float64Array(rows);
        x.rows().forEach((row, r) => {
          let sum = Number(bias);
          for (let j = 0; j < cols; j++) sum += row[j] * weights[j];
          y[r] = sum;
        });
        return { prediction: new kiln.Tensor(y, [rows]) };
      },
    };
  },
});
