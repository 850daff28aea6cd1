/* Process-wide metrics in Prometheus text format. A fixed table: metrics are
 * registered at start-up and never removed, so readers need no lock. */
#include "hub/core.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#define MAX_METRICS 256

struct hub_metric {
    hub_metric_kind kind;
    const char *name;
    const char *help;
    char labels[96];
    atomic_llong value;
};

static hub_metric metrics[MAX_METRICS];
static atomic_int metric_count;
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;

hub_metric *hub_metric_get(hub_metric_kind kind, const char *name,
                           const char *labels, const char *help) {
    const char *lb = labels ? labels : "";
    pthread_mutex_lock(&reg_lock);
    int n = atomic_load(&metric_count);
    for (int i = 0; i < n; i++) {
        if (strcmp(metrics[i].name, name) == 0 &&
            strcmp(metrics[i].labels, lb) == 0) {
            pthread_mutex_unlock(&reg_lock);
            return &metrics[i];
        }
    }
    hub_metric *m = NULL;
    if (n < MAX_METRICS) {
        m = &metrics[n];
        m->kind = kind;
        m->name = name;
        m->help = help;
        strncpy(m->labels, lb, sizeof m->labels - 1);
        m->labels[sizeof m->labels - 1] = '\0';
        atomic_store(&m->value, 0);
        atomic_store(&metric_count, n + 1);
    }
    pthread_mutex_unlock(&reg_lock);
    return m;
}

void hub_metric_add(hub_metric *m, int64_t v) {
    if (m) atomic_fetch_add_explicit(&m->value, v, memory_order_relaxed);
}

void hub_metric_set(hub_metric *m, int64_t v) {
    if (m) atomic_store_explicit(&m->value, v, memory_order_relaxed);
}

int64_t hub_metric_value(const hub_metric *m) {
    return m ? atomic_load_explicit(&((hub_metric *)m)->value,
                                    memory_order_relaxed)
             : 0;
}

hub_status hub_metrics_render(hub_buf *out) {
    int n = atomic_load(&metric_count);
    for (int i = 0; i < n; i++) {
        const hub_metric *m = &metrics[i];
        bool first = true;
        for (int j = 0; j < i; j++)
            if (strcmp(metrics[j].name, m->name) == 0) first = false;
        if (first) {
            if (hub_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", m->name,
                               m->help, m->name,
                               m->kind == HUB_METRIC_COUNTER ? "counter"
                                                             : "gauge") != HUB_OK)
                return HUB_E_NOMEM;
        }
        /* Samples of one name must be contiguous; print all of them now. */
        if (!first) continue;
        for (int j = i; j < n; j++) {
            const hub_metric *s = &metrics[j];
            if (strcmp(s->name, m->name) != 0) continue;
            if (hub_buf_printf(out, s->labels[0] ? "%s{%s} %lld\n" : "%s%s %lld\n",
                               s->name, s->labels,
                               (long long)hub_metric_value(s)) != HUB_OK)
                return HUB_E_NOMEM;
        }
    }
    return HUB_OK;
}
