/* {{name}}: {{description}} */
#include <string.h>

#include "kiln.h"

/* The loaded model: here, one number read from the artifact. */
struct kiln_model {
    double value;
};

void kiln_describe(kiln_descriptor_t *d) {
    kiln_descriptor_init(d, "{{name}}", "{{description}}");
}

bool kiln_model_load(const uint8_t *artifact, size_t len, const kiln_config_t *config, kiln_model_t **model,
                     kiln_error_t *err) {
    (void)config;
    /* The artifact is borrowed: copy what you keep. */
    char *text = kiln_strndup((const char *)artifact, len);
    char *end;
    double value = strtod(text, &end);
    bool ok = end != text && strspn(end, " \t\r\n") == strlen(end);
    free(text);
    if (!ok) return kiln_error_invalid_input(err, "the artifact is not a number");
    *model = kiln_alloc(sizeof **model);
    (*model)->value = value;
    return true;
}

void kiln_model_metadata(kiln_model_t *model, kiln_metadata_t *md) {
    kiln_metadata_input(md, "rows", KILN_KIND_TABLE, "any table");
    kiln_metadata_output(md, "prediction", KILN_KIND_TENSOR, "one value per row");
    kiln_metadata_property(md, "value", "%g", model->value);
}

bool kiln_model_predict(kiln_model_t *model, kiln_inputs_t *inputs, kiln_outputs_t *outputs, kiln_error_t *err) {
    const kiln_table_t *rows;
    if (!kiln_input_table(inputs, "rows", &rows, err)) return false;
    size_t n = kiln_table_rows(rows);
    double *values = kiln_alloc_array(n, sizeof(double));
    for (size_t i = 0; i < n; i++) values[i] = model->value;
    uint64_t shape[1] = {n};
    kiln_tensor_t prediction;
    kiln_tensor_from_f64(&prediction, shape, 1, values);
    free(values);
    kiln_output_tensor(outputs, "prediction", &prediction);
    return true;
}

void kiln_model_drop(kiln_model_t *model) { free(model); }
