/* Status names and the error value. */
#include "hub/core.h"

#include <stdio.h>
#include <string.h>

static const char *const status_names[] = {
#define HUB__NAME(name, text) #name,
    HUB_STATUS_LIST(HUB__NAME)
#undef HUB__NAME
};

static const char *const status_texts[] = {
#define HUB__TEXT(name, text) text,
    HUB_STATUS_LIST(HUB__TEXT)
#undef HUB__TEXT
};

const char *hub_status_name(hub_status s) {
    if ((unsigned)s >= HUB__STATUS_COUNT) return "?";
    return status_names[s];
}

const char *hub_status_text(hub_status s) {
    if ((unsigned)s >= HUB__STATUS_COUNT) return "?";
    return status_texts[s];
}

hub_status hub_err_set(hub_err *e, hub_status code, const char *where,
                       const char *fmt, ...) {
    if (e == NULL) return code;
    e->code = code;
    snprintf(e->where, sizeof e->where, "%s", where ? where : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return code;
}

void hub_err_clear(hub_err *e) {
    if (e == NULL) return;
    e->code = HUB_OK;
    e->where[0] = '\0';
    e->msg[0] = '\0';
}
