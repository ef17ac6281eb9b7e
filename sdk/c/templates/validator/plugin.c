/* {{name}}: {{description}} */
#include "kiln.h"

void kiln_describe(kiln_descriptor_t *d) {
    kiln_descriptor_init(d, "{{name}}", "{{description}}");
    kiln_descriptor_input(d, "table", KILN_KIND_TABLE, "the table to check");
    kiln_descriptor_config(d, "min-rows", "1", "the fewest rows the table may have");
}

bool kiln_validate(kiln_inputs_t *inputs, const kiln_config_t *config, kiln_checks_t *checks, kiln_error_t *err) {
    int64_t min_rows;
    if (!kiln_config_int_range(config, "min-rows", 1, 0, INT64_MAX, &min_rows, err)) return false;
    const kiln_table_t *table;
    if (!kiln_input_table(inputs, "table", &table, err)) return false;

    size_t rows = kiln_table_rows(table);
    kiln_check_observed(checks, "rows", rows >= (uint64_t)min_rows, KILN_SEVERITY_ERROR, (double)rows,
                        "%zu rows (at least %lld wanted)", rows, (long long)min_rows);

    /* One warning per column with missing values. */
    for (size_t i = 0; i < table->columns.len; i++) {
        const kiln_column_t *col = &table->columns.ptr[i];
        size_t missing = kiln_column_missing(col);
        char *name = kiln_format("missing:%.*s", KILN_STR(col->name));
        kiln_check_observed(checks, name, missing == 0, KILN_SEVERITY_WARNING, (double)missing,
                            "column `%.*s` has %zu missing values", KILN_STR(col->name), missing);
        free(name);
    }
    return true;
}
