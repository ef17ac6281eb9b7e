// {{name}}: {{description}}.
import * as kiln from './kiln.js';

export const validator = kiln.validator({
  describe: kiln.descriptor('{{name}}', '{{description}}')
    .input('table', 'table', 'the table to check')
    .config('min_rows', '1', 'the fewest rows the table may have')
    .config('max_null_fraction', '0', 'the largest share of missing values a column may have'),

  validate(inputs, config) {
    const table = inputs.table('table');
    const minRows = config.int('min_rows');
    const maxNulls = config.number('max_null_fraction');
    const rows = table.numRows;
    const checks = [
      kiln.check('rows', rows >= minRows, { observed: rows, detail: `${rows} rows, at least ${minRows} wanted` }),
    ];
    for (const column of table.columns) {
      const fraction = rows === 0 ? 0 : column.missingCount / rows;
      checks.push(
        kiln.check(`nulls.${column.name}`, fraction <= maxNulls, {
          severity: 'warning',
          observed: fraction,
          detail: `${column.missingCount} of ${rows} values missing`,
        }),
      );
    }
    kiln.tracking.logMetric('rows', rows);
    return checks;
  },
});
