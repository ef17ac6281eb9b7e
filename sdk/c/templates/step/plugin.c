/* {{name}}: {{description}} */
#include "kiln.h"

void kiln_describe(kiln_descriptor_t *d) {
    kiln_descriptor_init(d, "{{name}}", "{{description}}");
    kiln_descriptor_input(d, "table", KILN_KIND_TABLE, "the table");
    kiln_descriptor_output(d, "table", KILN_KIND_TABLE, "the table with its float64 columns scaled");
    kiln_descriptor_config(d, "factor", "2", "what to multiply by");
}

bool kiln_run(kiln_inputs_t *inputs, const kiln_config_t *config, kiln_outputs_t *outputs, kiln_error_t *err) {
    double factor;
    if (!kiln_config_double(config, "factor", 2.0, &factor, err)) return false;

    /* Take the table out of the inputs (no copy): it is ours now, to change and output. */
    kiln_table_t table;
    if (!kiln_input_take_table(inputs, "table", &table, err)) return false;

    size_t scaled = 0;
    for (size_t i = 0; i < table.columns.len; i++) {
        kiln_column_t *col = &table.columns.ptr[i];
        if (col->data.tag != KILN_COL_FLOAT64) continue;
        for (size_t r = 0; r < col->data.val.float64.len; r++) col->data.val.float64.ptr[r] *= factor;
        scaled++;
    }
    kiln_log_info("scaled %zu columns by %g", scaled, factor);
    kiln_log_metric("factor", factor, 0);

    kiln_output_table(outputs, "table", &table);
    return true;
}
