/* The benchmarks' corpus loader: a file made by gen_v2_corpus.py (one
 * message per line, segments joined by CR). Header-only, so each bench_*.c
 * stays one executable. */
#ifndef HUB_BENCH_CORPUS_H
#define HUB_BENCH_CORPUS_H

#include "hub/core.h"

#include <stdio.h>
#include <string.h>

typedef struct {
    char *buf;      /* the file, owned */
    hub_slice *msg; /* one slice per message, into buf */
    size_t n;       /* messages */
    size_t bytes;   /* message bytes, newlines not counted */
} bench_corpus;

/* Loads at most `want` messages (0: all). Prints why and returns -1 when the
 * file cannot be read or holds no message. */
static inline int bench_corpus_load(const char *path, size_t want, bench_corpus *c) {
    memset(c, 0, sizeof *c);
    size_t size;
    hub_err err;
    if (hub_file_read(path, (size_t)8 << 30, &c->buf, &size, &err) != HUB_OK) {
        fprintf(stderr, "bench: %s: %s\n", path, err.msg);
        return -1;
    }
    size_t cap = 1024;
    c->msg = hub_malloc(cap * sizeof *c->msg);
    for (char *p = c->buf, *end = c->buf + size; c->msg && p < end && (want == 0 || c->n < want);) {
        char *q = memchr(p, '\n', (size_t)(end - p));
        if (!q) q = end;
        if (q > p) {
            if (c->n == cap) {
                hub_slice *nm = hub_realloc(c->msg, (cap *= 2) * sizeof *c->msg);
                if (nm == NULL) break;
                c->msg = nm;
            }
            c->msg[c->n++] = (hub_slice){p, (size_t)(q - p)};
            c->bytes += (size_t)(q - p);
        }
        p = q + 1;
    }
    if (c->n == 0) {
        fprintf(stderr, "bench: no messages in '%s'\n", path);
        return -1;
    }
    return 0;
}

static inline void bench_corpus_release(bench_corpus *c) {
    hub_free(c->msg);
    hub_free(c->buf);
    memset(c, 0, sizeof *c);
}

#endif
