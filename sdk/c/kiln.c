/*
 * kiln.c: the C SDK for Kiln plugins. See kiln.h for the API and the ownership rules.
 *
 * Compiled with the plugin's own files and the bindings `wit-bindgen c` generated for the
 * plugin's world; the same KILN_WORLD_* macro selects the world here and in kiln.h. This
 * file also implements the generated export functions, calling the plugin's kiln_*
 * callbacks with borrowed inputs and freeing those afterwards.
 *
 * A note on lists: the canonical ABI hands over an empty list as a length of 0 and a
 * pointer that need not come from malloc. Nothing here frees or reallocates a list's
 * pointer unless its length is above 0, as the generated *_free functions do.
 */
#include "kiln.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------------------------ */
/* Memory                                                                               */
/* ------------------------------------------------------------------------------------ */

void *kiln_alloc(size_t n) {
    void *p = calloc(1, n ? n : 1);
    if (!p) __builtin_trap();
    return p;
}

void *kiln_alloc_array(size_t count, size_t size) {
    if (size && count > SIZE_MAX / size) __builtin_trap();
    return kiln_alloc(count * size);
}

void *kiln_realloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) __builtin_trap();
    return q;
}

/* Makes room for one more element in a ptr/len list: returns the list's new pointer, the
 * element at [len] zeroed. Use through PUSH, which also counts it and yields it. */
static void *grow(void *ptr, size_t len, size_t elem) {
    if (len >= SIZE_MAX / elem - 1) __builtin_trap();
    char *p = kiln_realloc(len > 0 ? ptr : NULL, (len + 1) * elem);
    memset(p + len * elem, 0, elem);
    return p;
}
#define PUSH(list) ((list)->ptr = grow((list)->ptr, (list)->len, sizeof *(list)->ptr), &(list)->ptr[(list)->len++])

/* A malloc'd copy of n elements (NULL for none). */
static void *copy_array(const void *src, size_t n, size_t elem) {
    if (n == 0) return NULL;
    void *p = kiln_alloc_array(n, elem);
    memcpy(p, src, n * elem);
    return p;
}

char *kiln_strndup(const char *s, size_t n) {
    char *p = kiln_alloc(n + 1);
    if (n) memcpy(p, s, n);
    p[n] = 0;
    return p;
}

char *kiln_strdup(const char *s) { return kiln_strndup(s, strlen(s)); }

char *kiln_vformat(const char *fmt, va_list ap) {
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) return kiln_strdup(fmt);
    char *p = kiln_alloc((size_t)n + 1);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    return p;
}

char *kiln_format(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *p = kiln_vformat(fmt, ap);
    va_end(ap);
    return p;
}

/* ------------------------------------------------------------------------------------ */
/* Strings                                                                              */
/* ------------------------------------------------------------------------------------ */

/* Sets a component string to own the malloc'd nul-terminated `p` (freed if empty). */
static void string_adopt(kiln_string_t *out, char *p) {
    size_t n = strlen(p);
    if (n == 0) {
        free(p);
        out->ptr = NULL;
    } else {
        out->ptr = (uint8_t *)p;
    }
    out->len = n;
}

static void string_dupn(kiln_string_t *out, const char *c, size_t n) {
    out->len = n;
    out->ptr = n ? (uint8_t *)kiln_strndup(c, n) : NULL;
}

void kiln_string_dup(kiln_string_t *out, const char *c) { string_dupn(out, c ? c : "", c ? strlen(c) : 0); }

void kiln_string_free(kiln_string_t *s) {
    if (s->len > 0) free(s->ptr);
    s->ptr = NULL;
    s->len = 0;
}

/* A borrowed component string over `c` (for import arguments, which are copied). */
static kiln_string_t string_view(const char *c) {
    kiln_string_t s;
    s.ptr = (uint8_t *)c;
    s.len = strlen(c);
    return s;
}

bool kiln_str_eq(const kiln_string_t *s, const char *c) {
    size_t n = strlen(c);
    return s->len == n && (n == 0 || memcmp(s->ptr, c, n) == 0);
}

char *kiln_str_cstr(const kiln_string_t *s) { return kiln_strndup((const char *)s->ptr, s->len); }

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

void kiln_strs_push(kiln_strs_t *list, const char *s) {
    char **slot = PUSH(list);
    *slot = kiln_strdup(s);
}

kiln_strs_t kiln_split(const char *s, char sep) {
    kiln_strs_t out = {0};
    if (!s) return out;
    while (1) {
        const char *end = strchr(s, sep);
        const char *stop = end ? end : s + strlen(s);
        const char *a = s, *b = stop;
        while (a < b && is_space(*a)) a++;
        while (b > a && is_space(b[-1])) b--;
        if (b > a) {
            char **slot = PUSH(&out);
            *slot = kiln_strndup(a, (size_t)(b - a));
        }
        if (!end) break;
        s = end + 1;
    }
    return out;
}

bool kiln_strs_contains(const kiln_strs_t *list, const char *s) {
    for (size_t i = 0; i < list->len; i++)
        if (strcmp(list->ptr[i], s) == 0) return true;
    return false;
}

void kiln_strs_free(kiln_strs_t *list) {
    for (size_t i = 0; i < list->len; i++) free(list->ptr[i]);
    free(list->ptr);
    list->ptr = NULL;
    list->len = 0;
}

/* ------------------------------------------------------------------------------------ */
/* Text buffers and JSON output                                                         */
/* ------------------------------------------------------------------------------------ */

static void buf_reserve(kiln_buf_t *b, size_t extra) {
    if (extra >= SIZE_MAX / 2 - b->len) __builtin_trap();
    size_t need = b->len + extra + 1;
    if (need <= b->cap) return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) cap *= 2;
    b->ptr = kiln_realloc(b->ptr, cap);
    b->cap = cap;
}

void kiln_buf_putn(kiln_buf_t *b, const char *s, size_t n) {
    buf_reserve(b, n);
    if (n) memcpy(b->ptr + b->len, s, n);
    b->len += n;
    b->ptr[b->len] = 0;
}

void kiln_buf_puts(kiln_buf_t *b, const char *s) { kiln_buf_putn(b, s, strlen(s)); }

void kiln_buf_putc(kiln_buf_t *b, char c) { kiln_buf_putn(b, &c, 1); }

void kiln_buf_printf(kiln_buf_t *b, const char *fmt, ...) {
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n > 0) {
        buf_reserve(b, (size_t)n);
        vsnprintf(b->ptr + b->len, (size_t)n + 1, fmt, ap);
        b->len += (size_t)n;
    }
    va_end(ap);
}

void kiln_buf_json_stringn(kiln_buf_t *b, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    kiln_buf_putc(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': kiln_buf_puts(b, "\\\""); break;
        case '\\': kiln_buf_puts(b, "\\\\"); break;
        case '\n': kiln_buf_puts(b, "\\n"); break;
        case '\r': kiln_buf_puts(b, "\\r"); break;
        case '\t': kiln_buf_puts(b, "\\t"); break;
        case '\b': kiln_buf_puts(b, "\\b"); break;
        case '\f': kiln_buf_puts(b, "\\f"); break;
        default:
            if (c < 0x20) {
                char esc[7] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15], 0};
                kiln_buf_puts(b, esc);
            } else {
                kiln_buf_putc(b, (char)c);
            }
        }
    }
    kiln_buf_putc(b, '"');
}

void kiln_buf_json_string(kiln_buf_t *b, const char *s) { kiln_buf_json_stringn(b, s, strlen(s)); }

void kiln_buf_json_number(kiln_buf_t *b, double x) {
    if (!isfinite(x)) {
        kiln_buf_puts(b, "null");
        return;
    }
    char tmp[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, x);
        if (prec == 17 || strtod(tmp, NULL) == x) break;
    }
    kiln_buf_puts(b, tmp);
}

char *kiln_buf_take(kiln_buf_t *b) {
    char *p = b->ptr ? b->ptr : kiln_strdup("");
    b->ptr = NULL;
    b->len = b->cap = 0;
    return p;
}

void kiln_buf_free(kiln_buf_t *b) {
    free(b->ptr);
    b->ptr = NULL;
    b->len = b->cap = 0;
}

/* ------------------------------------------------------------------------------------ */
/* Errors                                                                               */
/* ------------------------------------------------------------------------------------ */

bool kiln_error_vset(kiln_error_t *err, kiln_error_kind_t kind, const char *fmt, va_list ap) {
    kiln_string_free(&err->message);
    err->kind = kind;
    string_adopt(&err->message, kiln_vformat(fmt, ap));
    return false;
}

bool kiln_error_set(kiln_error_t *err, kiln_error_kind_t kind, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    kiln_error_vset(err, kind, fmt, ap);
    va_end(ap);
    return false;
}

#define ERROR_FN(fn, kind)                                                                 \
    bool fn(kiln_error_t *err, const char *fmt, ...) {                                     \
        va_list ap;                                                                        \
        va_start(ap, fmt);                                                                 \
        kiln_error_vset(err, kind, fmt, ap);                                               \
        va_end(ap);                                                                        \
        return false;                                                                      \
    }
ERROR_FN(kiln_error_invalid_input, KILN_INVALID_INPUT)
ERROR_FN(kiln_error_invalid_config, KILN_INVALID_CONFIG)
ERROR_FN(kiln_error_unsupported, KILN_UNSUPPORTED)
ERROR_FN(kiln_error_internal, KILN_INTERNAL)

bool kiln_error_prefix(kiln_error_t *err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *prefix = kiln_vformat(fmt, ap);
    va_end(ap);
    char *msg = kiln_format("%s%.*s", prefix, KILN_STR(err->message));
    free(prefix);
    kiln_string_free(&err->message);
    string_adopt(&err->message, msg);
    return false;
}

/* ------------------------------------------------------------------------------------ */
/* Config                                                                               */
/* ------------------------------------------------------------------------------------ */

/* The SDK's nul-terminated copy of the config the host passed. */
static kiln_config_t config_from(const kiln_plugin_types_config_t *c) {
    kiln_config_t out = {0};
    out.len = c->len;
    out.keys = kiln_alloc_array(c->len, sizeof(char *));
    out.values = kiln_alloc_array(c->len, sizeof(char *));
    for (size_t i = 0; i < c->len; i++) {
        out.keys[i] = kiln_str_cstr(&c->ptr[i].f0);
        out.values[i] = kiln_str_cstr(&c->ptr[i].f1);
    }
    return out;
}

static void config_release(kiln_config_t *c) {
    for (size_t i = 0; i < c->len; i++) {
        free((char *)c->keys[i]);
        free((char *)c->values[i]);
    }
    free(c->keys);
    free(c->values);
    memset(c, 0, sizeof *c);
}

const char *kiln_config_get(const kiln_config_t *config, const char *key) {
    for (size_t i = config->len; i-- > 0;)
        if (strcmp(config->keys[i], key) == 0) return config->values[i];
    return NULL;
}

const char *kiln_config_string(const kiln_config_t *config, const char *key, const char *dflt) {
    const char *v = kiln_config_get(config, key);
    return v ? v : dflt;
}

bool kiln_config_require(const kiln_config_t *config, const char *key, const char **out, kiln_error_t *err) {
    *out = kiln_config_get(config, key);
    if (!*out) return kiln_error_invalid_config(err, "missing config key `%s`", key);
    return true;
}

/* The value trimmed into `tmp` (or a malloc'd copy when long; *heap says which). */
static char *trimmed(const char *v, char *tmp, size_t cap, char **heap) {
    while (is_space(*v)) v++;
    size_t n = strlen(v);
    while (n > 0 && is_space(v[n - 1])) n--;
    *heap = NULL;
    if (n < cap) {
        memcpy(tmp, v, n);
        tmp[n] = 0;
        return tmp;
    }
    *heap = kiln_strndup(v, n);
    return *heap;
}

bool kiln_config_double(const kiln_config_t *config, const char *key, double dflt, double *out, kiln_error_t *err) {
    const char *v = kiln_config_get(config, key);
    *out = dflt;
    if (!v) return true;
    char tmp[64], *heap;
    char *t = trimmed(v, tmp, sizeof tmp, &heap);
    char *end = NULL;
    errno = 0;
    double x = *t ? strtod(t, &end) : 0;
    bool ok = *t && end && *end == 0 && errno != ERANGE;
    free(heap);
    if (!ok) return kiln_error_invalid_config(err, "config key `%s` = `%s`: not a number", key, v);
    *out = x;
    return true;
}

bool kiln_config_int(const kiln_config_t *config, const char *key, int64_t dflt, int64_t *out, kiln_error_t *err) {
    const char *v = kiln_config_get(config, key);
    *out = dflt;
    if (!v) return true;
    char tmp[64], *heap;
    char *t = trimmed(v, tmp, sizeof tmp, &heap);
    char *end = NULL;
    errno = 0;
    long long x = *t ? strtoll(t, &end, 10) : 0;
    bool ok = *t && end && *end == 0 && errno != ERANGE;
    free(heap);
    if (!ok) return kiln_error_invalid_config(err, "config key `%s` = `%s`: not an integer", key, v);
    *out = (int64_t)x;
    return true;
}

bool kiln_config_int_range(const kiln_config_t *config, const char *key, int64_t dflt, int64_t min, int64_t max,
                           int64_t *out, kiln_error_t *err) {
    if (!kiln_config_int(config, key, dflt, out, err)) return false;
    if (*out < min || *out > max)
        return kiln_error_invalid_config(err, "config key `%s` = `%s`: must be from %lld to %lld", key,
                                         kiln_config_get(config, key), (long long)min, (long long)max);
    return true;
}

bool kiln_config_bool(const kiln_config_t *config, const char *key, bool dflt, bool *out, kiln_error_t *err) {
    const char *v = kiln_config_get(config, key);
    *out = dflt;
    if (!v) return true;
    char tmp[16], *heap;
    char *t = trimmed(v, tmp, sizeof tmp, &heap);
    static const char *yes[] = {"true", "yes", "on", "1"};
    static const char *no[] = {"false", "no", "off", "0"};
    bool found = false;
    for (size_t i = 0; i < 4 && !found; i++) {
        if (strcmp(t, yes[i]) == 0) *out = true, found = true;
        else if (strcmp(t, no[i]) == 0) *out = false, found = true;
    }
    free(heap);
    if (!found) return kiln_error_invalid_config(err, "config key `%s` = `%s`: not true or false", key, v);
    return true;
}

kiln_strs_t kiln_config_list(const kiln_config_t *config, const char *key) {
    return kiln_split(kiln_config_get(config, key), ',');
}

/* ------------------------------------------------------------------------------------ */
/* Values and inputs                                                                    */
/* ------------------------------------------------------------------------------------ */

const char *kiln_value_kind_name(const kiln_value_t *v) {
    switch (v->tag) {
    case KILN_VALUE_TENSOR: return "tensor";
    case KILN_VALUE_TABLE: return "table";
    case KILN_VALUE_SCALAR: return "scalar";
    case KILN_VALUE_TEXT: return "text";
    case KILN_VALUE_BYTES: return "bytes";
    case KILN_VALUE_JSON: return "json";
    default: return "unknown value";
    }
}

static kiln_named_value_t *find_input(const kiln_inputs_t *inputs, const char *name) {
    /* A taken input's name is emptied, so it is found no more. */
    if (!*name) return NULL;
    for (size_t i = 0; i < inputs->len; i++)
        if (kiln_str_eq(&inputs->ptr[i].name, name)) return &inputs->ptr[i];
    return NULL;
}

const kiln_value_t *kiln_input(const kiln_inputs_t *inputs, const char *name) {
    kiln_named_value_t *nv = find_input(inputs, name);
    return nv ? &nv->value : NULL;
}

/* The input, of kind `tag` (or `tag2`); else an invalid-input error. */
static kiln_named_value_t *input_of(const kiln_inputs_t *inputs, const char *name, uint8_t tag, int tag2,
                                    const char *want, kiln_error_t *err) {
    kiln_named_value_t *nv = find_input(inputs, name);
    if (!nv) {
        kiln_error_invalid_input(err, "missing input `%s`", name);
        return NULL;
    }
    if (nv->value.tag != tag && (int)nv->value.tag != tag2) {
        kiln_error_invalid_input(err, "input `%s` must be %s, got a %s", name, want, kiln_value_kind_name(&nv->value));
        return NULL;
    }
    return nv;
}

bool kiln_input_table(const kiln_inputs_t *inputs, const char *name, const kiln_table_t **out, kiln_error_t *err) {
    kiln_named_value_t *nv = input_of(inputs, name, KILN_VALUE_TABLE, -1, "a table", err);
    if (!nv) return false;
    if (!kiln_table_check(&nv->value.val.table, err)) return kiln_error_prefix(err, "input `%s`: ", name);
    *out = &nv->value.val.table;
    return true;
}

bool kiln_input_tensor(const kiln_inputs_t *inputs, const char *name, const kiln_tensor_t **out, kiln_error_t *err) {
    kiln_named_value_t *nv = input_of(inputs, name, KILN_VALUE_TENSOR, -1, "a tensor", err);
    if (!nv) return false;
    if (!kiln_tensor_check(&nv->value.val.tensor, err)) return kiln_error_prefix(err, "input `%s`: ", name);
    *out = &nv->value.val.tensor;
    return true;
}

bool kiln_input_scalar(const kiln_inputs_t *inputs, const char *name, double *out, kiln_error_t *err) {
    kiln_named_value_t *nv = input_of(inputs, name, KILN_VALUE_SCALAR, -1, "a scalar", err);
    if (!nv) return false;
    *out = nv->value.val.scalar;
    return true;
}

bool kiln_input_text(const kiln_inputs_t *inputs, const char *name, const kiln_string_t **out, kiln_error_t *err) {
    kiln_named_value_t *nv = input_of(inputs, name, KILN_VALUE_TEXT, KILN_VALUE_JSON, "text or json", err);
    if (!nv) return false;
    *out = nv->value.tag == KILN_VALUE_TEXT ? &nv->value.val.text : &nv->value.val.json;
    return true;
}

bool kiln_input_bytes(const kiln_inputs_t *inputs, const char *name, const uint8_t **data, size_t *len,
                      kiln_error_t *err) {
    kiln_named_value_t *nv = input_of(inputs, name, KILN_VALUE_BYTES, -1, "bytes", err);
    if (!nv) return false;
    *data = nv->value.val.bytes.ptr;
    *len = nv->value.val.bytes.len;
    return true;
}

/* Removes an input's value from the list, leaving an empty slot behind. */
static void take_slot(kiln_named_value_t *nv) {
    kiln_string_free(&nv->name);
    memset(&nv->value, 0, sizeof nv->value);
    nv->value.tag = KILN_VALUE_SCALAR;
}

bool kiln_input_take_table(kiln_inputs_t *inputs, const char *name, kiln_table_t *out, kiln_error_t *err) {
    const kiln_table_t *t;
    if (!kiln_input_table(inputs, name, &t, err)) return false;
    kiln_named_value_t *nv = find_input(inputs, name);
    *out = nv->value.val.table;
    take_slot(nv);
    return true;
}

bool kiln_input_take_tensor(kiln_inputs_t *inputs, const char *name, kiln_tensor_t *out, kiln_error_t *err) {
    const kiln_tensor_t *t;
    if (!kiln_input_tensor(inputs, name, &t, err)) return false;
    kiln_named_value_t *nv = find_input(inputs, name);
    *out = nv->value.val.tensor;
    take_slot(nv);
    return true;
}

/* ------------------------------------------------------------------------------------ */
/* Outputs                                                                              */
/* ------------------------------------------------------------------------------------ */

static kiln_value_t *output_slot(kiln_outputs_t *outputs, const char *name) {
    kiln_named_value_t *nv = PUSH(outputs);
    kiln_string_dup(&nv->name, name);
    return &nv->value;
}

void kiln_output_value(kiln_outputs_t *outputs, const char *name, kiln_value_t *value) {
    *output_slot(outputs, name) = *value;
    memset(value, 0, sizeof *value);
    value->tag = KILN_VALUE_SCALAR;
}

void kiln_output_table(kiln_outputs_t *outputs, const char *name, kiln_table_t *table) {
    kiln_value_t *v = output_slot(outputs, name);
    v->tag = KILN_VALUE_TABLE;
    v->val.table = *table;
    memset(table, 0, sizeof *table);
}

void kiln_output_tensor(kiln_outputs_t *outputs, const char *name, kiln_tensor_t *tensor) {
    kiln_value_t *v = output_slot(outputs, name);
    v->tag = KILN_VALUE_TENSOR;
    v->val.tensor = *tensor;
    memset(tensor, 0, sizeof *tensor);
}

void kiln_output_scalar(kiln_outputs_t *outputs, const char *name, double value) {
    kiln_value_t *v = output_slot(outputs, name);
    v->tag = KILN_VALUE_SCALAR;
    v->val.scalar = value;
}

void kiln_output_text(kiln_outputs_t *outputs, const char *name, const char *text) {
    kiln_value_t *v = output_slot(outputs, name);
    v->tag = KILN_VALUE_TEXT;
    kiln_string_dup(&v->val.text, text);
}

void kiln_output_json(kiln_outputs_t *outputs, const char *name, const char *json) {
    kiln_value_t *v = output_slot(outputs, name);
    v->tag = KILN_VALUE_JSON;
    kiln_string_dup(&v->val.json, json);
}

void kiln_output_json_buf(kiln_outputs_t *outputs, const char *name, kiln_buf_t *json) {
    kiln_value_t *v = output_slot(outputs, name);
    v->tag = KILN_VALUE_JSON;
    string_adopt(&v->val.json, kiln_buf_take(json));
}

void kiln_output_bytes(kiln_outputs_t *outputs, const char *name, const uint8_t *data, size_t len) {
    kiln_value_t *v = output_slot(outputs, name);
    v->tag = KILN_VALUE_BYTES;
    v->val.bytes.ptr = copy_array(data, len, 1);
    v->val.bytes.len = len;
}

static __attribute__((unused)) void outputs_free(kiln_outputs_t *outputs) {
    for (size_t i = 0; i < outputs->len; i++) kiln_plugin_types_named_value_free(&outputs->ptr[i]);
    free(outputs->ptr);
    outputs->ptr = NULL;
    outputs->len = 0;
}

/* ------------------------------------------------------------------------------------ */
/* Tables and columns                                                                   */
/* ------------------------------------------------------------------------------------ */

size_t kiln_column_len(const kiln_column_t *c) {
    switch (c->data.tag) {
    case KILN_COL_FLOAT64: return c->data.val.float64.len;
    case KILN_COL_INT64: return c->data.val.int64.len;
    case KILN_COL_TEXT: return c->data.val.text.len;
    case KILN_COL_BOOLEAN: return c->data.val.boolean.len;
    default: return 0;
    }
}

size_t kiln_table_rows(const kiln_table_t *t) { return t->columns.len ? kiln_column_len(&t->columns.ptr[0]) : 0; }

bool kiln_table_check(const kiln_table_t *t, kiln_error_t *err) {
    size_t rows = kiln_table_rows(t);
    for (size_t i = 0; i < t->columns.len; i++) {
        const kiln_column_t *c = &t->columns.ptr[i];
        if (c->data.tag > KILN_COL_BOOLEAN)
            return kiln_error_invalid_input(err, "column `%.*s` has an unknown type", KILN_STR(c->name));
        if (kiln_column_len(c) != rows)
            return kiln_error_invalid_input(err, "column `%.*s` has %zu rows, the table has %zu", KILN_STR(c->name),
                                            kiln_column_len(c), rows);
        if (c->valid.is_some && c->valid.val.len != rows)
            return kiln_error_invalid_input(err, "column `%.*s` has %zu validity flags for %zu rows", KILN_STR(c->name),
                                            c->valid.val.len, rows);
    }
    return true;
}

long kiln_table_index(const kiln_table_t *t, const char *name) {
    for (size_t i = 0; i < t->columns.len; i++)
        if (kiln_str_eq(&t->columns.ptr[i].name, name)) return (long)i;
    return -1;
}

const kiln_column_t *kiln_table_column(const kiln_table_t *t, const char *name) {
    long i = kiln_table_index(t, name);
    return i < 0 ? NULL : &t->columns.ptr[i];
}

char *kiln_table_names(const kiln_table_t *t) {
    kiln_buf_t b = {0};
    for (size_t i = 0; i < t->columns.len; i++) {
        if (i) kiln_buf_puts(&b, ", ");
        kiln_buf_putn(&b, (const char *)t->columns.ptr[i].name.ptr, t->columns.ptr[i].name.len);
    }
    return kiln_buf_take(&b);
}

bool kiln_table_require(const kiln_table_t *t, const char *name, const kiln_column_t **out, kiln_error_t *err) {
    *out = kiln_table_column(t, name);
    if (*out) return true;
    char *names = kiln_table_names(t);
    kiln_error_invalid_input(err, "no column `%s`; the table has %s", name, *names ? names : "no columns");
    free(names);
    return false;
}

void kiln_table_push(kiln_table_t *t, kiln_column_t *column) {
    kiln_column_t *slot = PUSH(&t->columns);
    *slot = *column;
    memset(column, 0, sizeof *column);
}

void kiln_table_set(kiln_table_t *t, size_t index, kiln_column_t *column) {
    if (index >= t->columns.len) __builtin_trap();
    kiln_column_free(&t->columns.ptr[index]);
    t->columns.ptr[index] = *column;
    memset(column, 0, sizeof *column);
}

void kiln_table_clone(kiln_table_t *out, const kiln_table_t *src) {
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < src->columns.len; i++) {
        kiln_column_t c;
        kiln_column_clone(&c, &src->columns.ptr[i]);
        kiln_table_push(out, &c);
    }
}

void kiln_table_free(kiln_table_t *t) {
    kiln_plugin_types_table_free(t);
    memset(t, 0, sizeof *t);
}

bool kiln_column_is_valid(const kiln_column_t *c, size_t i) {
    if (i >= kiln_column_len(c)) return false;
    if (!c->valid.is_some) return true;
    return i < c->valid.val.len && c->valid.val.ptr[i];
}

size_t kiln_column_missing(const kiln_column_t *c) {
    if (!c->valid.is_some) return 0;
    size_t n = 0;
    for (size_t i = 0; i < c->valid.val.len; i++) n += !c->valid.val.ptr[i];
    return n;
}

const char *kiln_column_type_name(const kiln_column_t *c) {
    switch (c->data.tag) {
    case KILN_COL_FLOAT64: return "float64";
    case KILN_COL_INT64: return "int64";
    case KILN_COL_TEXT: return "text";
    case KILN_COL_BOOLEAN: return "boolean";
    default: return "unknown";
    }
}

bool kiln_column_name_is(const kiln_column_t *c, const char *name) { return kiln_str_eq(&c->name, name); }

const double *kiln_column_f64(const kiln_column_t *c) {
    return c->data.tag == KILN_COL_FLOAT64 && c->data.val.float64.len ? c->data.val.float64.ptr : NULL;
}

const int64_t *kiln_column_i64(const kiln_column_t *c) {
    return c->data.tag == KILN_COL_INT64 && c->data.val.int64.len ? c->data.val.int64.ptr : NULL;
}

const bool *kiln_column_bool(const kiln_column_t *c) {
    return c->data.tag == KILN_COL_BOOLEAN && c->data.val.boolean.len ? c->data.val.boolean.ptr : NULL;
}

const kiln_string_t *kiln_column_text(const kiln_column_t *c, size_t i) {
    if (c->data.tag != KILN_COL_TEXT || i >= c->data.val.text.len) return NULL;
    return &c->data.val.text.ptr[i];
}

bool kiln_column_to_f64(const kiln_column_t *c, double **out, kiln_error_t *err) {
    size_t n = kiln_column_len(c);
    *out = NULL;
    if (c->data.tag == KILN_COL_TEXT || c->data.tag > KILN_COL_BOOLEAN)
        return kiln_error_invalid_input(err, "column `%.*s` is %s, a number was expected", KILN_STR(c->name),
                                        kiln_column_type_name(c));
    if (n == 0) return true;
    double *v = kiln_alloc_array(n, sizeof(double));
    for (size_t i = 0; i < n; i++) {
        if (!kiln_column_is_valid(c, i)) v[i] = NAN;
        else if (c->data.tag == KILN_COL_FLOAT64) v[i] = c->data.val.float64.ptr[i];
        else if (c->data.tag == KILN_COL_INT64) v[i] = (double)c->data.val.int64.ptr[i];
        else v[i] = c->data.val.boolean.ptr[i] ? 1.0 : 0.0;
    }
    *out = v;
    return true;
}

static void column_named(kiln_column_t *out, const char *name, uint8_t tag, const bool *valid, size_t n,
                         bool adopt) {
    memset(out, 0, sizeof *out);
    kiln_string_dup(&out->name, name);
    out->data.tag = tag;
    if (valid) {
        out->valid.is_some = true;
        out->valid.val.len = n;
        out->valid.val.ptr = adopt ? (bool *)valid : copy_array(valid, n, sizeof(bool));
        if (adopt && n == 0) {
            free((bool *)valid);
            out->valid.val.ptr = NULL;
        }
    }
}

void kiln_column_from_f64(kiln_column_t *out, const char *name, const double *values, const bool *valid, size_t n) {
    column_named(out, name, KILN_COL_FLOAT64, valid, n, false);
    out->data.val.float64.ptr = copy_array(values, n, sizeof(double));
    out->data.val.float64.len = n;
}

void kiln_column_from_i64(kiln_column_t *out, const char *name, const int64_t *values, const bool *valid, size_t n) {
    column_named(out, name, KILN_COL_INT64, valid, n, false);
    out->data.val.int64.ptr = copy_array(values, n, sizeof(int64_t));
    out->data.val.int64.len = n;
}

void kiln_column_from_bool(kiln_column_t *out, const char *name, const bool *values, const bool *valid, size_t n) {
    column_named(out, name, KILN_COL_BOOLEAN, valid, n, false);
    out->data.val.boolean.ptr = copy_array(values, n, sizeof(bool));
    out->data.val.boolean.len = n;
}

void kiln_column_from_text(kiln_column_t *out, const char *name, const char *const *values, size_t n) {
    bool missing = false;
    for (size_t i = 0; i < n; i++) missing |= values[i] == NULL;
    bool *valid = NULL;
    if (missing) {
        valid = kiln_alloc_array(n, sizeof(bool));
        for (size_t i = 0; i < n; i++) valid[i] = values[i] != NULL;
    }
    column_named(out, name, KILN_COL_TEXT, valid, n, true);
    out->data.val.text.len = n;
    out->data.val.text.ptr = n ? kiln_alloc_array(n, sizeof(kiln_string_t)) : NULL;
    for (size_t i = 0; i < n; i++) kiln_string_dup(&out->data.val.text.ptr[i], values[i] ? values[i] : "");
}

void kiln_column_adopt_f64(kiln_column_t *out, const char *name, double *values, bool *valid, size_t n) {
    column_named(out, name, KILN_COL_FLOAT64, valid, n, true);
    if (n == 0) free(values), values = NULL;
    out->data.val.float64.ptr = values;
    out->data.val.float64.len = n;
}

void kiln_column_adopt_i64(kiln_column_t *out, const char *name, int64_t *values, bool *valid, size_t n) {
    column_named(out, name, KILN_COL_INT64, valid, n, true);
    if (n == 0) free(values), values = NULL;
    out->data.val.int64.ptr = values;
    out->data.val.int64.len = n;
}

void kiln_column_clone(kiln_column_t *out, const kiln_column_t *src) {
    memset(out, 0, sizeof *out);
    string_dupn(&out->name, (const char *)src->name.ptr, src->name.len);
    out->data.tag = src->data.tag;
    size_t n = kiln_column_len(src);
    switch (src->data.tag) {
    case KILN_COL_FLOAT64:
        out->data.val.float64.ptr = copy_array(src->data.val.float64.ptr, n, sizeof(double));
        out->data.val.float64.len = n;
        break;
    case KILN_COL_INT64:
        out->data.val.int64.ptr = copy_array(src->data.val.int64.ptr, n, sizeof(int64_t));
        out->data.val.int64.len = n;
        break;
    case KILN_COL_BOOLEAN:
        out->data.val.boolean.ptr = copy_array(src->data.val.boolean.ptr, n, sizeof(bool));
        out->data.val.boolean.len = n;
        break;
    case KILN_COL_TEXT:
        out->data.val.text.ptr = n ? kiln_alloc_array(n, sizeof(kiln_string_t)) : NULL;
        out->data.val.text.len = n;
        for (size_t i = 0; i < n; i++)
            string_dupn(&out->data.val.text.ptr[i], (const char *)src->data.val.text.ptr[i].ptr,
                        src->data.val.text.ptr[i].len);
        break;
    }
    if (src->valid.is_some) {
        out->valid.is_some = true;
        out->valid.val.len = src->valid.val.len;
        out->valid.val.ptr = copy_array(src->valid.val.ptr, src->valid.val.len, sizeof(bool));
    }
}

void kiln_column_free(kiln_column_t *c) {
    kiln_plugin_types_column_free(c);
    memset(c, 0, sizeof *c);
}

/* ------------------------------------------------------------------------------------ */
/* Tensors                                                                              */
/* ------------------------------------------------------------------------------------ */

size_t kiln_dtype_size(kiln_dtype_t d) {
    switch (d) {
    case KILN_FLOAT32: case KILN_INT32: return 4;
    case KILN_FLOAT64: case KILN_INT64: return 8;
    case KILN_UINT8: case KILN_BOOLEAN: return 1;
    default: return 0;
    }
}

const char *kiln_dtype_name(kiln_dtype_t d) {
    switch (d) {
    case KILN_FLOAT32: return "float32";
    case KILN_FLOAT64: return "float64";
    case KILN_INT32: return "int32";
    case KILN_INT64: return "int64";
    case KILN_UINT8: return "uint8";
    case KILN_BOOLEAN: return "boolean";
    default: return "unknown";
    }
}

size_t kiln_tensor_count(const kiln_tensor_t *t) {
    size_t n = 1;
    for (size_t i = 0; i < t->shape.len; i++) {
        uint64_t d = t->shape.ptr[i];
        if (d > SIZE_MAX || (d && n > SIZE_MAX / d)) return SIZE_MAX;
        n *= (size_t)d;
    }
    return n;
}

static void shape_text(kiln_buf_t *b, const kiln_tensor_t *t) {
    kiln_buf_putc(b, '[');
    for (size_t i = 0; i < t->shape.len; i++) kiln_buf_printf(b, "%s%llu", i ? ", " : "", (unsigned long long)t->shape.ptr[i]);
    kiln_buf_putc(b, ']');
}

bool kiln_tensor_check(const kiln_tensor_t *t, kiln_error_t *err) {
    size_t size = kiln_dtype_size(t->dtype);
    if (size == 0) return kiln_error_invalid_input(err, "tensor has an unknown dtype");
    size_t n = kiln_tensor_count(t);
    if (n != SIZE_MAX && n <= SIZE_MAX / size && n * size == t->data.len) return true;
    kiln_buf_t shape = {0};
    shape_text(&shape, t);
    kiln_error_invalid_input(err, "tensor of shape %s and dtype %s needs %s%zu bytes, has %zu", shape.ptr,
                             kiln_dtype_name(t->dtype), n == SIZE_MAX || n > SIZE_MAX / size ? "more than " : "",
                             n == SIZE_MAX || n > SIZE_MAX / size ? SIZE_MAX : n * size, t->data.len);
    kiln_buf_free(&shape);
    return false;
}

double kiln_tensor_get_f64(const kiln_tensor_t *t, size_t i) {
    const uint8_t *p = t->data.ptr + i * kiln_dtype_size(t->dtype);
    switch (t->dtype) {
    case KILN_FLOAT64: { double x; memcpy(&x, p, 8); return x; }
    case KILN_FLOAT32: { float x; memcpy(&x, p, 4); return x; }
    case KILN_INT64: { int64_t x; memcpy(&x, p, 8); return (double)x; }
    case KILN_INT32: { int32_t x; memcpy(&x, p, 4); return x; }
    case KILN_UINT8: case KILN_BOOLEAN: return *p;
    default: return NAN;
    }
}

float kiln_tensor_get_f32(const kiln_tensor_t *t, size_t i) { return (float)kiln_tensor_get_f64(t, i); }

int64_t kiln_tensor_get_i64(const kiln_tensor_t *t, size_t i) {
    const uint8_t *p = t->data.ptr + i * kiln_dtype_size(t->dtype);
    if (t->dtype == KILN_INT64) {
        int64_t x;
        memcpy(&x, p, 8);
        return x;
    }
    double x = kiln_tensor_get_f64(t, i);
    if (!(x >= -9223372036854775808.0 && x < 9223372036854775808.0)) return x > 0 ? INT64_MAX : INT64_MIN;
    return (int64_t)x;
}

bool kiln_tensor_to_f64(const kiln_tensor_t *t, double **out, size_t *n, kiln_error_t *err) {
    *out = NULL;
    *n = 0;
    if (!kiln_tensor_check(t, err)) return false;
    size_t count = kiln_tensor_count(t);
    if (count == 0) return true;
    double *v = kiln_alloc_array(count, sizeof(double));
    for (size_t i = 0; i < count; i++) v[i] = kiln_tensor_get_f64(t, i);
    *out = v;
    *n = count;
    return true;
}

static void tensor_new(kiln_tensor_t *out, kiln_dtype_t dtype, const uint64_t *shape, size_t ndim, const void *values) {
    memset(out, 0, sizeof *out);
    out->dtype = dtype;
    out->shape.ptr = copy_array(shape, ndim, sizeof(uint64_t));
    out->shape.len = ndim;
    size_t n = kiln_tensor_count(out);
    size_t size = kiln_dtype_size(dtype);
    if (n == SIZE_MAX || n > SIZE_MAX / size) __builtin_trap();
    out->data.ptr = copy_array(values, n * size, 1);
    out->data.len = n * size;
}

void kiln_tensor_from_f64(kiln_tensor_t *out, const uint64_t *shape, size_t ndim, const double *values) {
    tensor_new(out, KILN_FLOAT64, shape, ndim, values);
}

void kiln_tensor_from_f32(kiln_tensor_t *out, const uint64_t *shape, size_t ndim, const float *values) {
    tensor_new(out, KILN_FLOAT32, shape, ndim, values);
}

void kiln_tensor_from_i64(kiln_tensor_t *out, const uint64_t *shape, size_t ndim, const int64_t *values) {
    tensor_new(out, KILN_INT64, shape, ndim, values);
}

void kiln_tensor_free(kiln_tensor_t *t) {
    kiln_plugin_types_tensor_free(t);
    memset(t, 0, sizeof *t);
}

/* ------------------------------------------------------------------------------------ */
/* Descriptors, metadata, checks                                                        */
/* ------------------------------------------------------------------------------------ */

static void port_push(kiln_plugin_types_list_port_t *list, const char *name, kiln_kind_t kind, bool optional,
                      const char *description) {
    kiln_plugin_types_port_t *p = PUSH(list);
    kiln_string_dup(&p->name, name);
    p->kind = kind;
    p->optional = optional;
    kiln_string_dup(&p->description, description);
}

void kiln_descriptor_init(kiln_descriptor_t *d, const char *name, const char *description) {
    kiln_string_free(&d->name);
    kiln_string_free(&d->description);
    kiln_string_dup(&d->name, name);
    kiln_string_dup(&d->description, description);
}

void kiln_descriptor_input(kiln_descriptor_t *d, const char *name, kiln_kind_t kind, const char *description) {
    port_push(&d->inputs, name, kind, false, description);
}

void kiln_descriptor_optional_input(kiln_descriptor_t *d, const char *name, kiln_kind_t kind, const char *description) {
    port_push(&d->inputs, name, kind, true, description);
}

void kiln_descriptor_output(kiln_descriptor_t *d, const char *name, kiln_kind_t kind, const char *description) {
    port_push(&d->outputs, name, kind, false, description);
}

static void config_key(kiln_descriptor_t *d, const char *name, bool required, const char *dflt, const char *description) {
    kiln_plugin_types_config_key_t *k = PUSH(&d->config);
    kiln_string_dup(&k->name, name);
    k->required = required;
    if (dflt) {
        k->default_.is_some = true;
        kiln_string_dup(&k->default_.val, dflt);
    }
    kiln_string_dup(&k->description, description);
}

void kiln_descriptor_config(kiln_descriptor_t *d, const char *name, const char *dflt, const char *description) {
    config_key(d, name, false, dflt, description);
}

void kiln_descriptor_required_config(kiln_descriptor_t *d, const char *name, const char *description) {
    config_key(d, name, true, NULL, description);
}

void kiln_metadata_input(kiln_metadata_t *md, const char *name, kiln_kind_t kind, const char *description) {
    port_push(&md->inputs, name, kind, false, description);
}

void kiln_metadata_optional_input(kiln_metadata_t *md, const char *name, kiln_kind_t kind, const char *description) {
    port_push(&md->inputs, name, kind, true, description);
}

void kiln_metadata_output(kiln_metadata_t *md, const char *name, kiln_kind_t kind, const char *description) {
    port_push(&md->outputs, name, kind, false, description);
}

void kiln_metadata_property(kiln_metadata_t *md, const char *key, const char *fmt, ...) {
    KILN_W_(tuple2_string_string_t) *p = PUSH(&md->properties);
    kiln_string_dup(&p->f0, key);
    va_list ap;
    va_start(ap, fmt);
    string_adopt(&p->f1, kiln_vformat(fmt, ap));
    va_end(ap);
}

static void check_push(kiln_checks_t *checks, const char *name, bool passed, kiln_severity_t severity, bool has_observed,
                       double observed, const char *fmt, va_list ap) {
    kiln_check_t *c = PUSH(checks);
    kiln_string_dup(&c->name, name);
    c->passed = passed;
    c->severity = severity;
    c->observed.is_some = has_observed;
    c->observed.val = has_observed ? observed : 0;
    string_adopt(&c->detail, kiln_vformat(fmt, ap));
}

void kiln_check(kiln_checks_t *checks, const char *name, bool passed, kiln_severity_t severity, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    check_push(checks, name, passed, severity, false, 0, fmt, ap);
    va_end(ap);
}

void kiln_check_observed(kiln_checks_t *checks, const char *name, bool passed, kiln_severity_t severity,
                         double observed, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    check_push(checks, name, passed, severity, true, observed, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------------------------ */
/* Host calls                                                                           */
/* ------------------------------------------------------------------------------------ */

void kiln_log(kiln_level_t level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *msg = kiln_vformat(fmt, ap);
    va_end(ap);
    kiln_string_t s = string_view(msg);
    kiln_plugin_log_log((kiln_plugin_log_level_t)level, &s);
    free(msg);
}

#if defined(KILN_HAS_TRACKING)
void kiln_log_metric(const char *key, double value, uint64_t step) {
    kiln_string_t k = string_view(key);
    kiln_plugin_tracking_log_metric(&k, value, step);
}

void kiln_log_param(const char *key, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *value = kiln_vformat(fmt, ap);
    va_end(ap);
    kiln_string_t k = string_view(key), v = string_view(value);
    kiln_plugin_tracking_log_param(&k, &v);
    free(value);
}

void kiln_set_tag(const char *key, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *value = kiln_vformat(fmt, ap);
    va_end(ap);
    kiln_string_t k = string_view(key), v = string_view(value);
    kiln_plugin_tracking_set_tag(&k, &v);
    free(value);
}
#endif

/* ------------------------------------------------------------------------------------ */
/* JSON parsing                                                                         */
/* ------------------------------------------------------------------------------------ */

#define JSON_MAX_DEPTH 256

typedef struct json_parser {
    const char *s;
    size_t len, at;
    const char *why; /* static text, set on the first failure */
} json_parser_t;

static bool json_fail(json_parser_t *p, const char *why) {
    if (!p->why) p->why = why;
    return false;
}

static void json_ws(json_parser_t *p) {
    while (p->at < p->len && is_space(p->s[p->at])) p->at++;
}

static bool json_lit(json_parser_t *p, const char *word) {
    size_t n = strlen(word);
    if (p->len - p->at < n || memcmp(p->s + p->at, word, n) != 0) return json_fail(p, "unexpected character");
    p->at += n;
    return true;
}

static int json_hex4(json_parser_t *p) {
    if (p->len - p->at < 4) return -1;
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p->s[p->at + i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= c - '0';
        else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
        else return -1;
    }
    p->at += 4;
    return v;
}

static void utf8_put(kiln_buf_t *b, uint32_t cp) {
    char u[4];
    if (cp < 0x80) { u[0] = (char)cp; kiln_buf_putn(b, u, 1); }
    else if (cp < 0x800) { u[0] = (char)(0xC0 | cp >> 6); u[1] = (char)(0x80 | (cp & 63)); kiln_buf_putn(b, u, 2); }
    else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | cp >> 12); u[1] = (char)(0x80 | ((cp >> 6) & 63)); u[2] = (char)(0x80 | (cp & 63));
        kiln_buf_putn(b, u, 3);
    } else {
        u[0] = (char)(0xF0 | cp >> 18); u[1] = (char)(0x80 | ((cp >> 12) & 63));
        u[2] = (char)(0x80 | ((cp >> 6) & 63)); u[3] = (char)(0x80 | (cp & 63));
        kiln_buf_putn(b, u, 4);
    }
}

/* Parses a string literal (at its opening quote) into `out` (malloc'd). */
static bool json_string(json_parser_t *p, char **out, size_t *out_len) {
    kiln_buf_t b = {0};
    p->at++; /* the quote */
    while (1) {
        if (p->at >= p->len) { kiln_buf_free(&b); return json_fail(p, "unterminated string"); }
        size_t start = p->at;
        while (p->at < p->len && p->s[p->at] != '"' && p->s[p->at] != '\\' && (unsigned char)p->s[p->at] >= 0x20) p->at++;
        kiln_buf_putn(&b, p->s + start, p->at - start);
        if (p->at >= p->len) continue;
        char c = p->s[p->at];
        if (c == '"') { p->at++; break; }
        if (c != '\\') { kiln_buf_free(&b); return json_fail(p, "control character in string"); }
        p->at++;
        if (p->at >= p->len) continue;
        char e = p->s[p->at++];
        switch (e) {
        case '"': kiln_buf_putc(&b, '"'); break;
        case '\\': kiln_buf_putc(&b, '\\'); break;
        case '/': kiln_buf_putc(&b, '/'); break;
        case 'b': kiln_buf_putc(&b, '\b'); break;
        case 'f': kiln_buf_putc(&b, '\f'); break;
        case 'n': kiln_buf_putc(&b, '\n'); break;
        case 'r': kiln_buf_putc(&b, '\r'); break;
        case 't': kiln_buf_putc(&b, '\t'); break;
        case 'u': {
            int cp = json_hex4(p);
            if (cp < 0) { kiln_buf_free(&b); return json_fail(p, "bad \\u escape"); }
            if (cp >= 0xD800 && cp < 0xDC00) {
                int lo = -1;
                if (p->len - p->at >= 2 && p->s[p->at] == '\\' && p->s[p->at + 1] == 'u') {
                    p->at += 2;
                    lo = json_hex4(p);
                }
                if (lo < 0xDC00 || lo >= 0xE000) { kiln_buf_free(&b); return json_fail(p, "bad surrogate pair"); }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp < 0xE000) {
                kiln_buf_free(&b);
                return json_fail(p, "bad surrogate pair");
            }
            utf8_put(&b, (uint32_t)cp);
            break;
        }
        default: kiln_buf_free(&b); return json_fail(p, "bad escape");
        }
    }
    *out_len = b.len;
    *out = kiln_buf_take(&b);
    return true;
}

static bool json_number(json_parser_t *p, double *out) {
    size_t start = p->at;
    const char *s = p->s;
#define DIGIT(i) ((i) < p->len && s[i] >= '0' && s[i] <= '9')
    if (p->at < p->len && s[p->at] == '-') p->at++;
    if (!DIGIT(p->at)) return json_fail(p, "bad number");
    if (s[p->at] == '0') p->at++;
    else while (DIGIT(p->at)) p->at++;
    if (p->at < p->len && s[p->at] == '.') {
        p->at++;
        if (!DIGIT(p->at)) return json_fail(p, "bad number");
        while (DIGIT(p->at)) p->at++;
    }
    if (p->at < p->len && (s[p->at] == 'e' || s[p->at] == 'E')) {
        p->at++;
        if (p->at < p->len && (s[p->at] == '+' || s[p->at] == '-')) p->at++;
        if (!DIGIT(p->at)) return json_fail(p, "bad number");
        while (DIGIT(p->at)) p->at++;
    }
#undef DIGIT
    size_t n = p->at - start;
    char tmp[64];
    char *t = n < sizeof tmp ? tmp : kiln_alloc(n + 1);
    memcpy(t, s + start, n);
    t[n] = 0;
    *out = strtod(t, NULL);
    if (t != tmp) free(t);
    return true;
}

static void json_clear(kiln_json_t *j) {
    if (j->type == KILN_JSON_STRING) free(j->string);
    if (j->type == KILN_JSON_ARRAY || j->type == KILN_JSON_OBJECT) {
        for (size_t i = 0; i < j->len; i++) {
            json_clear(&j->items[i]);
            if (j->keys) free(j->keys[i]);
        }
        free(j->items);
        free(j->keys);
    }
    memset(j, 0, sizeof *j);
}

static bool json_value(json_parser_t *p, kiln_json_t *out, int depth);

/* Parses an array or object (at its opening bracket). */
static bool json_container(json_parser_t *p, kiln_json_t *out, int depth, bool object) {
    out->type = object ? KILN_JSON_OBJECT : KILN_JSON_ARRAY;
    if (depth >= JSON_MAX_DEPTH) return json_fail(p, "nested too deep");
    char close = object ? '}' : ']';
    size_t cap = 0;
    p->at++;
    json_ws(p);
    if (p->at < p->len && p->s[p->at] == close) { p->at++; return true; }
    while (1) {
        if (out->len == cap) {
            cap = cap ? cap * 2 : 4;
            out->items = kiln_realloc(out->items, cap * sizeof *out->items);
            if (object) out->keys = kiln_realloc(out->keys, cap * sizeof *out->keys);
        }
        kiln_json_t *item = &out->items[out->len];
        memset(item, 0, sizeof *item);
        if (object) {
            json_ws(p);
            if (p->at >= p->len || p->s[p->at] != '"') return json_fail(p, "expected a string key");
            size_t klen;
            if (!json_string(p, &out->keys[out->len], &klen)) return false;
            out->len++; /* counted now, so a failure below frees the key */
            json_ws(p);
            if (p->at >= p->len || p->s[p->at] != ':') return json_fail(p, "expected `:`");
            p->at++;
        } else {
            out->len++;
        }
        if (!json_value(p, item, depth + 1)) return false;
        json_ws(p);
        if (p->at < p->len && p->s[p->at] == ',') { p->at++; continue; }
        if (p->at < p->len && p->s[p->at] == close) { p->at++; return true; }
        return json_fail(p, object ? "expected `,` or `}`" : "expected `,` or `]`");
    }
}

static bool json_value(json_parser_t *p, kiln_json_t *out, int depth) {
    json_ws(p);
    if (p->at >= p->len) return json_fail(p, "unexpected end");
    char c = p->s[p->at];
    switch (c) {
    case '{': return json_container(p, out, depth, true);
    case '[': return json_container(p, out, depth, false);
    case '"': out->type = KILN_JSON_STRING; return json_string(p, &out->string, &out->string_len);
    case 't': out->type = KILN_JSON_BOOL; out->boolean = true; return json_lit(p, "true");
    case 'f': out->type = KILN_JSON_BOOL; return json_lit(p, "false");
    case 'n': out->type = KILN_JSON_NULL; return json_lit(p, "null");
    default:
        if (c == '-' || (c >= '0' && c <= '9')) { out->type = KILN_JSON_NUMBER; return json_number(p, &out->number); }
        return json_fail(p, "unexpected character");
    }
}

kiln_json_t *kiln_json_parse(const char *text, size_t len, char *why, size_t why_cap) {
    json_parser_t p = {text, len, 0, NULL};
    kiln_json_t *j = kiln_alloc(sizeof *j);
    bool ok = json_value(&p, j, 0);
    if (ok) {
        json_ws(&p);
        if (p.at < p.len) ok = json_fail(&p, "trailing characters");
    }
    if (ok) return j;
    if (why && why_cap) snprintf(why, why_cap, "%s at byte %zu", p.why, p.at);
    kiln_json_free(j);
    return NULL;
}

bool kiln_input_json(const kiln_inputs_t *inputs, const char *name, kiln_json_t **out, kiln_error_t *err) {
    const kiln_string_t *text;
    *out = NULL;
    if (!kiln_input_text(inputs, name, &text, err)) return false;
    char why[96];
    *out = kiln_json_parse((const char *)text->ptr, text->len, why, sizeof why);
    if (!*out) return kiln_error_invalid_input(err, "input `%s` is not valid JSON: %s", name, why);
    return true;
}

const kiln_json_t *kiln_json_get(const kiln_json_t *obj, const char *key) {
    if (!obj || obj->type != KILN_JSON_OBJECT) return NULL;
    for (size_t i = obj->len; i-- > 0;)
        if (strcmp(obj->keys[i], key) == 0) return &obj->items[i];
    return NULL;
}

const kiln_json_t *kiln_json_at(const kiln_json_t *j, size_t i) {
    if (!j || (j->type != KILN_JSON_ARRAY && j->type != KILN_JSON_OBJECT) || i >= j->len) return NULL;
    return &j->items[i];
}

const char *kiln_json_type_name(kiln_json_type_t type) {
    switch (type) {
    case KILN_JSON_NULL: return "null";
    case KILN_JSON_BOOL: return "a boolean";
    case KILN_JSON_NUMBER: return "a number";
    case KILN_JSON_STRING: return "a string";
    case KILN_JSON_ARRAY: return "an array";
    case KILN_JSON_OBJECT: return "an object";
    default: return "unknown";
    }
}

void kiln_json_free(kiln_json_t *j) {
    if (!j) return;
    json_clear(j);
    free(j);
}

/* ------------------------------------------------------------------------------------ */
/* The exports: the generated bindings call these; they call the plugin's callbacks     */
/* ------------------------------------------------------------------------------------ */

/* After a callback: a failure always carries a message, a success none, and a failed
 * callback's partial outputs are dropped. */
static void settle(bool ok, kiln_error_t *err) {
    if (ok) kiln_string_free(&err->message);
    else if (err->message.len == 0) kiln_error_internal(err, "the plugin failed without saying why");
}

#define DESCRIBE_EXPORT(fn, type)                                                          \
    void fn(type *ret) {                                                                   \
        memset(ret, 0, sizeof *ret);                                                       \
        kiln_describe(ret);                                                                \
    }

#if defined(KILN_WORLD_STEP)
DESCRIBE_EXPORT(exports_kiln_plugin_step_describe, exports_kiln_plugin_step_descriptor_t)

bool exports_kiln_plugin_step_run(exports_kiln_plugin_step_list_named_value_t *inputs,
                                  exports_kiln_plugin_step_config_t *config,
                                  exports_kiln_plugin_step_list_named_value_t *ret,
                                  exports_kiln_plugin_step_error_t *err) {
    kiln_inputs_t in = {inputs->ptr, inputs->len};
    kiln_config_t cfg = config_from(config);
    kiln_outputs_t out = {0};
    memset(err, 0, sizeof *err);
    bool ok = kiln_run(&in, &cfg, &out, err);
    settle(ok, err);
    if (!ok) outputs_free(&out);
    ret->ptr = out.ptr;
    ret->len = out.len;
    config_release(&cfg);
    exports_kiln_plugin_step_list_named_value_free(inputs);
    exports_kiln_plugin_step_config_free(config);
    return ok;
}
#endif

#if defined(KILN_WORLD_VALIDATOR)
DESCRIBE_EXPORT(exports_kiln_plugin_validator_describe, exports_kiln_plugin_validator_descriptor_t)

bool exports_kiln_plugin_validator_validate(exports_kiln_plugin_validator_list_named_value_t *inputs,
                                            exports_kiln_plugin_validator_config_t *config,
                                            exports_kiln_plugin_validator_list_check_t *ret,
                                            exports_kiln_plugin_validator_error_t *err) {
    kiln_inputs_t in = {inputs->ptr, inputs->len};
    kiln_config_t cfg = config_from(config);
    kiln_checks_t checks = {0};
    memset(err, 0, sizeof *err);
    bool ok = kiln_validate(&in, &cfg, &checks, err);
    settle(ok, err);
    if (!ok) {
        for (size_t i = 0; i < checks.len; i++) kiln_plugin_types_check_free(&checks.ptr[i]);
        free(checks.ptr);
        checks.ptr = NULL;
        checks.len = 0;
    }
    ret->ptr = checks.ptr;
    ret->len = checks.len;
    config_release(&cfg);
    exports_kiln_plugin_validator_list_named_value_free(inputs);
    exports_kiln_plugin_validator_config_free(config);
    return ok;
}
#endif

#if defined(KILN_WORLD_MODEL_RUNNER)
DESCRIBE_EXPORT(exports_kiln_plugin_model_runner_describe, exports_kiln_plugin_model_runner_descriptor_t)

/* The resource's representation: the plugin's own model. */
struct exports_kiln_plugin_model_runner_model_t {
    kiln_model_t *model;
};

bool exports_kiln_plugin_model_runner_static_model_load(kiln_list_u8_t *artifact,
                                                        exports_kiln_plugin_model_runner_config_t *config,
                                                        exports_kiln_plugin_model_runner_own_model_t *ret,
                                                        exports_kiln_plugin_model_runner_error_t *err) {
    kiln_config_t cfg = config_from(config);
    kiln_model_t *model = NULL;
    memset(err, 0, sizeof *err);
    bool ok = kiln_model_load(artifact->ptr, artifact->len, &cfg, &model, err);
    settle(ok, err);
    if (ok) {
        exports_kiln_plugin_model_runner_model_t *rep = kiln_alloc(sizeof *rep);
        rep->model = model;
        *ret = exports_kiln_plugin_model_runner_model_new(rep);
    }
    config_release(&cfg);
    KILN_W_(list_u8_free)(artifact);
    exports_kiln_plugin_model_runner_config_free(config);
    return ok;
}

void exports_kiln_plugin_model_runner_method_model_metadata(exports_kiln_plugin_model_runner_borrow_model_t self,
                                                            exports_kiln_plugin_model_runner_model_metadata_t *ret) {
    memset(ret, 0, sizeof *ret);
    kiln_model_metadata(self->model, ret);
}

bool exports_kiln_plugin_model_runner_method_model_predict(exports_kiln_plugin_model_runner_borrow_model_t self,
                                                           exports_kiln_plugin_model_runner_list_named_value_t *inputs,
                                                           exports_kiln_plugin_model_runner_list_named_value_t *ret,
                                                           exports_kiln_plugin_model_runner_error_t *err) {
    kiln_inputs_t in = {inputs->ptr, inputs->len};
    kiln_outputs_t out = {0};
    memset(err, 0, sizeof *err);
    bool ok = kiln_model_predict(self->model, &in, &out, err);
    settle(ok, err);
    if (!ok) outputs_free(&out);
    ret->ptr = out.ptr;
    ret->len = out.len;
    exports_kiln_plugin_model_runner_list_named_value_free(inputs);
    return ok;
}

void exports_kiln_plugin_model_runner_model_destructor(exports_kiln_plugin_model_runner_model_t *rep) {
    if (rep->model) kiln_model_drop(rep->model);
    free(rep);
}
#endif

#if defined(KILN_WORLD_TRACKER)
DESCRIBE_EXPORT(exports_kiln_plugin_tracker_describe, exports_kiln_plugin_tracker_descriptor_t)

bool exports_kiln_plugin_tracker_on_events(kiln_string_t *run_id, exports_kiln_plugin_tracker_list_event_t *events,
                                           exports_kiln_plugin_tracker_config_t *config,
                                           exports_kiln_plugin_tracker_error_t *err) {
    char *id = kiln_str_cstr(run_id);
    kiln_config_t cfg = config_from(config);
    memset(err, 0, sizeof *err);
    bool ok = kiln_on_events(id, events->ptr, events->len, &cfg, err);
    settle(ok, err);
    free(id);
    config_release(&cfg);
    kiln_string_free(run_id);
    exports_kiln_plugin_tracker_list_event_free(events);
    exports_kiln_plugin_tracker_config_free(config);
    return ok;
}
#endif
