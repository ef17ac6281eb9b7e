/*
 * quantile-bin: equal-frequency binning of numeric columns.
 *
 * Each chosen float64 or int64 column becomes an int64 column of bin indices. The cut
 * points are values of the column at the k/bins quantiles (k = 1 .. bins-1, the smallest
 * value with at least that share of rows at or below it), so every bin holds about as
 * many rows. Bin i holds the values in (cut[i-1], cut[i]]: bin 0 everything up to the
 * first cut, the last bin everything above the last. Repeated cut points (ties, constant
 * columns) collapse, and a cut at the column's maximum is dropped, so on the rows it was
 * fitted on every bin is used and none is empty; a constant column is all bin 0.
 *
 * Missing values, NaN and infinities stay missing. The cut points are output as JSON,
 * `{"column": [cuts...]}`; given them back as the `edges` input, the step fits nothing and
 * bins with those cuts instead: fit on the training rows, then bin the test rows the same
 * way. Each column is sorted once (a radix sort), then every row found by binary search.
 */
#include <math.h>
#include <string.h>

#include "kiln.h"

void kiln_describe(kiln_descriptor_t *d) {
    kiln_descriptor_init(d, "quantile-bin", "Bins numeric columns into equal-frequency (quantile) bins");
    kiln_descriptor_input(d, "table", KILN_KIND_TABLE, "the table");
    kiln_descriptor_optional_input(d, "edges", KILN_KIND_JSON,
                                   "cut points to apply instead of fitting (an `edges` output)");
    kiln_descriptor_output(d, "table", KILN_KIND_TABLE, "the table with the chosen columns as int64 bin indices");
    kiln_descriptor_output(d, "edges", KILN_KIND_JSON, "each column's cut points, {\"column\": [cuts...]}");
    kiln_descriptor_config(d, "columns", NULL,
                           "columns to bin, comma-separated (default: every float64 and int64 column, or those "
                           "`edges` names)");
    kiln_descriptor_config(d, "bins", "4", "how many bins, 2 to 256");
    kiln_descriptor_config(d, "suffix", NULL,
                           "add the bins as a new column named column+suffix (default: replace the column)");
}

/* The cut points of one column. */
typedef struct {
    char *column;
    double *cuts;
    size_t len;
} cuts_t;

typedef struct {
    cuts_t *ptr;
    size_t len;
} edges_t;

static void edges_free(edges_t *e) {
    for (size_t i = 0; i < e->len; i++) {
        free(e->ptr[i].column);
        free(e->ptr[i].cuts);
    }
    free(e->ptr);
    e->ptr = NULL;
    e->len = 0;
}

static const cuts_t *edges_find(const edges_t *e, const char *column) {
    for (size_t i = 0; i < e->len; i++)
        if (strcmp(e->ptr[i].column, column) == 0) return &e->ptr[i];
    return NULL;
}

/* Reads the `edges` input: an object of ascending arrays of finite numbers. */
static bool read_edges(const kiln_inputs_t *inputs, edges_t *out, kiln_error_t *err) {
    kiln_json_t *doc;
    if (!kiln_input_json(inputs, "edges", &doc, err)) return false;
    bool ok = true;
    if (doc->type != KILN_JSON_OBJECT) {
        ok = kiln_error_invalid_input(err, "`edges` must be an object of cut points, {\"column\": [cuts...]}; got %s",
                                      kiln_json_type_name(doc->type));
    }
    out->ptr = ok ? kiln_alloc_array(doc->len, sizeof(cuts_t)) : NULL;
    for (size_t i = 0; ok && i < doc->len; i++) {
        const char *column = doc->keys[i];
        const kiln_json_t *list = &doc->items[i];
        if (edges_find(out, column)) {
            ok = kiln_error_invalid_input(err, "`edges` names column `%s` twice", column);
            break;
        }
        if (list->type != KILN_JSON_ARRAY) {
            ok = kiln_error_invalid_input(err, "`edges` for column `%s` must be an array of numbers, got %s", column,
                                          kiln_json_type_name(list->type));
            break;
        }
        cuts_t *c = &out->ptr[out->len++];
        c->column = kiln_strdup(column);
        c->cuts = kiln_alloc_array(list->len, sizeof(double));
        for (size_t k = 0; k < list->len; k++) {
            const kiln_json_t *x = &list->items[k];
            if (x->type != KILN_JSON_NUMBER || !isfinite(x->number)) {
                ok = kiln_error_invalid_input(err, "`edges` for column `%s`: item %zu is not a finite number", column, k);
                break;
            }
            if (k > 0 && !(x->number > c->cuts[k - 1])) {
                ok = kiln_error_invalid_input(err, "`edges` for column `%s` are not strictly ascending at item %zu",
                                              column, k);
                break;
            }
            c->cuts[c->len++] = x->number;
        }
    }
    kiln_json_free(doc);
    if (!ok) edges_free(out);
    return ok;
}

/* A double's order-preserving key: as unsigned integers, keys sort as the numbers do
 * (no NaN; -0 counts as +0). */
static uint64_t key_of(double x) {
    x += 0.0; /* -0 becomes +0 */
    uint64_t b;
    memcpy(&b, &x, 8);
    return (b >> 63) ? ~b : b | (UINT64_C(1) << 63);
}

static double double_of(uint64_t key) {
    uint64_t b = (key >> 63) ? key & ~(UINT64_C(1) << 63) : ~key;
    double x;
    memcpy(&x, &b, 8);
    return x;
}

/* Sorts n keys: an LSD radix sort, one byte a pass, skipping the bytes all keys share.
 * `tmp` has room for n; returns whichever of the two buffers holds the result. */
static uint64_t *sort_keys(uint64_t *keys, uint64_t *tmp, size_t n) {
    static size_t counts[8][256];
    memset(counts, 0, sizeof counts);
    for (size_t i = 0; i < n; i++)
        for (int d = 0; d < 8; d++) counts[d][(keys[i] >> (8 * d)) & 255]++;
    uint64_t *src = keys, *dst = tmp;
    for (int d = 0; d < 8; d++) {
        size_t *c = counts[d];
        if (n == 0 || c[(src[0] >> (8 * d)) & 255] == n) continue; /* every key has this byte */
        size_t sum = 0;
        for (int i = 0; i < 256; i++) {
            size_t k = c[i];
            c[i] = sum;
            sum += k;
        }
        for (size_t i = 0; i < n; i++) dst[c[(src[i] >> (8 * d)) & 255]++] = src[i];
        uint64_t *t = src;
        src = dst;
        dst = t;
    }
    return src;
}

/* The cut points of n sorted keys for `bins` equal-frequency bins: at most bins-1,
 * strictly ascending, all below the maximum. Returns how many were written to `cuts`. */
static size_t fit_cuts(const uint64_t *sorted, size_t n, int bins, double *cuts) {
    size_t len = 0;
    if (n == 0) return 0;
    for (uint64_t k = 1; k < (uint64_t)bins; k++) {
        uint64_t rank = (k * n + (uint64_t)bins - 1) / (uint64_t)bins; /* ceil(k n / bins), 1-based */
        double c = double_of(sorted[rank - 1]);
        if (len == 0 || c > cuts[len - 1]) cuts[len++] = c;
    }
    if (len > 0 && cuts[len - 1] >= double_of(sorted[n - 1])) len--;
    return len;
}

/* The bin of x: how many cuts lie below it. */
static int64_t bin_of(double x, const double *cuts, size_t len) {
    size_t lo = 0, hi = len;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cuts[mid] < x) lo = mid + 1;
        else hi = mid;
    }
    return (int64_t)lo;
}

/* Bins one column into the int64 column `out`, called `name`. With `given` NULL, fits
 * the cuts first, into `fitted` (room for bins-1); else applies `given`. */
static void bin_column(const kiln_column_t *col, const char *name, int bins, const cuts_t *given, cuts_t *fitted,
                       kiln_column_t *out, size_t *missing_out) {
    size_t n = kiln_column_len(col);
    double *x = kiln_alloc_array(n, sizeof(double));
    bool *valid = kiln_alloc_array(n, sizeof(bool));
    size_t present = 0;
    for (size_t i = 0; i < n; i++) {
        double v = col->data.tag == KILN_COL_FLOAT64 ? col->data.val.float64.ptr[i] : (double)col->data.val.int64.ptr[i];
        valid[i] = kiln_column_is_valid(col, i) && isfinite(v);
        x[i] = v;
        present += valid[i];
    }

    const double *cuts;
    size_t ncuts;
    if (given) {
        cuts = given->cuts;
        ncuts = given->len;
    } else {
        uint64_t *keys = kiln_alloc_array(present, sizeof(uint64_t));
        uint64_t *tmp = kiln_alloc_array(present, sizeof(uint64_t));
        for (size_t i = 0, j = 0; i < n; i++)
            if (valid[i]) keys[j++] = key_of(x[i]);
        fitted->len = fit_cuts(sort_keys(keys, tmp, present), present, bins, fitted->cuts);
        free(keys);
        free(tmp);
        cuts = fitted->cuts;
        ncuts = fitted->len;
    }

    int64_t *binned = kiln_alloc_array(n, sizeof(int64_t));
    for (size_t i = 0; i < n; i++) binned[i] = valid[i] ? bin_of(x[i], cuts, ncuts) : 0;
    free(x);
    *missing_out = n - present;
    if (present == n) {
        free(valid);
        valid = NULL;
    }
    kiln_column_adopt_i64(out, name, binned, valid, n);
}

static bool is_binnable(const kiln_column_t *c) {
    return c->data.tag == KILN_COL_FLOAT64 || c->data.tag == KILN_COL_INT64;
}

/* The columns to bin, checked: named ones must exist and be float64 or int64. */
static bool choose_columns(const kiln_table_t *table, const kiln_config_t *config, const edges_t *given, bool applying,
                           kiln_strs_t *out, kiln_error_t *err) {
    kiln_strs_t asked = kiln_config_list(config, "columns");
    bool ok = true;
    if (asked.len > 0) {
        for (size_t i = 0; i < asked.len; i++)
            if (!kiln_strs_contains(out, asked.ptr[i])) kiln_strs_push(out, asked.ptr[i]);
    } else {
        /* In the table's order: every float64 and int64 column, or every column `edges`
         * names (each of which must then be in the table). */
        for (size_t i = 0; i < table->columns.len; i++) {
            char *name = kiln_str_cstr(&table->columns.ptr[i].name);
            bool wanted = applying ? edges_find(given, name) != NULL : is_binnable(&table->columns.ptr[i]);
            if (wanted && !kiln_strs_contains(out, name)) kiln_strs_push(out, name);
            free(name);
        }
        for (size_t i = 0; applying && ok && i < given->len; i++) {
            const kiln_column_t *col;
            if (!kiln_table_require(table, given->ptr[i].column, &col, err)) ok = kiln_error_prefix(err, "`edges`: ");
        }
        if (ok && !applying && out->len == 0) {
            char *names = kiln_table_names(table);
            ok = kiln_error_invalid_input(err, "no float64 or int64 columns to bin; the table has %s",
                                          *names ? names : "no columns");
            free(names);
        }
    }
    kiln_strs_free(&asked);
    for (size_t i = 0; ok && i < out->len; i++) {
        const kiln_column_t *col;
        if (!kiln_table_require(table, out->ptr[i], &col, err)) {
            ok = false;
        } else if (!is_binnable(col)) {
            ok = kiln_error_invalid_input(err, "column `%s` is %s; quantile-bin bins float64 and int64 columns",
                                          out->ptr[i], kiln_column_type_name(col));
        } else if (applying && !edges_find(given, out->ptr[i])) {
            ok = kiln_error_invalid_input(err, "`edges` has no cut points for column `%s`", out->ptr[i]);
        }
    }
    if (ok && applying && out->len == 0) ok = kiln_error_invalid_input(err, "`edges` names no columns");
    if (!ok) kiln_strs_free(out);
    return ok;
}

bool kiln_run(kiln_inputs_t *inputs, const kiln_config_t *config, kiln_outputs_t *outputs, kiln_error_t *err) {
    int64_t bins;
    if (!kiln_config_int_range(config, "bins", 4, 2, 256, &bins, err)) return false;
    const char *suffix = kiln_config_string(config, "suffix", "");

    const kiln_table_t *view;
    if (!kiln_input_table(inputs, "table", &view, err)) return false;
    edges_t given = {0};
    bool applying = kiln_input(inputs, "edges") != NULL;
    if (applying && !read_edges(inputs, &given, err)) return false;

    kiln_strs_t columns = {0};
    if (!choose_columns(view, config, &given, applying, &columns, err)) {
        edges_free(&given);
        return false;
    }
    if (*suffix) {
        for (size_t i = 0; i < columns.len; i++) {
            char *name = kiln_format("%s%s", columns.ptr[i], suffix);
            bool taken = kiln_table_column(view, name) != NULL;
            for (size_t j = 0; j < columns.len && !taken; j++) taken = strcmp(columns.ptr[j], name) == 0;
            if (taken) {
                kiln_error_invalid_config(err, "suffix `%s`: column `%s` exists already", suffix, name);
                free(name);
                kiln_strs_free(&columns);
                edges_free(&given);
                return false;
            }
            free(name);
        }
    }

    /* Everything is checked: take the table and change it in place. */
    kiln_table_t table;
    kiln_input_take_table(inputs, "table", &table, err);
    kiln_buf_t json = {0};
    kiln_buf_putc(&json, '{');
    double *cuts = kiln_alloc_array((size_t)bins, sizeof(double));
    size_t missing_total = 0;
    for (size_t i = 0; i < columns.len; i++) {
        const char *name = columns.ptr[i];
        size_t index = (size_t)kiln_table_index(&table, name);
        cuts_t fitted = {NULL, cuts, 0};
        const cuts_t *used = applying ? edges_find(&given, name) : &fitted;
        char *out_name = *suffix ? kiln_format("%s%s", name, suffix) : kiln_strdup(name);
        kiln_column_t binned;
        size_t missing;
        bin_column(&table.columns.ptr[index], out_name, (int)bins, applying ? used : NULL, &fitted, &binned, &missing);
        free(out_name);
        missing_total += missing;
        if (*suffix) kiln_table_push(&table, &binned);
        else kiln_table_set(&table, index, &binned);

        if (i) kiln_buf_putc(&json, ',');
        kiln_buf_json_string(&json, name);
        kiln_buf_putc(&json, ':');
        kiln_buf_putc(&json, '[');
        for (size_t k = 0; k < used->len; k++) {
            if (k) kiln_buf_putc(&json, ',');
            kiln_buf_json_number(&json, used->cuts[k]);
        }
        kiln_buf_putc(&json, ']');
    }
    kiln_buf_putc(&json, '}');
    if (applying)
        kiln_log_info("binned %zu columns with the given edges (%zu values missing)", columns.len, missing_total);
    else
        kiln_log_info("fitted and binned %zu columns into up to %lld bins (%zu values missing)", columns.len,
                      (long long)bins, missing_total);

    free(cuts);
    kiln_strs_free(&columns);
    edges_free(&given);
    kiln_output_table(outputs, "table", &table);
    kiln_output_json_buf(outputs, "edges", &json);
    return true;
}
