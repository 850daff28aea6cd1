/* Batch files: FHS/BHS ... BTS/FTS envelopes, each optional, around one or
 * more messages; every message is parsed on its own. */
#include "internal.h"

#include <stdio.h>
#include <string.h>

typedef struct {
    hub_arena *a;
    hub_v2_batch *b;
    size_t capmsgs, capenv, capfind;
    int stack[HUB_MAX_BATCH_DEPTH + 1];
    int depth;
    const char *in;
    const hub_v2_parse_opts *opts;
    char fs; /* field separator of the innermost header, for trailers */
} bstate;

static hub_status grow(hub_arena *a, void **arr, size_t *cap, size_t n,
                       size_t elem) {
    if (n < *cap) return HUB_OK;
    size_t nc = *cap ? *cap * 2 : 8;
    void *p = hub_arena_alloc(a, nc * elem);
    if (p == NULL) return HUB_E_NOMEM;
    if (n) memcpy(p, *arr, n * elem);
    *arr = p;
    *cap = nc;
    return HUB_OK;
}

static hub_status add_finding(bstate *S, const char *seg, uint16_t field, int code,
                              size_t offset, const char *text, hub_err *err) {
    hub_v2_batch *b = S->b;
    if (b->nfindings >= 64) return HUB_OK;
    if (grow(S->a, (void **)&b->findings, &S->capfind, b->nfindings,
             sizeof *b->findings) != HUB_OK)
        return hub_err_set(err, HUB_E_NOMEM, "file", "arena full");
    hub_v2_finding *f = &b->findings[b->nfindings++];
    memset(f, 0, sizeof *f);
    snprintf(f->loc.seg_id, sizeof f->loc.seg_id, "%s", seg);
    f->loc.seg = UINT32_MAX;
    f->loc.field = field;
    f->code = code;
    f->severity = HUB_V2_SEV_ERROR;
    f->text = text;
    f->offset = offset;
    return HUB_OK;
}

static hub_status add_msg(bstate *S, const char *p, size_t n, hub_err *err) {
    hub_v2_batch *b = S->b;
    if (b->nmsgs >= HUB_MAX_BATCH_MESSAGES)
        return hub_err_set(err, HUB_E_LIMIT, "file", "over %d messages",
                           HUB_MAX_BATCH_MESSAGES);
    size_t c1 = S->capmsgs, c2 = S->capmsgs, c3 = S->capmsgs;
    if (grow(S->a, (void **)&b->msgs, &c1, b->nmsgs, sizeof *b->msgs) != HUB_OK ||
        grow(S->a, (void **)&b->msg_errs, &c2, b->nmsgs, sizeof *b->msg_errs) != HUB_OK ||
        grow(S->a, (void **)&b->msg_raw, &c3, b->nmsgs, sizeof *b->msg_raw) != HUB_OK)
        return hub_err_set(err, HUB_E_NOMEM, "file", "arena full");
    S->capmsgs = c1;
    size_t i = b->nmsgs++;
    hub_err_clear(&b->msg_errs[i]);
    b->msg_raw[i] = hub_slice_of(p, n);
    b->msgs[i] = NULL;
    hub_status rc = hub_v2_parse(S->a, p, n, S->opts, &b->msgs[i], &b->msg_errs[i]);
    if (rc == HUB_E_NOMEM) return hub_err_set(err, HUB_E_NOMEM, "file", "arena full");
    if (S->depth > 0) {
        hub_v2_envelope *e = &b->env[S->stack[S->depth - 1]];
        if (e->nmsgs == 0) e->first_msg = i;
        e->nmsgs++;
    }
    return HUB_OK;
}

static hub_status push_env(bstate *S, bool file, hub_slice header, hub_err *err) {
    hub_v2_batch *b = S->b;
    if (S->depth >= HUB_MAX_BATCH_DEPTH)
        return hub_err_set(err, HUB_E_LIMIT, file ? "FHS" : "BHS",
                           "envelopes nested over %d deep", HUB_MAX_BATCH_DEPTH);
    if (grow(S->a, (void **)&b->env, &S->capenv, b->nenv, sizeof *b->env) != HUB_OK)
        return hub_err_set(err, HUB_E_NOMEM, "file", "arena full");
    hub_v2_envelope *e = &b->env[b->nenv];
    memset(e, 0, sizeof *e);
    e->is_file = file;
    e->parent = S->depth ? S->stack[S->depth - 1] : -1;
    e->header = header;
    e->first_msg = b->nmsgs;
    if (e->parent >= 0) b->env[e->parent].nchildren++;
    S->stack[S->depth++] = (int)b->nenv++;
    return HUB_OK;
}

/* The count in a trailer's first field (BTS-1, FTS-1): -1 when empty, -2
 * when not a number. */
static long trailer_count(hub_slice seg, char fs) {
    if (seg.n < 4 || seg.p[3] != fs) return -1;
    const char *p = seg.p + 4, *end = seg.p + seg.n;
    const char *q = memchr(p, fs, (size_t)(end - p));
    if (q) end = q;
    if (p == end) return -1;
    long v = 0;
    for (; p < end; p++) {
        if (*p < '0' || *p > '9' || v > 100000000) return -2;
        v = v * 10 + (*p - '0');
    }
    return v;
}

static hub_status close_env(bstate *S, hub_slice trailer, size_t off, hub_err *err) {
    hub_v2_envelope *e = &S->b->env[S->stack[--S->depth]];
    e->trailer = trailer;
    const char *id = e->is_file ? "FTS" : "BTS";
    if (trailer.p == NULL)
        return add_finding(S, e->is_file ? "FHS" : "BHS", 0,
                           HUB_V2_E_SEGMENT_SEQUENCE, off,
                           e->is_file ? "FHS without FTS" : "BHS without BTS", err);
    long want = trailer_count(trailer, S->fs);
    /* FTS-1 counts batches; messages directly in the file form one. */
    long have = e->is_file ? (long)(e->nchildren + (e->nmsgs ? 1 : 0)) : (long)e->nmsgs;
    if (want == -2)
        return add_finding(S, id, 1, HUB_V2_E_DATA_TYPE, off,
                           "trailer count is not a number", err);
    if (want >= 0 && want != have)
        return add_finding(S, id, 1, HUB_V2_E_DATA_TYPE, off,
                           e->is_file ? "FTS-1 does not match the number of batches"
                                      : "BTS-1 does not match the number of messages",
                           err);
    return HUB_OK;
}

static bool id_is(const char *p, size_t n, const char *id) {
    return n >= 3 && p[0] == id[0] && p[1] == id[1] && p[2] == id[2] &&
           (n == 3 || !((p[3] >= 'A' && p[3] <= 'Z') || (p[3] >= '0' && p[3] <= '9')));
}

hub_status hub_v2_batch_parse(hub_arena *a, const char *p, size_t n,
                              const hub_v2_parse_opts *opts, hub_v2_batch *out,
                              hub_err *err) {
    memset(out, 0, sizeof *out);
    if (p == NULL || n == 0) return hub_err_set(err, HUB_E_PARSE, "file", "empty input");
    bstate S;
    memset(&S, 0, sizeof S);
    S.a = a;
    S.b = out;
    S.in = p;
    S.opts = opts;
    S.fs = '|';
    size_t pos = 0;
    if (n >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) pos = 3;
    while (pos < n && (p[pos] == '\r' || p[pos] == '\n')) pos++;
    if (pos == n) return hub_err_set(err, HUB_E_PARSE, "file", "empty input");
    size_t msg_start = SIZE_MAX; /* start of the open message */
    size_t file_start = 0;       /* the BOM and blank lines go with the first message */
    size_t nseg = 0;
    hub_status rc;
    while (pos < n) {
        size_t end = pos;
        while (end < n && p[end] != '\r' && p[end] != '\n') end++;
        size_t next = end;
        while (next < n && (p[next] == '\r' || p[next] == '\n')) next++;
        const char *s = p + pos;
        size_t len = end - pos;
        size_t blank = 0;
        while (blank < len && (s[blank] == ' ' || s[blank] == '\t')) blank++;
        if (blank == len) { /* a line of spaces: blank, as in the parser */
            pos = next;
            continue;
        }
        nseg++;
        bool is_msh = id_is(s, len, "MSH"), is_bhs = id_is(s, len, "BHS"),
             is_fhs = id_is(s, len, "FHS"), is_bts = id_is(s, len, "BTS"),
             is_fts = id_is(s, len, "FTS");
        if (is_msh || is_bhs || is_fhs || is_bts || is_fts) {
            if (msg_start != SIZE_MAX) {
                rc = add_msg(&S, p + msg_start, pos - msg_start, err);
                if (rc != HUB_OK) return rc;
                msg_start = SIZE_MAX;
            }
        }
        if (is_msh) {
            msg_start = nseg == 1 ? file_start : pos;
        } else if (is_fhs || is_bhs) {
            if (is_fhs && nseg != 1)
                return hub_err_set(err, HUB_E_PARSE, "FHS", "FHS not at the start of the file");
            hub_v2_delims d;
            size_t enc;
            if (len < 4 || !hub__v2_read_delims(s + 3, len - 3, is_fhs ? "FHS" : "BHS",
                                                 &d, &enc, err))
                return len < 4 ? hub_err_set(err, HUB_E_PARSE, is_fhs ? "FHS-1" : "BHS-1",
                                             "missing or invalid field separator")
                               : (err ? err->code : HUB_E_PARSE);
            S.fs = d.field;
            rc = push_env(&S, is_fhs, hub_slice_of(s, len), err);
            if (rc != HUB_OK) return rc;
        } else if (is_bts) {
            if (S.depth > 0 && !S.b->env[S.stack[S.depth - 1]].is_file) {
                rc = close_env(&S, hub_slice_of(s, len), pos, err);
            } else {
                rc = add_finding(&S, "BTS", 0, HUB_V2_E_SEGMENT_SEQUENCE, pos,
                                 "BTS without BHS", err);
            }
            if (rc != HUB_OK) return rc;
        } else if (is_fts) {
            while (S.depth > 0 && !S.b->env[S.stack[S.depth - 1]].is_file) {
                rc = close_env(&S, (hub_slice){NULL, 0}, pos, err);
                if (rc != HUB_OK) return rc;
            }
            if (S.depth > 0) {
                rc = close_env(&S, hub_slice_of(s, len), pos, err);
            } else {
                rc = add_finding(&S, "FTS", 0, HUB_V2_E_SEGMENT_SEQUENCE, pos,
                                 "FTS without FHS", err);
            }
            if (rc != HUB_OK) return rc;
        } else if (msg_start == SIZE_MAX) {
            char w[24];
            snprintf(w, sizeof w, "seg %zu", nseg);
            if (nseg == 1)
                return hub_err_set(err, HUB_E_PARSE, "file",
                                   "file does not start with FHS, BHS or MSH");
            return hub_err_set(err, HUB_E_PARSE, w, "segment outside a message");
        }
        pos = next;
    }
    if (msg_start != SIZE_MAX) {
        rc = add_msg(&S, p + msg_start, n - msg_start, err);
        if (rc != HUB_OK) return rc;
    }
    while (S.depth > 0) {
        rc = close_env(&S, (hub_slice){NULL, 0}, n, err);
        if (rc != HUB_OK) return rc;
    }
    if (out->nmsgs == 0)
        return hub_err_set(err, HUB_E_PARSE, "file", "no message in the file");
    return HUB_OK;
}
