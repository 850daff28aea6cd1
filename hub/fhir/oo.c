/* OperationOutcome: issues collected while parsing or validating, rendered
 * as the FHIR resource. */
#include "internal.h"

#include <stdio.h>
#include <string.h>

/* A hostile resource can produce an issue per element; past this many the
 * outcome keeps counting but lists no more (one note says how many). */
#define MAX_ISSUES 100

struct hub_oo {
    json_t *issues;
    size_t count[4]; /* per severity, listed or not */
    size_t dropped;
};

static const char *const SEV[4] = {"fatal", "error", "warning", "information"};

hub_oo *hub_oo_new(void) {
    hub_oo *oo = hub_calloc(1, sizeof *oo);
    if (!oo) return NULL;
    oo->issues = json_array();
    if (!oo->issues) {
        hub_free(oo);
        return NULL;
    }
    return oo;
}

void hub_oo_free(hub_oo *oo) {
    if (!oo) return;
    json_decref(oo->issues);
    hub_free(oo);
}

void hub_oo_add(hub_oo *oo, hub_oo_severity sev, const char *code,
                const char *expression, const char *fmt, ...) {
    if (!oo || (unsigned)sev > HUB_OO_INFORMATION) return;
    oo->count[sev]++;
    if (json_array_size(oo->issues) >= MAX_ISSUES) {
        oo->dropped++;
        return;
    }
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *is = json_object();
    if (!is) return;
    json_object_set_new(is, "severity", json_string(SEV[sev]));
    json_object_set_new(is, "code", json_string(code ? code : "processing"));
    json_object_set_new(is, "diagnostics", json_string(msg));
    if (expression && *expression) {
        json_t *ex = json_array();
        json_array_append_new(ex, json_string(expression));
        json_object_set_new(is, "expression", ex);
    }
    json_array_append_new(oo->issues, is);
}

size_t hub_oo_count(const hub_oo *oo, hub_oo_severity worst) {
    if (!oo) return 0;
    size_t n = 0;
    for (int s = 0; s <= (int)worst && s < 4; s++) n += oo->count[s];
    return n;
}

json_t *hub_oo_json(const hub_oo *oo) {
    json_t *r = json_object();
    if (!r) return NULL;
    json_object_set_new(r, "resourceType", json_string("OperationOutcome"));
    json_t *issues = oo ? json_deep_copy(oo->issues) : json_array();
    if (!issues) {
        json_decref(r);
        return NULL;
    }
    if (json_array_size(issues) == 0) {
        json_t *ok = json_object();
        json_object_set_new(ok, "severity", json_string("information"));
        json_object_set_new(ok, "code", json_string("informational"));
        json_object_set_new(ok, "diagnostics", json_string("All OK"));
        json_array_append_new(issues, ok);
    } else if (oo->dropped) {
        json_t *more = json_object();
        char msg[96];
        snprintf(msg, sizeof msg, "%zu more issues not listed", oo->dropped);
        json_object_set_new(more, "severity", json_string("information"));
        json_object_set_new(more, "code", json_string("too-costly"));
        json_object_set_new(more, "diagnostics", json_string(msg));
        json_array_append_new(issues, more);
    }
    json_object_set_new(r, "issue", issues);
    return r;
}
