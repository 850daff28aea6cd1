/* The MLLP framer: sans-I/O, resumes where it stopped, scans with memchr.
 * See include/hub/mllp.h for the buffer contract. */
#include "hub/mllp.h"

#include "hub/limits.h"

#include <string.h>

enum { OUTSIDE = 0, INSIDE = 1, DISCARD = 2 };

void hub_mllp_reader_init(hub_mllp_reader *r, size_t max_frame) {
    memset(r, 0, sizeof *r);
    r->max_frame = max_frame;
}

bool hub_mllp_reader_idle(const hub_mllp_reader *r) {
    return r->state == OUTSIDE;
}

static hub_slice prefix_of(hub_slice in, size_t st, size_t end) {
    size_t n = end - st;
    if (n > HUB_MLLP_OVERSIZE_PREFIX) n = HUB_MLLP_OVERSIZE_PREFIX;
    return hub_slice_of(in.p + st, n);
}

hub_status hub_mllp_next(hub_mllp_reader *r, hub_slice in, hub_slice *frame,
                         hub_err *err) {
    size_t max = r->max_frame ? r->max_frame : HUB_MAX_FRAME;
    size_t pos = r->scan; /* where scanning resumes */
    size_t drop = 0;      /* bytes the caller may drop when we return */
    size_t st = 0;        /* payload start while INSIDE */
    *frame = hub_slice_of(in.p, 0);
    r->consumed = 0;
    if (pos > in.n) {
        /* The caller broke the contract (shrank the buffer); start over
         * rather than read out of bounds. */
        r->scan = 0;
        r->state = OUTSIDE;
        return hub_err_set(err, HUB_E_ARG, "mllp", "input shorter than the saved offset");
    }
    for (;;) {
        if (r->state == OUTSIDE) {
            const char *sb = pos < in.n ? memchr(in.p + pos, HUB_MLLP_SB, in.n - pos) : NULL;
            if (sb == NULL) {
                r->skipped += in.n - pos;
                r->consumed = in.n;
                r->scan = 0;
                return HUB_AGAIN;
            }
            size_t at = (size_t)(sb - in.p);
            r->skipped += at - pos;
            st = at + 1;
            drop = st;
            pos = st;
            r->state = INSIDE;
        }
        if (r->state == INSIDE) {
            for (;;) {
                const char *eb = pos < in.n ? memchr(in.p + pos, HUB_MLLP_EB, in.n - pos) : NULL;
                if (eb == NULL) {
                    if (in.n - st > max) {
                        *frame = prefix_of(in, st, in.n);
                        r->oversize_total = in.n - st;
                        r->consumed = in.n;
                        r->scan = 0;
                        r->state = DISCARD;
                        return hub_err_set(err, HUB_E_LIMIT, "mllp",
                                           "frame over %zu bytes", max);
                    }
                    r->consumed = drop;
                    r->scan = in.n - drop;
                    return HUB_AGAIN;
                }
                size_t e = (size_t)(eb - in.p);
                if (e + 1 >= in.n) { /* 0x1C is the last byte: need the next one */
                    if (e - st > max) {
                        *frame = prefix_of(in, st, e);
                        r->oversize_total = e - st;
                        r->consumed = e; /* keep the 0x1C for DISCARD */
                        r->scan = 0;
                        r->state = DISCARD;
                        return hub_err_set(err, HUB_E_LIMIT, "mllp",
                                           "frame over %zu bytes", max);
                    }
                    r->consumed = drop;
                    r->scan = e - drop;
                    return HUB_AGAIN;
                }
                if (in.p[e + 1] == HUB_MLLP_CR) {
                    r->consumed = e + 2;
                    r->scan = 0;
                    r->state = OUTSIDE;
                    if (e - st > max) {
                        *frame = prefix_of(in, st, e);
                        r->oversize_total = e - st;
                        return hub_err_set(err, HUB_E_LIMIT, "mllp",
                                           "frame over %zu bytes", max);
                    }
                    *frame = hub_slice_of(in.p + st, e - st);
                    r->frames++;
                    return HUB_OK;
                }
                pos = e + 1; /* 0x1C inside the payload */
            }
        }
        /* DISCARD: drop the rest of an oversize frame up to 0x1C 0x0D. */
        for (;;) {
            const char *eb = pos < in.n ? memchr(in.p + pos, HUB_MLLP_EB, in.n - pos) : NULL;
            if (eb == NULL) {
                r->oversize_total += in.n - pos;
                r->consumed = in.n;
                r->scan = 0;
                return HUB_AGAIN;
            }
            size_t e = (size_t)(eb - in.p);
            if (e + 1 >= in.n) {
                r->oversize_total += e - pos;
                r->consumed = e; /* keep the 0x1C: its CR may come next */
                r->scan = 0;
                return HUB_AGAIN;
            }
            if (in.p[e + 1] == HUB_MLLP_CR) {
                r->oversize_total += e - pos;
                pos = e + 2;
                drop = pos;
                r->state = OUTSIDE;
                break;
            }
            r->oversize_total += e + 1 - pos;
            pos = e + 1;
        }
    }
}

hub_status hub_mllp_frame_append(hub_buf *out, const char *payload, size_t n) {
    if (hub_buf_reserve(out, n + 3) != HUB_OK) return HUB_E_NOMEM;
    out->p[out->n++] = HUB_MLLP_SB;
    if (n) memcpy(out->p + out->n, payload, n);
    out->n += n;
    out->p[out->n++] = HUB_MLLP_EB;
    out->p[out->n++] = HUB_MLLP_CR;
    return HUB_OK;
}

/* Finds the segment named `seg` at the start of a line. */
static bool find_segment(hub_slice m, const char *seg, const char **segp,
                         const char **endp) {
    size_t sl = strlen(seg);
    const char *p = m.p, *end = m.p + m.n;
    while (p < end) {
        const char *eol = p;
        while (eol < end && *eol != '\r' && *eol != '\n') eol++;
        if ((size_t)(eol - p) >= sl + 1 && memcmp(p, seg, sl) == 0) {
            *segp = p;
            *endp = eol;
            return true;
        }
        p = eol;
        while (p < end && (*p == '\r' || *p == '\n')) p++;
    }
    return false;
}

bool hub_mllp_field(hub_slice msg, const char *seg, int idx, hub_slice *out) {
    const char *s, *e;
    if (idx < 1 || !find_segment(msg, seg, &s, &e)) return false;
    size_t sl = strlen(seg);
    char sep = s[sl];
    bool msh = strcmp(seg, "MSH") == 0;
    if (msh && idx == 1) {
        *out = hub_slice_of(s + sl, 1);
        return true;
    }
    if (!msh) {
        /* Other segments use the message's separator when it has an MSH. */
        const char *ms, *me;
        if (find_segment(msg, "MSH", &ms, &me)) sep = ms[3];
        if (s[sl] != sep) return false;
    }
    int want = msh ? idx - 1 : idx; /* fields after the segment name */
    const char *p = s + sl + 1;
    for (int i = 1; i < want; i++) {
        const char *bar = memchr(p, sep, (size_t)(e - p));
        if (bar == NULL) return false;
        p = bar + 1;
    }
    const char *bar = memchr(p, sep, (size_t)(e - p));
    *out = hub_slice_of(p, (size_t)((bar ? bar : e) - p));
    return true;
}
