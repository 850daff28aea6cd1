/* Reading values: escape sequences and character sets, decoded to UTF-8
 * only when a value is read; and escaping text for writing. */
#include "internal.h"

#include <string.h>

size_t hub__v2_utf8_put(uint32_t cp, char *o) {
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

size_t hub__v2_utf8_len(const unsigned char *p, size_t n) {
    if (n == 0) return 0;
    unsigned char c = p[0];
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return n >= 2 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (n < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && p[1] < 0xA0) return 0; /* overlong */
        if (c == 0xED && p[1] >= 0xA0) return 0; /* surrogate */
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (n < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 ||
            (p[3] & 0xC0) != 0x80)
            return 0;
        if (c == 0xF0 && p[1] < 0x90) return 0;
        if (c == 0xF4 && p[1] >= 0x90) return 0;
        return 4;
    }
    return 0;
}

typedef struct {
    char *o;                /* output cursor */
    hub_v2_charset cs;      /* current charset (\C..\ may switch it) */
    hub_v2_text_out *out;
} dec;

static void mark_bad(dec *D, size_t off) {
    D->out->flags |= HUB_V2_TEXT_BAD_BYTES;
    if (D->out->bad_offset == SIZE_MAX) D->out->bad_offset = off;
}

/* Emits bytes read in the current charset as UTF-8. `off` is the input
 * offset of b[0] (SIZE_MAX when unknown); `step` is 1 when each byte has
 * its own offset, 0 when all share one (bytes from a \X..\ escape). */
static void emit_bytes(dec *D, const unsigned char *b, size_t n, size_t off,
                       int step) {
    size_t i = 0;
    while (i < n) {
        unsigned char c = b[i];
        if (c < 0x80) {
            *D->o++ = (char)c;
            i++;
            continue;
        }
        size_t at = off == SIZE_MAX ? SIZE_MAX : off + (step ? i : 0);
        size_t len = hub__v2_utf8_len(b + i, n - i);
        switch (D->cs) {
        case HUB_V2_CS_LATIN1:
            if (len >= 2) {
                /* UTF-8 in a message that says Latin-1: keep the text, say so. */
                memcpy(D->o, b + i, len);
                D->o += len;
                i += len;
                mark_bad(D, at);
            } else if (c >= 0xA0) {
                D->o += hub__v2_utf8_put(c, D->o);
                i++;
            } else {
                D->o += hub__v2_utf8_put(0xFFFD, D->o);
                i++;
                mark_bad(D, at);
            }
            break;
        case HUB_V2_CS_ASCII:
            if (len >= 2) {
                memcpy(D->o, b + i, len);
                D->o += len;
                i += len;
            } else {
                D->o += hub__v2_utf8_put(0xFFFD, D->o);
                i++;
            }
            mark_bad(D, at);
            break;
        default:
            if (len >= 2) {
                memcpy(D->o, b + i, len);
                D->o += len;
                i += len;
            } else {
                D->o += hub__v2_utf8_put(0xFFFD, D->o);
                i++;
                mark_bad(D, at);
            }
            break;
        }
    }
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

static bool all_hex(const char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (hexval(p[i]) < 0) return false;
    return true;
}

/* A small count after a formatting command ("\.sp 2\"), capped so the
 * output stays within three times the input. */
static int small_count(const char *p, size_t n, int dflt) {
    size_t i = 0;
    while (i < n && (p[i] == ' ' || p[i] == '+' || p[i] == '-')) i++;
    if (i == n) return dflt;
    int v = 0;
    for (; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return dflt;
        if (v < 100) v = v * 10 + (p[i] - '0');
    }
    return v > 9 ? 9 : v;
}

static bool cmd_is(const char *s, size_t n, const char *cmd) {
    size_t k = strlen(cmd);
    return n >= k && memcmp(s, cmd, k) == 0 &&
           (n == k || s[k] == ' ' || s[k] == '+' || s[k] == '-' ||
            (s[k] >= '0' && s[k] <= '9'));
}

/* Handles the escape whose text (between the escape characters) is s[0..n).
 * Returns false when it is unknown or malformed (the caller keeps it). */
static bool do_escape(dec *D, const hub_v2_delims *d, const char *s, size_t n,
                      size_t off) {
    if (n == 1) {
        switch (s[0]) {
        case 'F': *D->o++ = d->field; return true;
        case 'S': *D->o++ = d->comp; return true;
        case 'R': *D->o++ = d->rep; return true;
        case 'E': *D->o++ = d->esc; return true;
        case 'T': *D->o++ = d->sub ? d->sub : '&'; return true;
        case 'P': *D->o++ = d->trunc ? d->trunc : '#'; return true;
        case 'H':
        case 'N': return true; /* highlighting: no meaning in plain text */
        default: return false;
        }
    }
    if (s[0] == 'X') {
        size_t h = n - 1;
        if (h == 0 || h % 2 || !all_hex(s + 1, h)) return false;
        unsigned char buf[64];
        for (size_t i = 0; i < h;) {
            size_t k = 0;
            while (k < sizeof buf && i < h) {
                buf[k++] = (unsigned char)(hexval(s[1 + i]) * 16 + hexval(s[2 + i]));
                i += 2;
            }
            emit_bytes(D, buf, k, off, 0);
        }
        return true;
    }
    if (s[0] == 'C' && n == 5 && all_hex(s + 1, 4)) {
        int x = hexval(s[1]) * 16 + hexval(s[2]), y = hexval(s[3]) * 16 + hexval(s[4]);
        if (x == 0x28 && y == 0x42) { /* ESC ( B: ISO-IR 6, ASCII */
            D->cs = HUB_V2_CS_ASCII;
            return true;
        }
        if (x == 0x2D && y == 0x41) { /* ESC - A: ISO-IR 100, Latin-1 */
            D->cs = HUB_V2_CS_LATIN1;
            return true;
        }
        /* ESC % G: ISO-IR 192, UTF-8 (how a message in ASCII or Latin-1
         * switches to Unicode); ESC % @ returns to ISO 2022, ASCII. */
        if (x == 0x25 && y == 0x47) {
            D->cs = HUB_V2_CS_UTF8;
            return true;
        }
        if (x == 0x25 && y == 0x40) {
            D->cs = HUB_V2_CS_ASCII;
            return true;
        }
        /* Other single-byte sets (ISO-IR 13/14 JIS X 0201, ISO-IR 101 ...,
         * ISO 8859-2..15) would need their own tables: kept verbatim and
         * flagged, see conformance/v2/README.md. */
        return false;
    }
    /* Multi-byte sets (\M2442\ ISO-IR 87 JIS X 0208, \M242844\ ISO-IR 159,
     * \M242943\ ISO-IR 149 KS X 1001): not decoded, kept and flagged. */
    if (s[0] == 'M') return false;
    if (s[0] == 'Z') return false; /* locally defined: kept verbatim */
    if (s[0] == '.') {
        const char *c = s + 1;
        size_t cn = n - 1;
        if (cn == 2 && memcmp(c, "br", 2) == 0) {
            *D->o++ = '\n';
            return true;
        }
        if (cmd_is(c, cn, "sp")) {
            int k = small_count(c + 2, cn - 2, 1);
            for (int i = 0; i < k; i++) *D->o++ = '\n';
            return true;
        }
        if (cmd_is(c, cn, "sk")) {
            int k = small_count(c + 2, cn - 2, 1);
            for (int i = 0; i < k; i++) *D->o++ = ' ';
            return true;
        }
        if (cmd_is(c, cn, "in") || cmd_is(c, cn, "ti") ||
            (cn == 2 && (memcmp(c, "fi", 2) == 0 || memcmp(c, "nf", 2) == 0 ||
                         memcmp(c, "ce", 2) == 0)))
            return true;
        return false;
    }
    return false;
}

hub_status hub_v2_decode(hub_arena *a, const hub_v2_msg *m, hub_slice raw,
                         hub_v2_text_out *out, hub_err *err) {
    out->flags = 0;
    out->bad_offset = SIZE_MAX;
    out->text = hub_slice_of("", 0);
    if (raw.p == NULL || raw.n == 0) return HUB_OK;
    if (raw.n > HUB_MAX_FIELD)
        return hub_err_set(err, HUB_E_LIMIT, "value", "value over %u bytes",
                           HUB_MAX_FIELD);
    if (hub_v2_is_null(raw)) {
        out->flags = HUB_V2_TEXT_NULL;
        return HUB_OK;
    }
    char *buf = hub_arena_alloc(a, raw.n * 3 + 16);
    if (buf == NULL) return hub_err_set(err, HUB_E_NOMEM, "value", "arena full");
    hub_v2_delims d = m ? m->d : hub_v2_delims_default();
    size_t base = SIZE_MAX;
    if (m && raw.p >= m->in && raw.p + raw.n <= m->in + m->n)
        base = (size_t)(raw.p - m->in);
    dec D = {buf, m ? m->cs : HUB_V2_CS_UTF8, out};
    const char *p = raw.p, *end = raw.p + raw.n;
    while (p < end) {
        /* Plain ASCII runs are copied as they are. */
        const char *q = p;
        while (q < end && (unsigned char)*q < 0x80 && (*q != d.esc || d.esc == 0)) {
            if (d.trunc && *q == d.trunc) out->flags |= HUB_V2_TEXT_TRUNCATED;
            q++;
        }
        if (q > p) {
            memcpy(D.o, p, (size_t)(q - p));
            D.o += q - p;
            p = q;
            continue;
        }
        size_t off = base == SIZE_MAX ? SIZE_MAX : base + (size_t)(p - raw.p);
        if (d.esc && *p == d.esc) {
            const char *close = memchr(p + 1, d.esc, (size_t)(end - p - 1));
            if (close && close > p + 1 && do_escape(&D, &d, p + 1, (size_t)(close - p - 1), off)) {
                p = close + 1;
                continue;
            }
            /* Unknown, malformed or unterminated: keep the text verbatim. */
            const char *stop = close ? close + 1 : p + 1;
            if (!(close && close > p + 1 && p[1] == 'Z'))
                out->flags |= HUB_V2_TEXT_BAD_ESCAPE;
            memcpy(D.o, p, (size_t)(stop - p));
            D.o += stop - p;
            p = stop;
            continue;
        }
        /* A run of non-ASCII bytes. */
        q = p;
        while (q < end && (unsigned char)*q >= 0x80) q++;
        emit_bytes(&D, (const unsigned char *)p, (size_t)(q - p), off, 1);
        p = q;
    }
    *D.o = '\0';
    out->text = hub_slice_of(buf, (size_t)(D.o - buf));
    return HUB_OK;
}

const char *hub_v2_text(hub_arena *a, const hub_v2_msg *m, hub_slice raw) {
    hub_v2_text_out t;
    if (hub_v2_decode(a, m, raw, &t, NULL) != HUB_OK) return NULL;
    return t.text.p;
}

hub_status hub_v2_escape(hub_slice text, const hub_v2_delims *d, hub_buf *out) {
    char esc = d->esc ? d->esc : '\\';
    const char *p = text.p, *end = text.p + text.n;
    while (p < end) {
        const char *q = p;
        while (q < end) {
            char c = *q;
            if (c == d->field || c == d->comp || c == d->rep || c == esc ||
                (d->sub && c == d->sub) || (d->trunc && c == d->trunc) ||
                c == '\r' || c == '\n')
                break;
            q++;
        }
        if (q > p && hub_buf_append(out, p, (size_t)(q - p)) != HUB_OK)
            return HUB_E_NOMEM;
        if (q == end) break;
        char c = *q, e[6];
        const char *code;
        if (c == d->field) code = "F";
        else if (c == d->comp) code = "S";
        else if (c == d->rep) code = "R";
        else if (c == esc) code = "E";
        else if (d->sub && c == d->sub) code = "T";
        else if (d->trunc && c == d->trunc) code = "P";
        else if (c == '\r') code = "X0D";
        else code = "X0A";
        size_t k = strlen(code);
        e[0] = esc;
        memcpy(e + 1, code, k);
        e[k + 1] = esc;
        if (hub_buf_append(out, e, k + 2) != HUB_OK) return HUB_E_NOMEM;
        p = q + 1;
    }
    if (out->p == NULL && hub_buf_append(out, "", 0) != HUB_OK) return HUB_E_NOMEM;
    return HUB_OK;
}

/* True when no value of a parsed segment (from field 1, or 3 for a header)
 * has a byte >= 0x80 or the escape character: its fields are slices of
 * its raw bytes, so scanning those covers them all. */
static bool clean_span(const hub_v2_msg *m, const hub__v2_seg *seg, bool hdr) {
    const char *p = seg->fields[hdr ? 3 : 1].p;
    const char *end = seg->raw.p + seg->raw.n;
    if (p == NULL || seg->raw.p == NULL || p < seg->raw.p || p > end) return false;
    for (uint32_t k = hdr ? 3 : 1; k < seg->nfields; k++) {
        const hub_slice *f = &seg->fields[k];
        if (f->n && (f->p < p || f->p + f->n > end)) return false; /* not a parse */
    }
    size_t n = (size_t)(end - p);
    if (m->d.esc && memchr(p, m->d.esc, n)) return false;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        if (w & 0x8080808080808080ull) return false;
    }
    for (; i < n; i++)
        if ((unsigned char)p[i] >= 0x80) return false;
    return true;
}

size_t hub_v2_charset_check(hub_arena *a, const hub_v2_msg *m,
                            hub_v2_finding **out, size_t max) {
    size_t n = 0, cap = 0;
    hub_v2_finding *f = NULL;
    *out = NULL;
    for (size_t s = 0; s < m->nseg && n < max; s++) {
        const hub__v2_seg *seg = &m->segs[s];
        bool hdr = hub__v2_is_header(seg->fields[0]);
        /* Most segments are plain ASCII without escapes: one scan of the
         * segment's bytes (past MSH-2 for a header) instead of per field. */
        if (!seg->dirty && seg->nfields > (hdr ? 3u : 1u) && clean_span(m, seg, hdr)) continue;
        for (size_t k = hdr ? 3 : 1; k < seg->nfields && n < max; k++) {
            hub_slice v = seg->fields[k];
            bool suspicious = false;
            for (size_t i = 0; i < v.n; i++) {
                unsigned char c = (unsigned char)v.p[i];
                if (c >= 0x80 || (m->d.esc && c == (unsigned char)m->d.esc)) {
                    suspicious = true;
                    break;
                }
            }
            if (!suspicious) continue;
            hub_v2_text_out t;
            if (hub_v2_decode(a, m, v, &t, NULL) != HUB_OK) return n;
            if (!(t.flags & (HUB_V2_TEXT_BAD_BYTES | HUB_V2_TEXT_BAD_ESCAPE))) continue;
            if (n == cap) {
                size_t nc = cap ? cap * 2 : 8;
                hub_v2_finding *g = hub_arena_alloc(a, nc * sizeof *g);
                if (g == NULL) return n;
                if (n) memcpy(g, f, n * sizeof *g);
                f = g;
                cap = nc;
            }
            hub_v2_finding *x = &f[n++];
            hub__v2_loc(m, s, (uint16_t)k, &x->loc);
            x->code = HUB_V2_E_DATA_TYPE;
            x->severity = HUB_V2_SEV_WARNING;
            x->text = (t.flags & HUB_V2_TEXT_BAD_BYTES)
                          ? "bytes contradict the declared character set"
                          : "malformed or unsupported escape sequence";
            bool inside = m->n && v.p >= m->in && v.p + v.n <= m->in + m->n;
            x->offset = (t.flags & HUB_V2_TEXT_BAD_BYTES) ? t.bad_offset
                        : inside                          ? (size_t)(v.p - m->in)
                                                          : SIZE_MAX;
            *out = f;
        }
    }
    return n;
}
