/* ER7 parsing: one pass over the input that records every segment and
 * field as a slice; nothing is copied or decoded. */
#include "internal.h"

#include <stdio.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

hub_v2_delims hub_v2_delims_default(void) {
    return (hub_v2_delims){'|', '^', '~', '\\', '&', 0};
}

static bool delim_ok(char c) {
    unsigned char u = (unsigned char)c;
    if (u == 0 || u == '\r' || u == '\n' || u == ' ' || u >= 0x80) return false;
    if ((u >= 'A' && u <= 'Z') || (u >= 'a' && u <= 'z') || (u >= '0' && u <= '9'))
        return false;
    return true;
}

bool hub__v2_read_delims(const char *p, size_t n, const char *seg,
                         hub_v2_delims *d, size_t *enc_len, hub_err *err) {
    /* "MSH-1", "BHS-2": built by hand, this runs for every message. */
    char w1[8] = {seg[0], seg[1], seg[2], '-', '1', 0};
    char w2[8] = {seg[0], seg[1], seg[2], '-', '2', 0};
    if (n == 0 || !delim_ok(p[0])) {
        hub_err_set(err, HUB_E_PARSE, w1, "missing or invalid field separator");
        return false;
    }
    char fs = p[0];
    size_t k = 1;
    while (k < n && p[k] != fs && p[k] != '\r' && p[k] != '\n') k++;
    size_t len = k - 1;
    const char *e = p + 1;
    *enc_len = len;
    if (len < 2) {
        hub_err_set(err, HUB_E_PARSE, w2, "fewer than 2 encoding characters");
        return false;
    }
    /* Some senders double the escape character ("^~\\&"), as if MSH-2
     * were a string literal; read it as the standard set. */
    if (len == 5 && e[0] == '^' && e[1] == '~' && e[2] == '\\' && e[3] == '\\' &&
        e[4] == '&') {
        *d = (hub_v2_delims){fs, '^', '~', '\\', '&', 0};
        return true;
    }
    if (len > 5) {
        hub_err_set(err, HUB_E_PARSE, w2, "more than 5 encoding characters");
        return false;
    }
    char set[6] = {fs, 0, 0, 0, 0, 0};
    for (size_t i = 0; i < len; i++) {
        if (!delim_ok(e[i])) {
            hub_err_set(err, HUB_E_PARSE, w2, "encoding character %zu is invalid",
                        i + 1);
            return false;
        }
        for (size_t j = 0; j <= i; j++) {
            if (set[j] == e[i]) {
                hub_err_set(err, HUB_E_PARSE, w2,
                            "encoding character %zu repeats a delimiter", i + 1);
                return false;
            }
        }
        set[i + 1] = e[i];
    }
    d->field = fs;
    d->comp = e[0];
    d->rep = e[1];
    d->esc = len > 2 ? e[2] : 0;
    d->sub = len > 3 ? e[3] : 0;
    d->trunc = len > 4 ? e[4] : 0;
    return true;
}

void hub__v2_loc(const hub_v2_msg *m, size_t seg, uint16_t field,
                 hub_v2_loc *out) {
    memset(out, 0, sizeof *out);
    out->seg = UINT32_MAX;
    if (m == NULL || seg >= m->nseg) return;
    hub_slice id = m->segs[seg].fields[0];
    memcpy(out->seg_id, id.p, id.n < 3 ? id.n : 3);
    out->seg = (uint32_t)seg;
    out->seg_seq = hub_v2_seg_seq(m, seg);
    out->field = field;
}

void hub__v2_warn(hub_arena *a, hub_v2_msg *m, size_t seg, uint16_t field,
                  int code, size_t offset, const char *text) {
    if (m->nwarn == m->capwarn) {
        if (m->capwarn >= 64) return; /* enough to say what is wrong */
        size_t cap = m->capwarn ? m->capwarn * 2 : 4;
        hub_v2_finding *w = hub_arena_alloc(a, cap * sizeof *w);
        if (w == NULL) return;
        if (m->nwarn) memcpy(w, m->warn, m->nwarn * sizeof *w);
        m->warn = w;
        m->capwarn = cap;
    }
    hub_v2_finding *f = &m->warn[m->nwarn++];
    hub__v2_loc(m, seg, field, &f->loc);
    f->code = code;
    f->severity = HUB_V2_SEV_WARNING;
    f->text = text;
    f->offset = offset;
}

static bool seg_id_ok(hub_slice id) {
    if (id.n != 3) return false;
    if (id.p[0] < 'A' || id.p[0] > 'Z') return false;
    for (int i = 1; i < 3; i++) {
        char c = id.p[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) return false;
    }
    return true;
}

static size_t count_char(hub_slice s, char c) {
    size_t k = 0;
    const char *p = s.p, *end = s.p + s.n;
    while (p < end && (p = memchr(p, c, (size_t)(end - p))) != NULL) {
        k++;
        p++;
    }
    return k;
}

/* Checks a long field against the repetition, component and sub-component
 * limits; short fields cannot exceed them. */
static hub_status check_big_field(const hub_v2_delims *d, hub_slice f,
                                  const char *where, hub_err *err) {
    if (f.n >= HUB_MAX_REPS && count_char(f, d->rep) + 1 > HUB_MAX_REPS)
        return hub_err_set(err, HUB_E_LIMIT, where, "field over %d repetitions",
                           HUB_MAX_REPS);
    if (f.n < HUB_MAX_COMPONENTS && f.n < HUB_MAX_SUBCOMPONENTS) return HUB_OK;
    size_t comps = 1, subs = 1;
    for (size_t i = 0; i < f.n; i++) {
        char c = f.p[i];
        if (c == d->rep) {
            comps = subs = 1;
        } else if (c == d->comp) {
            subs = 1;
            if (++comps > HUB_MAX_COMPONENTS)
                return hub_err_set(err, HUB_E_LIMIT, where,
                                   "field over %d components", HUB_MAX_COMPONENTS);
        } else if (d->sub && c == d->sub) {
            if (++subs > HUB_MAX_SUBCOMPONENTS)
                return hub_err_set(err, HUB_E_LIMIT, where,
                                   "component over %d sub-components",
                                   HUB_MAX_SUBCOMPONENTS);
        }
    }
    return HUB_OK;
}

static hub_status push_seg(hub_arena *a, hub_v2_msg *m, hub__v2_seg **out,
                           hub_err *err) {
    if (m->nseg == m->capseg) {
        if (m->nseg >= HUB_MAX_SEGMENTS)
            return hub_err_set(err, HUB_E_LIMIT, "message", "over %d segments",
                               HUB_MAX_SEGMENTS);
        size_t cap = m->capseg ? m->capseg * 2 : 16;
        if (cap > HUB_MAX_SEGMENTS) cap = HUB_MAX_SEGMENTS;
        hub__v2_seg *s = hub_arena_alloc(a, cap * sizeof *s);
        if (s == NULL) return hub_err_set(err, HUB_E_NOMEM, "message", "arena full");
        if (m->nseg) memcpy(s, m->segs, m->nseg * sizeof *s);
        m->segs = s;
        m->capseg = cap;
    }
    *out = &m->segs[m->nseg++];
    return HUB_OK;
}

/* True when any repetition of MSH-18 names an ISO 2022 Japanese set. */
static bool msh18_iso2022(const hub_v2_msg *m) {
    if (hub__v2_charset_iso2022(m->cs)) return true;
    hub_slice f = hub_v2_at(m, 0, 18, 0, 0, 0);
    if (f.n == 0 || memchr(f.p, m->d.rep, f.n) == NULL) return false;
    size_t count;
    hub_v2_split(f, m->d.rep, 0, &count);
    for (size_t i = 1; i <= count && i <= 8; i++)
        if (hub__v2_charset_iso2022(hub__v2_charset_of(hub_v2_split(f, m->d.rep, i, NULL))))
            return true;
    return false;
}

/* "2.5.1" < "2.7"? Compares the first two numbers. */
static bool version_before_27(hub_slice v) {
    if (v.n < 3 || v.p[0] < '0' || v.p[0] > '9') return false;
    int major = v.p[0] - '0';
    if (v.p[1] != '.') return false;
    int minor = 0;
    for (size_t i = 2; i < v.n && v.p[i] >= '0' && v.p[i] <= '9' && minor < 100; i++)
        minor = minor * 10 + (v.p[i] - '0');
    return major < 2 || (major == 2 && minor < 7);
}

void hub__v2_fill_msh(hub_v2_msg *m) {
    hub_v2_msh *h = &m->msh;
    h->sending_app = hub_v2_at(m, 0, 3, 0, 0, 0);
    h->sending_fac = hub_v2_at(m, 0, 4, 0, 0, 0);
    h->receiving_app = hub_v2_at(m, 0, 5, 0, 0, 0);
    h->receiving_fac = hub_v2_at(m, 0, 6, 0, 0, 0);
    h->datetime = hub_v2_at(m, 0, 7, 1, 1, 0);
    h->msg_code = hub_v2_at(m, 0, 9, 1, 1, 0);
    h->trigger = hub_v2_at(m, 0, 9, 1, 2, 0);
    h->structure = hub_v2_at(m, 0, 9, 1, 3, 0);
    h->control_id = hub_v2_at(m, 0, 10, 0, 0, 0);
    h->processing_id = hub_v2_at(m, 0, 11, 1, 1, 0);
    h->version = hub_v2_at(m, 0, 12, 1, 1, 0);
    h->accept_ack = hub_v2_at(m, 0, 15, 0, 0, 0);
    h->app_ack = hub_v2_at(m, 0, 16, 0, 0, 0);
    h->charset = hub_v2_at(m, 0, 18, 1, 0, 0);
    m->cs = hub__v2_charset_of(h->charset);
    m->iso2022 = msh18_iso2022(m);
}

/* Bit i set when byte base+i is the field separator, CR or LF; *eol gets
 * the CR/LF bits alone. Bytes at or beyond n read as zero (never a
 * delimiter: delimiters are not NUL). */
static inline uint64_t special_mask(const char *p, size_t base, size_t n, char fs,
                                    uint64_t *eol) {
    char tmp[64];
    const char *b = p + base;
    if (base + 64 > n) {
        memset(tmp, 0, sizeof tmp);
        memcpy(tmp, b, n - base);
        b = tmp;
    }
#if defined(__SSE2__)
    const __m128i vf = _mm_set1_epi8(fs);
    const __m128i vcr = _mm_set1_epi8('\r');
    const __m128i vlf = _mm_set1_epi8('\n');
    uint64_t mask = 0, e = 0;
    for (int i = 0; i < 4; i++) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(b + 16 * i));
        __m128i nl = _mm_or_si128(_mm_cmpeq_epi8(v, vcr), _mm_cmpeq_epi8(v, vlf));
        __m128i hit = _mm_or_si128(_mm_cmpeq_epi8(v, vf), nl);
        mask |= (uint64_t)(unsigned)_mm_movemask_epi8(hit) << (16 * i);
        e |= (uint64_t)(unsigned)_mm_movemask_epi8(nl) << (16 * i);
    }
    *eol = e;
    return mask;
#else
    uint64_t mask = 0, e = 0;
    for (int i = 0; i < 64; i++) {
        char c = b[i];
        e |= (uint64_t)(c == '\r' || c == '\n') << i;
        mask |= (uint64_t)(c == fs || c == '\r' || c == '\n') << i;
    }
    *eol = e;
    return mask;
#endif
}

static bool is_id(hub_slice id, char a, char b, char c) {
    return id.p[0] == a && id.p[1] == b && id.p[2] == c;
}

/* Stores a finished segment: checks its id, copies its fields to the
 * arena. `start`/`end` bound its bytes, `t` is where the next one starts. */
static hub_status finish_seg(hub_arena *a, hub_v2_msg *m, const char *p, size_t start,
                             size_t end, size_t t, const hub_slice *fbuf, size_t nf,
                             hub_err *err) {
    if (!seg_id_ok(fbuf[0])) {
        char w[24];
        snprintf(w, sizeof w, "seg %zu", m->nseg + 1);
        return hub_err_set(err, HUB_E_PARSE, w,
                           "segment id is not 3 upper-case letters or digits");
    }
    hub_slice id = fbuf[0];
    if (m->nseg > 0 && (id.p[0] == 'M' || id.p[0] == 'B' || id.p[0] == 'F') &&
        (is_id(id, 'M', 'S', 'H') || is_id(id, 'B', 'H', 'S') || is_id(id, 'B', 'T', 'S') ||
         is_id(id, 'F', 'H', 'S') || is_id(id, 'F', 'T', 'S'))) {
        char w[24];
        snprintf(w, sizeof w, "seg %zu", m->nseg + 1);
        return hub_err_set(err, HUB_E_PARSE, w,
                           "'%.3s' inside a message (use the batch parser)", id.p);
    }
    hub__v2_seg *s = NULL;
    hub_status rc = push_seg(a, m, &s, err);
    if (rc != HUB_OK) return rc;
    s->raw = hub_slice_of(p + start, end - start);
    s->term = hub_slice_of(p + end, t - end);
    s->fields = hub_arena_alloc(a, nf * sizeof(hub_slice));
    if (s->fields == NULL) return hub_err_set(err, HUB_E_NOMEM, "message", "arena full");
    memcpy(s->fields, fbuf, nf * sizeof(hub_slice));
    s->nfields = (uint32_t)nf;
    s->cap = 0;
    s->dirty = false;
    return HUB_OK;
}

/* Where the next segment starts after the terminator at q: past CR, LF
 * and lines of only spaces or tabs (some senders pad blank lines). */
static size_t skip_terminator(const char *p, size_t q, size_t n) {
    size_t t = q;
    for (;;) {
        while (t < n && (p[t] == '\r' || p[t] == '\n')) t++;
        size_t u = t;
        while (u < n && (p[u] == ' ' || p[u] == '\t')) u++;
        if (t == q || u == t || !(u == n || p[u] == '\r' || p[u] == '\n')) break;
        t = u;
    }
    return t;
}

static hub_status field_too_big(const hub_v2_delims *d, const char *p, size_t start,
                                size_t nf, hub_slice f, hub_err *err) {
    char w[24];
    snprintf(w, sizeof w, "%.3s-%zu", p + start, nf);
    if (f.n > HUB_MAX_FIELD)
        return hub_err_set(err, HUB_E_LIMIT, w, "field over %u bytes", HUB_MAX_FIELD);
    return check_big_field(d, f, w, err);
}

/* A field this long may break a limit; check_big_field counts. */
#define HUB__V2_BIG 1000u

hub_status hub_v2_parse(hub_arena *a, const char *p, size_t n,
                        const hub_v2_parse_opts *opts, hub_v2_msg **out,
                        hub_err *err) {
    /* Room for one 64-byte block past the limit: checked once per block. */
    hub_slice fbuf[HUB_MAX_FIELDS + 1 + 64];
    *out = NULL;
    if (p == NULL || n == 0)
        return hub_err_set(err, HUB_E_PARSE, "message", "empty input");
    size_t i = 0;
    bool bom = false;
    if (n >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) {
        i = 3;
        bom = true;
    }
    while (i < n && (p[i] == '\r' || p[i] == '\n')) i++;
    if (i == n) return hub_err_set(err, HUB_E_PARSE, "message", "empty input");
    if (n - i < 3 || memcmp(p + i, "MSH", 3) != 0)
        return hub_err_set(err, HUB_E_PARSE, "MSH", "message does not start with 'MSH'");

    hub_v2_delims d;
    size_t enc_len;
    if (!hub__v2_read_delims(p + i + 3, n - i - 3, "MSH", &d, &enc_len, err))
        return err ? err->code : HUB_E_PARSE;

    hub_v2_msg *m = hub_arena_calloc(a, sizeof *m);
    if (m == NULL) return hub_err_set(err, HUB_E_NOMEM, "message", "arena full");
    m->in = p;
    m->n = n;
    m->d = d;
    m->bom = bom;
    m->head = hub_slice_of(p, i);

    const char fs = d.field;
    hub_status rc;
    /* MSH: id, the separator itself, the encoding characters. */
    size_t seg_start = i;
    fbuf[0] = hub_slice_of(p + i, 3);
    fbuf[1] = hub_slice_of(p + i + 3, 1);
    fbuf[2] = hub_slice_of(p + i + 4, enc_len);
    size_t nf = 3;
    size_t q = i + 4 + enc_len;
    size_t fstart;
    bool open = true; /* inside a segment (possibly at an empty last field) */
    if (q < n && p[q] == fs) {
        fstart = q + 1;
    } else {
        size_t t = skip_terminator(p, q, n);
        rc = finish_seg(a, m, p, seg_start, q, t, fbuf, nf, err);
        if (rc != HUB_OK) return rc;
        seg_start = fstart = t;
        nf = 0;
        open = t < n;
    }
    /* One pass over the rest: a 64-bit mask of separators and line ends per
     * block, walked bit by bit, so the loop branches per block rather than
     * per byte. */
    size_t base = fstart;
    while (base < n) {
        uint64_t eol;
        uint64_t mask = special_mask(p, base, n, fs, &eol);
        bool restart = false;
        while (mask) {
            uint64_t bit = mask & (0 - mask);
            size_t k = base + (size_t)__builtin_ctzll(mask);
            mask ^= bit;
            hub_slice f = hub_slice_of(p + fstart, k - fstart);
            fbuf[nf++] = f;
            if (f.n >= HUB__V2_BIG) {
                rc = field_too_big(&d, p, seg_start, nf - 1, f, err);
                if (rc != HUB_OK) return rc;
            }
            fstart = k + 1;
            if (!(bit & eol)) continue;
            /* End of the segment. */
            if (nf > HUB_MAX_FIELDS + 1) {
                char w[8];
                snprintf(w, sizeof w, "%.3s", p + seg_start);
                return hub_err_set(err, HUB_E_LIMIT, w, "segment over %d fields",
                                   HUB_MAX_FIELDS);
            }
            size_t t = skip_terminator(p, k, n);
            rc = finish_seg(a, m, p, seg_start, k, t, fbuf, nf, err);
            if (rc != HUB_OK) return rc;
            nf = 0;
            seg_start = fstart = base = t;
            open = t < n;
            restart = true;
            break;
        }
        if (nf > HUB_MAX_FIELDS + 1) {
            char w[8];
            snprintf(w, sizeof w, "%.3s", p + seg_start);
            return hub_err_set(err, HUB_E_LIMIT, w, "segment over %d fields",
                               HUB_MAX_FIELDS);
        }
        if (!restart) base += 64;
    }
    if (open) {
        /* The last segment has no terminator. */
        hub_slice f = hub_slice_of(p + fstart, n - fstart);
        fbuf[nf++] = f;
        if (f.n >= HUB__V2_BIG) {
            rc = field_too_big(&d, p, seg_start, nf - 1, f, err);
            if (rc != HUB_OK) return rc;
        }
        if (nf > HUB_MAX_FIELDS + 1) {
            char w[8];
            snprintf(w, sizeof w, "%.3s", p + seg_start);
            return hub_err_set(err, HUB_E_LIMIT, w, "segment over %d fields",
                               HUB_MAX_FIELDS);
        }
        rc = finish_seg(a, m, p, seg_start, n, n, fbuf, nf, err);
        if (rc != HUB_OK) return rc;
    }

    hub__v2_fill_msh(m);
    if (m->cs == HUB_V2_CS_OTHER)
        hub__v2_warn(a, m, 0, 18, HUB_V2_E_TABLE_VALUE, SIZE_MAX,
                     "unknown character set in MSH-18, read as UTF-8");
    if (m->cs == HUB_V2_CS_WIDE)
        hub__v2_warn(a, m, 0, 18, HUB_V2_E_TABLE_VALUE, SIZE_MAX,
                     "UTF-16/UTF-32 in MSH-18 cannot be split on one-byte "
                     "delimiters, read as UTF-8");
    if (d.trunc && version_before_27(m->msh.version))
        hub__v2_warn(a, m, 0, 2, HUB_V2_E_DATA_TYPE, SIZE_MAX,
                     "truncation character declared before v2.7");
    if (enc_len == 5 && d.trunc == 0)
        hub__v2_warn(a, m, 0, 2, HUB_V2_E_DATA_TYPE, SIZE_MAX,
                     "doubled escape character in MSH-2 read as ^~\\&");
    if (opts && opts->require_msh9_10) {
        if (m->msh.msg_code.n == 0)
            return hub_err_set(err, HUB_E_PARSE, "MSH-9", "message type is empty");
        if (m->msh.control_id.n == 0)
            return hub_err_set(err, HUB_E_PARSE, "MSH-10", "control id is empty");
    }
    *out = m;
    return HUB_OK;
}

hub_slice hub_v2_msg_input(const hub_v2_msg *m) { return hub_slice_of(m->in, m->n); }
hub_v2_delims hub_v2_msg_delims(const hub_v2_msg *m) { return m->d; }
const hub_v2_msh *hub_v2_msg_msh(const hub_v2_msg *m) { return &m->msh; }
hub_v2_charset hub_v2_msg_charset(const hub_v2_msg *m) { return m->cs; }
bool hub_v2_msg_has_bom(const hub_v2_msg *m) { return m->bom; }

const hub_v2_finding *hub_v2_msg_warnings(const hub_v2_msg *m, size_t *n) {
    *n = m->nwarn;
    return m->warn;
}
