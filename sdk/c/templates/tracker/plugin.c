/* {{name}}: {{description}} */
#include "kiln.h"

void kiln_describe(kiln_descriptor_t *d) {
    kiln_descriptor_init(d, "{{name}}", "{{description}}");
    kiln_descriptor_config(d, "prefix", "", "text put before every logged line");
}

bool kiln_on_events(const char *run_id, const kiln_event_t *events, size_t count, const kiln_config_t *config,
                    kiln_error_t *err) {
    (void)err;
    const char *prefix = kiln_config_string(config, "prefix", "");
    for (size_t i = 0; i < count; i++) {
        const kiln_event_t *e = &events[i];
        switch (e->tag) {
        case KILN_EVENT_METRIC:
            kiln_log_info("%s%s: %.*s = %g at step %llu", prefix, run_id, KILN_STR(e->val.metric.key),
                          e->val.metric.value, (unsigned long long)e->val.metric.step);
            break;
        case KILN_EVENT_PARAM:
            kiln_log_info("%s%s: param %.*s = %.*s", prefix, run_id, KILN_STR(e->val.param.f0),
                          KILN_STR(e->val.param.f1));
            break;
        case KILN_EVENT_RUN_FINISHED:
            kiln_log_info("%s%s: finished (%.*s)", prefix, run_id, KILN_STR(e->val.run_finished));
            break;
        default:
            break;
        }
    }
    return true;
}
