/*
 * kiln.h: the C SDK for Kiln plugins (contract kiln:plugin@0.1.0).
 *
 * A Kiln plugin is a WebAssembly component implementing one role: a step, a validator,
 * a model runner or a tracker. This SDK sits on top of the bindings `wit-bindgen c`
 * generates for that role's world, and gives plugin authors short names, typed access to
 * inputs and config, builders for outputs, descriptors and checks, JSON helpers and the
 * host calls (log, tracking).
 *
 * Pick the role with one of these macros (`kiln plugin build` passes it from kiln.toml):
 *
 *     -DKILN_WORLD_STEP           step_plugin.h          you write kiln_describe + kiln_run
 *     -DKILN_WORLD_VALIDATOR      validator_plugin.h     you write kiln_describe + kiln_validate
 *     -DKILN_WORLD_MODEL_RUNNER   model_runner_plugin.h  you write kiln_describe + kiln_model_*
 *     -DKILN_WORLD_TRACKER        tracker_plugin.h       you write kiln_describe + kiln_on_events
 *
 * (or the world's full name, -DKILN_WORLD_STEP_PLUGIN...). Without one, the role is that
 * of the generated header found on the include path.
 *
 * OWNERSHIP, in one paragraph. Everything the SDK hands your callbacks (inputs, config,
 * the model artifact, events, the run id) is BORROWED: it stays valid until your callback
 * returns, and the SDK frees it then. `kiln_input_take_*` moves a value out of the inputs;
 * you then own it. Everything you give the SDK is either COPIED (C strings, arrays passed
 * as `const`) or MOVED (a `kiln_table_t *`, `kiln_column_t *`, `kiln_tensor_t *`,
 * `kiln_value_t *` or `kiln_buf_t *` argument of an `_output_`, `_push`, `_set` or `_adopt`
 * function): after a move the source is zeroed, so freeing it again is harmless. Values
 * you build and do not hand over, free with the matching `kiln_*_free`. Functions that
 * return a `char *` or a `kiln_json_t *` return memory you free (`free`, `kiln_json_free`).
 * Outputs, checks, descriptors and errors are freed by the generated bindings after the
 * host has read them. Allocation failure traps, as in the Rust SDK.
 *
 * ERRORS. Functions that can fail take a `kiln_error_t *err` last and return `bool`:
 * `false` means `err` is set, so you can write `if (!kiln_input_table(...)) return false;`.
 * To fail yourself: `return kiln_error_invalid_input(err, "column `%s` is empty", name);`.
 */
#ifndef KILN_H
#define KILN_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/* ------------------------------------------------------------------------------------ */
/* The role, and the generated bindings                                                 */
/* ------------------------------------------------------------------------------------ */

/* The world's full name works too: -DKILN_WORLD_STEP_PLUGIN and so on. */
#if defined(KILN_WORLD_STEP_PLUGIN) && !defined(KILN_WORLD_STEP)
#  define KILN_WORLD_STEP 1
#elif defined(KILN_WORLD_VALIDATOR_PLUGIN) && !defined(KILN_WORLD_VALIDATOR)
#  define KILN_WORLD_VALIDATOR 1
#elif defined(KILN_WORLD_MODEL_RUNNER_PLUGIN) && !defined(KILN_WORLD_MODEL_RUNNER)
#  define KILN_WORLD_MODEL_RUNNER 1
#elif defined(KILN_WORLD_TRACKER_PLUGIN) && !defined(KILN_WORLD_TRACKER)
#  define KILN_WORLD_TRACKER 1
#endif

#if !defined(KILN_WORLD_STEP) && !defined(KILN_WORLD_VALIDATOR) && \
    !defined(KILN_WORLD_MODEL_RUNNER) && !defined(KILN_WORLD_TRACKER)
#  if defined(__has_include)
#    if __has_include("step_plugin.h")
#      define KILN_WORLD_STEP 1
#    elif __has_include("validator_plugin.h")
#      define KILN_WORLD_VALIDATOR 1
#    elif __has_include("model_runner_plugin.h")
#      define KILN_WORLD_MODEL_RUNNER 1
#    elif __has_include("tracker_plugin.h")
#      define KILN_WORLD_TRACKER 1
#    endif
#  endif
#endif

#if defined(KILN_WORLD_STEP)
#  include "step_plugin.h"
#  define KILN_W_(x) step_plugin_##x
#  define KILN_HAS_TRACKING 1
#elif defined(KILN_WORLD_VALIDATOR)
#  include "validator_plugin.h"
#  define KILN_W_(x) validator_plugin_##x
#  define KILN_HAS_TRACKING 1
#elif defined(KILN_WORLD_MODEL_RUNNER)
#  include "model_runner_plugin.h"
#  define KILN_W_(x) model_runner_plugin_##x
#elif defined(KILN_WORLD_TRACKER)
#  include "tracker_plugin.h"
#  define KILN_W_(x) tracker_plugin_##x
#else
#  error "kiln.h: define one of KILN_WORLD_STEP, KILN_WORLD_VALIDATOR, KILN_WORLD_MODEL_RUNNER, KILN_WORLD_TRACKER (or generate the bindings with `wit-bindgen c` first)"
#endif

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#  define KILN_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#  define KILN_PRINTF(f, a)
#endif

/* ------------------------------------------------------------------------------------ */
/* The contract's types, by short names                                                 */
/* ------------------------------------------------------------------------------------ */

/* A component-model string: UTF-8, `ptr` + `len`, NOT nul-terminated. Print one with
 * printf("%.*s", KILN_STR(s)); compare with kiln_str_eq; copy with kiln_str_cstr. */
typedef KILN_W_(string_t) kiln_string_t;
#define KILN_STR(s) (int)(s).len, (const char *)(s).ptr

typedef KILN_W_(list_u8_t) kiln_list_u8_t;
typedef KILN_W_(list_u64_t) kiln_list_u64_t;
typedef KILN_W_(list_f64_t) kiln_list_f64_t;
typedef KILN_W_(list_s64_t) kiln_list_s64_t;
typedef KILN_W_(list_bool_t) kiln_list_bool_t;
typedef KILN_W_(list_string_t) kiln_list_string_t;

typedef kiln_plugin_types_dtype_t kiln_dtype_t;
#define KILN_FLOAT32 KILN_PLUGIN_TYPES_DTYPE_FLOAT32
#define KILN_FLOAT64 KILN_PLUGIN_TYPES_DTYPE_FLOAT64
#define KILN_INT32 KILN_PLUGIN_TYPES_DTYPE_INT32
#define KILN_INT64 KILN_PLUGIN_TYPES_DTYPE_INT64
#define KILN_UINT8 KILN_PLUGIN_TYPES_DTYPE_UINT8
#define KILN_BOOLEAN KILN_PLUGIN_TYPES_DTYPE_BOOLEAN

/* A dense row-major tensor: dtype, shape (shape.ptr[0..shape.len]), little-endian data. */
typedef kiln_plugin_types_tensor_t kiln_tensor_t;

/* A column: name, data (a tagged union: data.tag is one of the KILN_COL_* values and
 * data.val.float64 / .int64 / .text / .boolean the list), and an optional validity mask. */
typedef kiln_plugin_types_column_t kiln_column_t;
#define KILN_COL_FLOAT64 KILN_PLUGIN_TYPES_COLUMN_DATA_FLOAT64
#define KILN_COL_INT64 KILN_PLUGIN_TYPES_COLUMN_DATA_INT64
#define KILN_COL_TEXT KILN_PLUGIN_TYPES_COLUMN_DATA_TEXT
#define KILN_COL_BOOLEAN KILN_PLUGIN_TYPES_COLUMN_DATA_BOOLEAN

/* A table: columns.ptr[0..columns.len]. */
typedef kiln_plugin_types_table_t kiln_table_t;

/* Any value: v.tag is one of KILN_VALUE_*, v.val.tensor / .table / .scalar / .text /
 * .bytes / .json the payload. */
typedef kiln_plugin_types_value_t kiln_value_t;
#define KILN_VALUE_TENSOR KILN_PLUGIN_TYPES_VALUE_TENSOR
#define KILN_VALUE_TABLE KILN_PLUGIN_TYPES_VALUE_TABLE
#define KILN_VALUE_SCALAR KILN_PLUGIN_TYPES_VALUE_SCALAR
#define KILN_VALUE_TEXT KILN_PLUGIN_TYPES_VALUE_TEXT
#define KILN_VALUE_BYTES KILN_PLUGIN_TYPES_VALUE_BYTES
#define KILN_VALUE_JSON KILN_PLUGIN_TYPES_VALUE_JSON

typedef kiln_plugin_types_named_value_t kiln_named_value_t;

/* The kind a port declares. */
typedef kiln_plugin_types_value_kind_t kiln_kind_t;
#define KILN_KIND_TENSOR KILN_PLUGIN_TYPES_VALUE_KIND_TENSOR
#define KILN_KIND_TABLE KILN_PLUGIN_TYPES_VALUE_KIND_TABLE
#define KILN_KIND_SCALAR KILN_PLUGIN_TYPES_VALUE_KIND_SCALAR
#define KILN_KIND_TEXT KILN_PLUGIN_TYPES_VALUE_KIND_TEXT
#define KILN_KIND_BYTES KILN_PLUGIN_TYPES_VALUE_KIND_BYTES
#define KILN_KIND_JSON KILN_PLUGIN_TYPES_VALUE_KIND_JSON
#define KILN_KIND_ANY KILN_PLUGIN_TYPES_VALUE_KIND_ANY

typedef kiln_plugin_types_descriptor_t kiln_descriptor_t;
typedef kiln_plugin_types_model_metadata_t kiln_metadata_t;

typedef kiln_plugin_types_error_t kiln_error_t;
typedef kiln_plugin_types_error_kind_t kiln_error_kind_t;
#define KILN_INVALID_INPUT KILN_PLUGIN_TYPES_ERROR_KIND_INVALID_INPUT
#define KILN_INVALID_CONFIG KILN_PLUGIN_TYPES_ERROR_KIND_INVALID_CONFIG
#define KILN_UNSUPPORTED KILN_PLUGIN_TYPES_ERROR_KIND_UNSUPPORTED
#define KILN_INTERNAL KILN_PLUGIN_TYPES_ERROR_KIND_INTERNAL

typedef kiln_plugin_types_check_t kiln_check_t;
typedef kiln_plugin_types_severity_t kiln_severity_t;
#define KILN_SEVERITY_INFO KILN_PLUGIN_TYPES_SEVERITY_INFO
#define KILN_SEVERITY_WARNING KILN_PLUGIN_TYPES_SEVERITY_WARNING
#define KILN_SEVERITY_ERROR KILN_PLUGIN_TYPES_SEVERITY_ERROR

/* A tracker's event: e.tag is one of KILN_EVENT_*; e.val.run_started / .param (f0 = key,
 * f1 = value) / .metric (key, value, step, timestamp_ms) / .tag / .artifact /
 * .run_finished the payload. */
typedef kiln_plugin_types_event_t kiln_event_t;
typedef kiln_plugin_types_metric_t kiln_metric_t;
#define KILN_EVENT_RUN_STARTED KILN_PLUGIN_TYPES_EVENT_RUN_STARTED
#define KILN_EVENT_PARAM KILN_PLUGIN_TYPES_EVENT_PARAM
#define KILN_EVENT_METRIC KILN_PLUGIN_TYPES_EVENT_METRIC
#define KILN_EVENT_TAG KILN_PLUGIN_TYPES_EVENT_TAG
#define KILN_EVENT_ARTIFACT KILN_PLUGIN_TYPES_EVENT_ARTIFACT
#define KILN_EVENT_RUN_FINISHED KILN_PLUGIN_TYPES_EVENT_RUN_FINISHED

/* The named inputs a plugin was called with (borrowed). */
typedef struct kiln_inputs {
    kiln_named_value_t *ptr;
    size_t len;
} kiln_inputs_t;

/* The named outputs a plugin returns; add to them with kiln_output_*. */
typedef struct kiln_outputs {
    kiln_named_value_t *ptr;
    size_t len;
} kiln_outputs_t;

/* A validator's report; add to it with kiln_check / kiln_check_observed. */
typedef struct kiln_checks {
    kiln_check_t *ptr;
    size_t len;
} kiln_checks_t;

/* The config, as nul-terminated key/value pairs in the order given (borrowed). */
typedef struct kiln_config {
    size_t len;
    const char **keys;
    const char **values;
} kiln_config_t;

/* A list of C strings (each malloc'd), e.g. a comma-separated config value split up. */
typedef struct kiln_strs {
    char **ptr;
    size_t len;
} kiln_strs_t;

/* A growable, nul-terminated text buffer (zero-initialize it: kiln_buf_t b = {0};). */
typedef struct kiln_buf {
    char *ptr;
    size_t len;
    size_t cap;
} kiln_buf_t;

/* ------------------------------------------------------------------------------------ */
/* What you implement, per role                                                         */
/* ------------------------------------------------------------------------------------ */

/* Every role: describe yourself. `d` is zeroed; start with kiln_descriptor_init. */
void kiln_describe(kiln_descriptor_t *d);

#if defined(KILN_WORLD_STEP)
/* Runs the step. Return true with outputs added, or false with `err` set. */
bool kiln_run(kiln_inputs_t *inputs, const kiln_config_t *config, kiln_outputs_t *outputs,
              kiln_error_t *err);
#endif

#if defined(KILN_WORLD_VALIDATOR)
/* Runs every check. A failed check is a result (kiln_check with passed = false), not an
 * error: return false only when the checks cannot run at all. */
bool kiln_validate(kiln_inputs_t *inputs, const kiln_config_t *config, kiln_checks_t *checks,
                   kiln_error_t *err);
#endif

#if defined(KILN_WORLD_MODEL_RUNNER)
/* Your loaded model: define `struct kiln_model { ... };` in your code. */
typedef struct kiln_model kiln_model_t;
/* Builds a model from its artifact (borrowed: copy what you keep). Set *model to a
 * pointer you allocated; it comes back to kiln_model_drop when the host drops it. */
bool kiln_model_load(const uint8_t *artifact, size_t len, const kiln_config_t *config,
                     kiln_model_t **model, kiln_error_t *err);
/* The model's input/output signature. `md` is zeroed; fill it with kiln_metadata_*. */
void kiln_model_metadata(kiln_model_t *model, kiln_metadata_t *md);
/* Predicts for a batch of inputs. */
bool kiln_model_predict(kiln_model_t *model, kiln_inputs_t *inputs, kiln_outputs_t *outputs,
                        kiln_error_t *err);
/* Frees the model. */
void kiln_model_drop(kiln_model_t *model);
#endif

#if defined(KILN_WORLD_TRACKER)
/* Receives a batch of events of run `run_id` (all borrowed). */
bool kiln_on_events(const char *run_id, const kiln_event_t *events, size_t count,
                    const kiln_config_t *config, kiln_error_t *err);
#endif

/* ------------------------------------------------------------------------------------ */
/* Errors                                                                               */
/* ------------------------------------------------------------------------------------ */

/* Sets `err` (replacing any earlier message) and returns false. */
bool kiln_error_set(kiln_error_t *err, kiln_error_kind_t kind, const char *fmt, ...) KILN_PRINTF(3, 4);
bool kiln_error_vset(kiln_error_t *err, kiln_error_kind_t kind, const char *fmt, va_list ap);
/* The inputs are missing, of the wrong kind, or hold bad data. */
bool kiln_error_invalid_input(kiln_error_t *err, const char *fmt, ...) KILN_PRINTF(2, 3);
/* A config key is missing or holds a bad value. */
bool kiln_error_invalid_config(kiln_error_t *err, const char *fmt, ...) KILN_PRINTF(2, 3);
/* The plugin does not support what was asked. */
bool kiln_error_unsupported(kiln_error_t *err, const char *fmt, ...) KILN_PRINTF(2, 3);
/* Something went wrong inside the plugin. */
bool kiln_error_internal(kiln_error_t *err, const char *fmt, ...) KILN_PRINTF(2, 3);
/* Puts `prefix` (formatted) before the message already in `err`; returns false. */
bool kiln_error_prefix(kiln_error_t *err, const char *fmt, ...) KILN_PRINTF(2, 3);

/* ------------------------------------------------------------------------------------ */
/* Inputs (borrowed views; valid until your callback returns)                           */
/* ------------------------------------------------------------------------------------ */

/* The input called `name`, or NULL when it was not given (for optional inputs). */
const kiln_value_t *kiln_input(const kiln_inputs_t *inputs, const char *name);
/* The kind's name ("table", "scalar"...). */
const char *kiln_value_kind_name(const kiln_value_t *v);

/* Each of these fails with invalid-input when the input is missing or of another kind. */
/* A table, checked (every column as long as the first, masks the right length). */
bool kiln_input_table(const kiln_inputs_t *inputs, const char *name, const kiln_table_t **out,
                      kiln_error_t *err);
/* A tensor, checked (data length matches shape and dtype). */
bool kiln_input_tensor(const kiln_inputs_t *inputs, const char *name, const kiln_tensor_t **out,
                       kiln_error_t *err);
bool kiln_input_scalar(const kiln_inputs_t *inputs, const char *name, double *out, kiln_error_t *err);
/* Text or JSON, as a string view (not nul-terminated: see kiln_str_cstr). */
bool kiln_input_text(const kiln_inputs_t *inputs, const char *name, const kiln_string_t **out,
                     kiln_error_t *err);
bool kiln_input_bytes(const kiln_inputs_t *inputs, const char *name, const uint8_t **data,
                      size_t *len, kiln_error_t *err);

/* Moves a checked table / tensor out of the inputs: you own it (output it, or free it
 * with kiln_table_free / kiln_tensor_free). A second take of the same name fails as missing. */
bool kiln_input_take_table(kiln_inputs_t *inputs, const char *name, kiln_table_t *out,
                           kiln_error_t *err);
bool kiln_input_take_tensor(kiln_inputs_t *inputs, const char *name, kiln_tensor_t *out,
                            kiln_error_t *err);

/* ------------------------------------------------------------------------------------ */
/* Config (keys and values are nul-terminated; the last value of a repeated key wins)   */
/* ------------------------------------------------------------------------------------ */

/* The value of `key`, or NULL when unset. */
const char *kiln_config_get(const kiln_config_t *config, const char *key);
/* The value of `key`, or `dflt` when unset. */
const char *kiln_config_string(const kiln_config_t *config, const char *key, const char *dflt);
/* The value of `key`; unset is an invalid-config error. */
bool kiln_config_require(const kiln_config_t *config, const char *key, const char **out,
                         kiln_error_t *err);
/* Parsed values, `dflt` when unset; a value that does not parse is an invalid-config
 * error naming the key and the value. Surrounding spaces are ignored. */
bool kiln_config_double(const kiln_config_t *config, const char *key, double dflt, double *out,
                        kiln_error_t *err);
bool kiln_config_int(const kiln_config_t *config, const char *key, int64_t dflt, int64_t *out,
                     kiln_error_t *err);
/* As kiln_config_int, and the value must lie in [min, max]. */
bool kiln_config_int_range(const kiln_config_t *config, const char *key, int64_t dflt, int64_t min,
                           int64_t max, int64_t *out, kiln_error_t *err);
/* true/false, yes/no, on/off, 1/0. */
bool kiln_config_bool(const kiln_config_t *config, const char *key, bool dflt, bool *out,
                      kiln_error_t *err);
/* A comma-separated list, trimmed, empty items dropped; empty when unset. Free it with
 * kiln_strs_free. */
kiln_strs_t kiln_config_list(const kiln_config_t *config, const char *key);

/* ------------------------------------------------------------------------------------ */
/* Outputs (moves zero the source; strings and arrays are copied)                       */
/* ------------------------------------------------------------------------------------ */

void kiln_output_table(kiln_outputs_t *outputs, const char *name, kiln_table_t *table);
void kiln_output_tensor(kiln_outputs_t *outputs, const char *name, kiln_tensor_t *tensor);
void kiln_output_scalar(kiln_outputs_t *outputs, const char *name, double value);
void kiln_output_text(kiln_outputs_t *outputs, const char *name, const char *text);
/* A JSON document, as text (not checked). */
void kiln_output_json(kiln_outputs_t *outputs, const char *name, const char *json);
/* A JSON document built in a buffer (moved). */
void kiln_output_json_buf(kiln_outputs_t *outputs, const char *name, kiln_buf_t *json);
void kiln_output_bytes(kiln_outputs_t *outputs, const char *name, const uint8_t *data, size_t len);
void kiln_output_value(kiln_outputs_t *outputs, const char *name, kiln_value_t *value);

/* ------------------------------------------------------------------------------------ */
/* Tables and columns                                                                   */
/* ------------------------------------------------------------------------------------ */

/* The number of rows (that of the first column; 0 with no columns). */
size_t kiln_table_rows(const kiln_table_t *t);
/* Every column as long as the first, masks the right length; else invalid-input. */
bool kiln_table_check(const kiln_table_t *t, kiln_error_t *err);
/* The column called `name`, or NULL. */
const kiln_column_t *kiln_table_column(const kiln_table_t *t, const char *name);
/* Its index, or -1. */
long kiln_table_index(const kiln_table_t *t, const char *name);
/* The column called `name`; absent is an invalid-input error listing the columns. */
bool kiln_table_require(const kiln_table_t *t, const char *name, const kiln_column_t **out,
                        kiln_error_t *err);
/* The column names, comma-separated (malloc'd), for messages. */
char *kiln_table_names(const kiln_table_t *t);

/* Building: a zeroed kiln_table_t is an empty table. */
void kiln_table_push(kiln_table_t *t, kiln_column_t *column);              /* moves */
void kiln_table_set(kiln_table_t *t, size_t index, kiln_column_t *column); /* frees the old, moves */
void kiln_table_clone(kiln_table_t *out, const kiln_table_t *src);
void kiln_table_free(kiln_table_t *t);

size_t kiln_column_len(const kiln_column_t *c);
/* Whether row i holds a value (false past the end). NaN in a float64 column is a value. */
bool kiln_column_is_valid(const kiln_column_t *c, size_t i);
size_t kiln_column_missing(const kiln_column_t *c);
/* "float64", "int64", "text" or "boolean". */
const char *kiln_column_type_name(const kiln_column_t *c);
bool kiln_column_name_is(const kiln_column_t *c, const char *name);
/* Typed data, or NULL when the column is of another type (or has no rows). Missing rows
 * hold a filler: check kiln_column_is_valid. */
const double *kiln_column_f64(const kiln_column_t *c);
const int64_t *kiln_column_i64(const kiln_column_t *c);
const bool *kiln_column_bool(const kiln_column_t *c);
/* Row i of a text column, or NULL (another type, or out of range). */
const kiln_string_t *kiln_column_text(const kiln_column_t *c, size_t i);
/* The values as doubles (malloc'd; missing rows become NaN; booleans 0/1). A text column
 * is an invalid-input error. With no rows, *out is NULL. */
bool kiln_column_to_f64(const kiln_column_t *c, double **out, kiln_error_t *err);

/* New columns. `valid` may be NULL (nothing missing); it is copied / adopted likewise. */
void kiln_column_from_f64(kiln_column_t *out, const char *name, const double *values,
                          const bool *valid, size_t n);
void kiln_column_from_i64(kiln_column_t *out, const char *name, const int64_t *values,
                          const bool *valid, size_t n);
void kiln_column_from_bool(kiln_column_t *out, const char *name, const bool *values,
                           const bool *valid, size_t n);
/* A NULL entry is a missing row. */
void kiln_column_from_text(kiln_column_t *out, const char *name, const char *const *values, size_t n);
/* Adopt malloc'd arrays instead of copying them (no copy for big columns). */
void kiln_column_adopt_f64(kiln_column_t *out, const char *name, double *values, bool *valid, size_t n);
void kiln_column_adopt_i64(kiln_column_t *out, const char *name, int64_t *values, bool *valid,
                           size_t n);
void kiln_column_clone(kiln_column_t *out, const kiln_column_t *src);
void kiln_column_free(kiln_column_t *c);

/* ------------------------------------------------------------------------------------ */
/* Tensors                                                                              */
/* ------------------------------------------------------------------------------------ */

size_t kiln_dtype_size(kiln_dtype_t d);
const char *kiln_dtype_name(kiln_dtype_t d);
/* The number of elements the shape describes (SIZE_MAX when it overflows). */
size_t kiln_tensor_count(const kiln_tensor_t *t);
/* The data length matches shape and dtype; else invalid-input. */
bool kiln_tensor_check(const kiln_tensor_t *t, kiln_error_t *err);
/* Element i (of a checked tensor, i < count), converted from any dtype. */
double kiln_tensor_get_f64(const kiln_tensor_t *t, size_t i);
float kiln_tensor_get_f32(const kiln_tensor_t *t, size_t i);
int64_t kiln_tensor_get_i64(const kiln_tensor_t *t, size_t i);
/* Every element as a double (malloc'd, *n elements); fails on a bad tensor. */
bool kiln_tensor_to_f64(const kiln_tensor_t *t, double **out, size_t *n, kiln_error_t *err);
/* New tensors; `values` holds the product of `shape` elements (copied). */
void kiln_tensor_from_f64(kiln_tensor_t *out, const uint64_t *shape, size_t ndim, const double *values);
void kiln_tensor_from_f32(kiln_tensor_t *out, const uint64_t *shape, size_t ndim, const float *values);
void kiln_tensor_from_i64(kiln_tensor_t *out, const uint64_t *shape, size_t ndim, const int64_t *values);
void kiln_tensor_free(kiln_tensor_t *t);

/* ------------------------------------------------------------------------------------ */
/* Descriptors, model metadata, checks                                                  */
/* ------------------------------------------------------------------------------------ */

void kiln_descriptor_init(kiln_descriptor_t *d, const char *name, const char *description);
void kiln_descriptor_input(kiln_descriptor_t *d, const char *name, kiln_kind_t kind, const char *description);
void kiln_descriptor_optional_input(kiln_descriptor_t *d, const char *name, kiln_kind_t kind,
                                    const char *description);
void kiln_descriptor_output(kiln_descriptor_t *d, const char *name, kiln_kind_t kind, const char *description);
/* A config key with a default (NULL: no default) that need not be set. */
void kiln_descriptor_config(kiln_descriptor_t *d, const char *name, const char *dflt, const char *description);
void kiln_descriptor_required_config(kiln_descriptor_t *d, const char *name, const char *description);

void kiln_metadata_input(kiln_metadata_t *md, const char *name, kiln_kind_t kind, const char *description);
void kiln_metadata_optional_input(kiln_metadata_t *md, const char *name, kiln_kind_t kind,
                                  const char *description);
void kiln_metadata_output(kiln_metadata_t *md, const char *name, kiln_kind_t kind, const char *description);
void kiln_metadata_property(kiln_metadata_t *md, const char *key, const char *fmt, ...) KILN_PRINTF(3, 4);

/* Adds a check; `fmt` formats its detail. */
void kiln_check(kiln_checks_t *checks, const char *name, bool passed, kiln_severity_t severity,
                const char *fmt, ...) KILN_PRINTF(5, 6);
/* Adds a check with the figure it looked at. */
void kiln_check_observed(kiln_checks_t *checks, const char *name, bool passed, kiln_severity_t severity,
                         double observed, const char *fmt, ...) KILN_PRINTF(6, 7);

/* ------------------------------------------------------------------------------------ */
/* Host calls                                                                           */
/* ------------------------------------------------------------------------------------ */

typedef enum kiln_level {
    KILN_TRACE = KILN_PLUGIN_LOG_LEVEL_TRACE,
    KILN_DEBUG = KILN_PLUGIN_LOG_LEVEL_DEBUG,
    KILN_INFO = KILN_PLUGIN_LOG_LEVEL_INFO,
    KILN_WARN = KILN_PLUGIN_LOG_LEVEL_WARN,
    KILN_ERROR = KILN_PLUGIN_LOG_LEVEL_ERROR,
} kiln_level_t;

/* Logs into the host's log, tagged with the plugin's name. */
void kiln_log(kiln_level_t level, const char *fmt, ...) KILN_PRINTF(2, 3);
#define kiln_log_trace(...) kiln_log(KILN_TRACE, __VA_ARGS__)
#define kiln_log_debug(...) kiln_log(KILN_DEBUG, __VA_ARGS__)
#define kiln_log_info(...) kiln_log(KILN_INFO, __VA_ARGS__)
#define kiln_log_warn(...) kiln_log(KILN_WARN, __VA_ARGS__)
#define kiln_log_error(...) kiln_log(KILN_ERROR, __VA_ARGS__)

#if defined(KILN_HAS_TRACKING)
/* Tracking of the current run (steps and validators only). */
void kiln_log_metric(const char *key, double value, uint64_t step);
void kiln_log_param(const char *key, const char *fmt, ...) KILN_PRINTF(2, 3);
void kiln_set_tag(const char *key, const char *fmt, ...) KILN_PRINTF(2, 3);
#endif

/* ------------------------------------------------------------------------------------ */
/* Strings and memory                                                                   */
/* ------------------------------------------------------------------------------------ */

/* malloc / calloc / realloc that trap instead of returning NULL. */
void *kiln_alloc(size_t n);            /* zeroed */
void *kiln_alloc_array(size_t count, size_t size); /* zeroed; traps on overflow */
void *kiln_realloc(void *p, size_t n);
char *kiln_strdup(const char *s);
char *kiln_strndup(const char *s, size_t n);
/* A formatted, malloc'd string. */
char *kiln_format(const char *fmt, ...) KILN_PRINTF(1, 2);
char *kiln_vformat(const char *fmt, va_list ap);

/* Whether the component string equals the C string. */
bool kiln_str_eq(const kiln_string_t *s, const char *c);
/* A malloc'd, nul-terminated copy. */
char *kiln_str_cstr(const kiln_string_t *s);
/* A component string holding a malloc'd copy of `c`. */
void kiln_string_dup(kiln_string_t *out, const char *c);
void kiln_string_free(kiln_string_t *s);

/* Splits on `sep`, trims spaces, drops empty items. */
kiln_strs_t kiln_split(const char *s, char sep);
bool kiln_strs_contains(const kiln_strs_t *list, const char *s);
void kiln_strs_push(kiln_strs_t *list, const char *s); /* copies */
void kiln_strs_free(kiln_strs_t *list);

void kiln_buf_putn(kiln_buf_t *b, const char *s, size_t n);
void kiln_buf_puts(kiln_buf_t *b, const char *s);
void kiln_buf_putc(kiln_buf_t *b, char c);
void kiln_buf_printf(kiln_buf_t *b, const char *fmt, ...) KILN_PRINTF(2, 3);
/* A JSON string literal, quoted and escaped. */
void kiln_buf_json_string(kiln_buf_t *b, const char *s);
void kiln_buf_json_stringn(kiln_buf_t *b, const char *s, size_t n);
/* A JSON number in its shortest round-tripping form; NaN and infinities become null. */
void kiln_buf_json_number(kiln_buf_t *b, double x);
/* The text (malloc'd, nul-terminated, never NULL); the buffer is left empty. */
char *kiln_buf_take(kiln_buf_t *b);
void kiln_buf_free(kiln_buf_t *b);

/* ------------------------------------------------------------------------------------ */
/* JSON                                                                                 */
/* ------------------------------------------------------------------------------------ */

typedef enum kiln_json_type {
    KILN_JSON_NULL,
    KILN_JSON_BOOL,
    KILN_JSON_NUMBER,
    KILN_JSON_STRING,
    KILN_JSON_ARRAY,
    KILN_JSON_OBJECT,
} kiln_json_type_t;

/* A parsed JSON document. Arrays and objects hold `len` items; an object's keys are
 * keys[0..len] (nul-terminated), in document order. */
typedef struct kiln_json {
    kiln_json_type_t type;
    bool boolean;
    double number;
    char *string; /* nul-terminated (a \u0000 escape ends it early); string_len bytes */
    size_t string_len;
    size_t len;
    struct kiln_json *items;
    char **keys;
} kiln_json_t;

/* Parses `len` bytes of JSON (nesting up to 256 deep). On failure returns NULL and writes
 * why (with the byte offset) into why[0..why_cap]. Free the result with kiln_json_free. */
kiln_json_t *kiln_json_parse(const char *text, size_t len, char *why, size_t why_cap);
/* Parses a text or JSON input; failure is an invalid-input error naming the input. */
bool kiln_input_json(const kiln_inputs_t *inputs, const char *name, kiln_json_t **out, kiln_error_t *err);
/* A member of an object (NULL when absent or not an object). The last one wins. */
const kiln_json_t *kiln_json_get(const kiln_json_t *obj, const char *key);
/* Item i of an array or object (NULL out of range). */
const kiln_json_t *kiln_json_at(const kiln_json_t *j, size_t i);
const char *kiln_json_type_name(kiln_json_type_t type);
void kiln_json_free(kiln_json_t *j);

#ifdef __cplusplus
}
#endif

#endif /* KILN_H */
