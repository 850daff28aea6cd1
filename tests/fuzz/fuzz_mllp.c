/* Fuzzes the MLLP framer: the first byte seeds the chunk sizes, the rest is
 * the stream. Invariants: consumed never exceeds the input, frames lie
 * inside it and are never larger than the limit, an oversize prefix is at
 * most HUB_MLLP_OVERSIZE_PREFIX, and the framer's result does not depend on
 * how the stream was split (checked against a whole-buffer run). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hub/mllp.h"

#define MAXF 64

typedef struct {
    uint64_t frames, limits, sum, skipped;
} summary;

static void check(int ok) {
    if (!ok) abort();
}

static summary feed(const uint8_t *d, size_t n, uint8_t seed, bool chunked) {
    hub_mllp_reader r;
    hub_mllp_reader_init(&r, MAXF);
    summary s = {0, 0, 0, 0};
    hub_buf b;
    hub_buf_init(&b);
    size_t fed = 0;
    uint32_t x = seed * 2654435761u + 1;
    while (fed < n) {
        size_t k = n - fed;
        if (chunked) {
            x = x * 1103515245u + 12345u;
            size_t c = 1 + (x >> 16) % 17;
            if (c < k) k = c;
        }
        if (hub_buf_append(&b, d + fed, k) != HUB_OK) abort();
        fed += k;
        for (;;) {
            hub_slice f;
            hub_err err;
            hub_status st = hub_mllp_next(&r, hub_slice_of(b.p, b.n), &f, &err);
            check(r.consumed <= b.n);
            if (st == HUB_OK || st == HUB_E_LIMIT) {
                check(f.p >= b.p && f.p + f.n <= b.p + b.n);
                if (st == HUB_OK) {
                    check(f.n <= MAXF);
                    s.frames++;
                    s.sum += f.n;
                } else {
                    check(f.n <= HUB_MLLP_OVERSIZE_PREFIX);
                    s.limits++;
                }
            } else {
                check(st == HUB_AGAIN);
            }
            hub_buf_consume(&b, r.consumed);
            if (st == HUB_AGAIN) break;
        }
    }
    s.skipped = r.skipped;
    hub_buf_release(&b);
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) {
    if (n == 0) return 0;
    summary a = feed(d + 1, n - 1, d[0], true);
    summary w = feed(d + 1, n - 1, d[0], false);
    check(a.frames == w.frames && a.sum == w.sum && a.skipped == w.skipped);
    /* An oversize frame is reported once however it is split, except that a
     * split stream may see it before its end arrives: the count matches. */
    check(a.limits == w.limits);
    return 0;
}
