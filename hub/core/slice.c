/* Byte slices and the growable buffer. */
#include "hub/core.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

hub_slice hub_slice_cstr(const char *s) {
    return (hub_slice){s, s ? strlen(s) : 0};
}

bool hub_slice_eq(hub_slice a, hub_slice b) {
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

bool hub_slice_eq_cstr(hub_slice a, const char *s) {
    return hub_slice_eq(a, hub_slice_cstr(s));
}

bool hub_slice_eq_nocase(hub_slice a, const char *s) {
    size_t n = strlen(s);
    return a.n == n && (n == 0 || strncasecmp(a.p, s, n) == 0);
}

void hub_buf_init(hub_buf *b) {
    b->p = NULL;
    b->n = b->cap = 0;
}

hub_status hub_buf_reserve(hub_buf *b, size_t extra) {
    if (b->cap - b->n > extra) return HUB_OK; /* keeps room for a NUL */
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->n <= extra) {
        if (cap > SIZE_MAX / 2) return HUB_E_NOMEM;
        cap *= 2;
    }
    char *p = hub_realloc(b->p, cap);
    if (p == NULL) return HUB_E_NOMEM;
    b->p = p;
    b->cap = cap;
    return HUB_OK;
}

hub_status hub_buf_append(hub_buf *b, const void *p, size_t n) {
    if (hub_buf_reserve(b, n) != HUB_OK) return HUB_E_NOMEM;
    if (n) memcpy(b->p + b->n, p, n);
    b->n += n;
    b->p[b->n] = '\0';
    return HUB_OK;
}

hub_status hub_buf_append_cstr(hub_buf *b, const char *s) {
    return hub_buf_append(b, s, strlen(s));
}

/* Formats into the room left first: most calls fit, and then the text is
 * formatted once, not measured and formatted. */
hub_status hub_buf_printf(hub_buf *b, const char *fmt, ...) {
    va_list ap;
    size_t room = b->cap - b->n;
    va_start(ap, fmt);
    int need = vsnprintf(room ? b->p + b->n : NULL, room, fmt, ap);
    va_end(ap);
    if (need < 0) {
        if (room) b->p[b->n] = '\0';
        return HUB_E_ARG;
    }
    if ((size_t)need < room) {
        b->n += (size_t)need;
        return HUB_OK;
    }
    if (room) b->p[b->n] = '\0'; /* what did not fit is not kept */
    if (hub_buf_reserve(b, (size_t)need) != HUB_OK) return HUB_E_NOMEM;
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, (size_t)need + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)need;
    return HUB_OK;
}

void hub_buf_consume(hub_buf *b, size_t n) {
    if (n >= b->n) {
        b->n = 0;
    } else {
        memmove(b->p, b->p + n, b->n - n);
        b->n -= n;
    }
    if (b->p) b->p[b->n] = '\0';
}

void hub_buf_release(hub_buf *b) {
    hub_free(b->p);
    hub_buf_init(b);
}
