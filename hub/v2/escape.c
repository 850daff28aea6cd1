/* Reading values: escape sequences and character sets, decoded to UTF-8
 * only when a value is read; and escaping text for writing. */
#include "internal.h"

#include <stdio.h>
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
    char *o, *end;          /* output cursor and end of its room */
    hub_arena *a;
    hub__v2_cstate st;      /* current sets (\C..\, \M..\ switch them) */
    hub_v2_charset cs;      /* the message's charset (where ESC % @ returns) */
    const hub_v2_delims *d;
    hub__v2_conv conv;
    hub_v2_text_out *out;
} dec;

static void mark_bad(dec *D, size_t off) {
    D->out->flags |= HUB_V2_TEXT_BAD_BYTES;
    if (D->out->bad_offset == SIZE_MAX) D->out->bad_offset = off;
}

static void put_cp(dec *D, uint32_t cp) { D->o += hub__v2_utf8_put(cp, D->o); }

/* A byte that contradicts the current set: U+FFFD, flagged. */
static size_t bad1(dec *D, size_t at) {
    put_cp(D, 0xFFFD);
    mark_bad(D, at);
    return 1;
}

/* A high byte where UTF-8 is expected (`ok`: without a flag when valid). */
static size_t emit_utf8(dec *D, const unsigned char *b, size_t n, size_t at, bool ok) {
    size_t len = hub__v2_utf8_len(b, n);
    if (len < 2) return bad1(D, at);
    memcpy(D->o, b, len);
    D->o += len;
    if (!ok) mark_bad(D, at); /* UTF-8 in a message that says otherwise: keep it, say so */
    return len;
}

/* One character of `len` bytes through iconv from `from`. */
static size_t emit_iconv(dec *D, const char *from, const unsigned char *b, size_t len,
                         size_t at) {
    size_t k = hub__v2_conv_run(&D->conv, from, "UTF-8", b, len, D->o,
                                (size_t)(D->end - D->o));
    if (k == SIZE_MAX || k == 0) return bad1(D, at);
    D->o += k;
    return len;
}

/* A 94x94 pair (both bytes 0x21-0x7E, or both 0xA1-0xFE) of set g. */
static size_t emit_pair(dec *D, const hub__v2_gset *g, const unsigned char *b, size_t n,
                        size_t at) {
    unsigned char lo = b[0] & 0x7F;
    if (n < 2 || lo < 0x21 || lo > 0x7E || (b[1] & 0x80) != (b[0] & 0x80) ||
        (b[1] & 0x7F) < 0x21 || (b[1] & 0x7F) > 0x7E)
        return bad1(D, at);
    unsigned char e[3];
    size_t k = 0;
    if (g->kind == HUB__G_DB3) e[k++] = 0x8F;
    e[k++] = b[0] | 0x80;
    e[k++] = b[1] | 0x80;
    if (emit_iconv(D, g->iconv, e, k, at) != k) return 1; /* flagged: resync by one */
    return 2;
}

static bool is_delim(const dec *D, unsigned char c) {
    const hub_v2_delims *d = D->d;
    return c == (unsigned char)d->field || c == (unsigned char)d->comp ||
           c == (unsigned char)d->rep || (d->esc && c == (unsigned char)d->esc) ||
           (d->sub && c == (unsigned char)d->sub) || (d->trunc && c == (unsigned char)d->trunc);
}

/* One character at b (n > 0 bytes left) read in set g (G0 for bytes below
 * 0x80, G1 above). Returns the bytes used. */
static size_t emit_in_set(dec *D, const hub__v2_gset *g, const unsigned char *b, size_t n,
                          size_t at) {
    unsigned char c = b[0];
    bool ctl = c <= 0x20 || c == 0x7F; /* controls and space are in no 94-set */
    switch (g->kind) {
    case HUB__G_ASCII: *D->o++ = (char)c; return 1;
    case HUB__G_NONE: return emit_utf8(D, b, n, at, false);
    case HUB__G_LATIN1:
        if (hub__v2_utf8_len(b, n) >= 2) return emit_utf8(D, b, n, at, false);
        if (c < 0xA0) return bad1(D, at);
        put_cp(D, c);
        return 1;
    case HUB__G_SB: return c < 0xA0 ? bad1(D, at) : emit_iconv(D, g->iconv, b, 1, at);
    case HUB__G_JIS_ROMAN:
        if (c == 0x5C && !is_delim(D, c)) put_cp(D, 0xA5);
        else if (c == 0x7E && !is_delim(D, c)) put_cp(D, 0x203E);
        else *D->o++ = (char)c;
        return 1;
    case HUB__G_KANA:
        if (ctl && c < 0x80) {
            *D->o++ = (char)c;
            return 1;
        }
        if ((c & 0x7F) < 0x21 || (c & 0x7F) > 0x5F) return bad1(D, at);
        put_cp(D, 0xFF61 + (uint32_t)((c & 0x7F) - 0x21));
        return 1;
    default: /* DB, DB3 */
        if (ctl && c < 0x80) {
            *D->o++ = (char)c;
            return 1;
        }
        return emit_pair(D, g, b, n, at);
    }
}

/* Bytes of one character of an 8-bit multi-byte encoding led by b[0]. */
static size_t whole_len(const char *enc, const unsigned char *b, size_t n) {
    if (b[0] < 0x80) return 1;
    size_t len = 2;
    if (b[0] == 0x8E && strcmp(enc, "EUC-TW") == 0) len = 4;
    else if (n >= 2 && b[1] >= '0' && b[1] <= '9' && strcmp(enc, "GB18030") == 0) len = 4;
    return len <= n ? len : n;
}

/* Emits bytes read in the current state as UTF-8. `off` is the input
 * offset of b[0] (SIZE_MAX when unknown); `step` is 1 when each byte has
 * its own offset, 0 when all share one (bytes from a \X..\ escape). */
static void emit_bytes(dec *D, const unsigned char *b, size_t n, size_t off,
                       int step) {
    size_t i = 0;
    while (i < n) {
        size_t at = off == SIZE_MAX ? SIZE_MAX : off + (step ? i : 0);
        unsigned char c = b[i];
        if (D->st.mode == HUB__MODE_UTF8) {
            if (c < 0x80) *D->o++ = (char)c, i++;
            else i += emit_utf8(D, b + i, n - i, at, true);
        } else if (D->st.mode == HUB__MODE_WHOLE) {
            if (c < 0x80) {
                *D->o++ = (char)c;
                i++;
                continue;
            }
            size_t len = whole_len(D->st.whole, b + i, n - i);
            size_t used = emit_iconv(D, D->st.whole, b + i, len, at);
            i += used;
        } else {
            i += emit_in_set(D, c < 0x80 ? D->st.g0 : D->st.g1, b + i, n - i, at);
        }
    }
}

/* Applies an ISO 2022 designation (the bytes after ESC). */
static bool designate(dec *D, const unsigned char *seq, size_t n) {
    if (n == 2 && seq[0] == 0x25 && seq[1] == 0x47) { /* ESC % G: UTF-8 */
        D->st.mode = HUB__MODE_UTF8;
        return true;
    }
    if (n == 2 && seq[0] == 0x25 && seq[1] == 0x40) { /* ESC % @: back to ISO 2022 */
        hub__v2_cs_initial(D->cs, &D->st);
        if (D->st.mode == HUB__MODE_UTF8) {
            D->st.mode = HUB__MODE_ISO;
            D->st.g0 = &hub__v2_g_ascii;
            D->st.g1 = &hub__v2_g_none;
        }
        return true;
    }
    int g;
    const hub__v2_gset *set = hub__v2_designation(seq, n, &g);
    if (set == NULL) return false;
    if (D->st.mode != HUB__MODE_ISO) {
        D->st.mode = HUB__MODE_ISO;
        D->st.g0 = &hub__v2_g_ascii;
        D->st.g1 = &hub__v2_g_none;
    }
    if (g == 0) D->st.g0 = set;
    else D->st.g1 = set;
    return true;
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
        /* All the bytes at once, so a character spanning them stays whole. */
        unsigned char *buf = hub_arena_alloc(D->a, h / 2);
        if (buf == NULL) return false;
        for (size_t i = 0; i < h; i += 2)
            buf[i / 2] = (unsigned char)(hexval(s[1 + i]) * 16 + hexval(s[2 + i]));
        emit_bytes(D, buf, h / 2, off, 0);
        return true;
    }
    /* \Cxxyy\ (single-byte set) and \Mxxyy\ or \Mxxyyzz\ (multi-byte):
     * the hex bytes of an ISO 2022 escape sequence after its ESC. */
    if ((s[0] == 'C' && n == 5) || (s[0] == 'M' && (n == 5 || n == 7))) {
        if (!all_hex(s + 1, n - 1)) return false;
        unsigned char seq[3];
        size_t k = (n - 1) / 2;
        for (size_t i = 0; i < k; i++)
            seq[i] = (unsigned char)(hexval(s[1 + 2 * i]) * 16 + hexval(s[2 + 2 * i]));
        return designate(D, seq, k);
    }
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

/* Decodes the escape at p (the escape character); returns where reading
 * goes on. Unknown, malformed or unterminated: kept verbatim, flagged. */
static const char *escape_at(dec *D, const char *p, const char *end, size_t off) {
    char esc = D->d->esc;
    const char *close = memchr(p + 1, esc, (size_t)(end - p - 1));
    if (close && close > p + 1 && do_escape(D, D->d, p + 1, (size_t)(close - p - 1), off))
        return close + 1;
    const char *stop = close ? close + 1 : p + 1;
    if (!(close && close > p + 1 && p[1] == 'Z'))
        D->out->flags |= HUB_V2_TEXT_BAD_ESCAPE;
    memcpy(D->o, p, (size_t)(stop - p));
    D->o += stop - p;
    return stop;
}

/* A raw ISO 2022 escape sequence at p (ESC, intermediates 0x20-0x2F, a
 * final byte) in a message whose MSH-18 names an ISO 2022 set. */
static const char *raw_escape_at(dec *D, const char *p, const char *end) {
    const char *q = p + 1;
    while (q < end && q - p <= 4 && *q >= 0x20 && *q <= 0x2F) q++;
    if (q < end && *q >= 0x30 && *q <= 0x7E && q > p + 1 &&
        designate(D, (const unsigned char *)p + 1, (size_t)(q - p)))
        return q + 1;
    D->out->flags |= HUB_V2_TEXT_BAD_ESCAPE;
    *D->o++ = *p;
    return p + 1;
}

/* The end of the run of bytes from p that the current sets read (up to
 * the next escape character or raw ESC); a multi-byte character of an
 * 8-bit encoding keeps its trail bytes whatever they are. */
static const char *run_end(const dec *D, const char *p, const char *end, bool raw_esc) {
    const char *q = p;
    char esc = D->d->esc;
    bool plain = D->st.mode != HUB__MODE_ISO || D->st.g0 == &hub__v2_g_ascii;
    while (q < end) {
        unsigned char c = (unsigned char)*q;
        if (c < 0x80 && ((esc && *q == esc) || (raw_esc && c == 0x1B) || plain)) {
            if (q == p) q++; /* never an empty run */
            break;
        }
        if (D->st.mode == HUB__MODE_WHOLE && c >= 0x80)
            q += whole_len(D->st.whole, (const unsigned char *)q, (size_t)(end - q));
        else
            q++;
    }
    return q;
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
    /* Fields one by one: an initializer would zero the iconv cache too. */
    dec D;
    D.o = buf;
    D.end = buf + raw.n * 3 + 15;
    D.a = a;
    D.cs = m ? m->cs : HUB_V2_CS_UTF8;
    D.d = &d;
    D.out = out;
    hub__v2_cs_initial(D.cs, &D.st);
    hub__v2_conv_init(&D.conv);
    bool raw_esc = m && m->iso2022;
    /* The bytes that end a plain run besides those >= 0x80 (never equal
     * to a byte below 0x80 when unused). */
    const char stop1 = d.esc ? d.esc : (char)0x80, stop2 = raw_esc ? (char)0x1B : stop1;
    const char *p = raw.p, *end = raw.p + raw.n;
    while (p < end) {
        const char *q = p;
        if (D.st.mode != HUB__MODE_ISO || D.st.g0 == &hub__v2_g_ascii) {
            /* Plain ASCII runs are copied as they are. */
            while (q < end && (unsigned char)*q < 0x80 && *q != stop1 && *q != stop2) q++;
            if (q > p) {
                if (d.trunc && memchr(p, d.trunc, (size_t)(q - p)))
                    out->flags |= HUB_V2_TEXT_TRUNCATED;
                memcpy(D.o, p, (size_t)(q - p));
                D.o += q - p;
                p = q;
                continue;
            }
        }
        size_t off = base == SIZE_MAX ? SIZE_MAX : base + (size_t)(p - raw.p);
        if (d.esc && *p == d.esc) {
            p = escape_at(&D, p, end, off);
            continue;
        }
        if (raw_esc && *p == 0x1B) {
            p = raw_escape_at(&D, p, end);
            continue;
        }
        q = run_end(&D, p, end, raw_esc);
        emit_bytes(&D, (const unsigned char *)p, (size_t)(q - p), off, 1);
        p = q;
    }
    if (D.conv.n) hub__v2_conv_release(&D.conv);
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

/* ---- writing non-ASCII text in the message's charset ---- */

/* The byte charset cs writes for code point cp (len UTF-8 bytes at u), or
 * -1 when cs has none: then the character goes in a UTF-8 escape. */
static int native_byte(hub__v2_conv *cv, hub_v2_charset cs, uint32_t cp,
                       const unsigned char *u, size_t len) {
    if (cs == HUB_V2_CS_LATIN1) return cp >= 0xA0 && cp <= 0xFF ? (int)cp : -1;
    const char *name = hub__v2_cs_iconv_name(cs);
    if (name == NULL || strncmp(name, "ISO-8859-", 9) != 0) return -1;
    char b[4];
    size_t k = hub__v2_conv_run(cv, "UTF-8", name, u, len, b, sizeof b);
    return k == 1 && (unsigned char)b[0] >= 0xA0 ? (unsigned char)b[0] : -1;
}

static uint32_t utf8_cp(const unsigned char *u, size_t len) {
    if (len == 1) return u[0];
    uint32_t cp = u[0] & (0x7F >> len);
    for (size_t i = 1; i < len; i++) cp = (cp << 6) | (u[i] & 0x3F);
    return cp;
}

/* Appends a run of non-ASCII UTF-8 text: as it is in a UTF-8 message; as
 * the charset's own bytes where it has the character; otherwise each
 * character as \Xhh..\ (its UTF-8 bytes) between \C2547\ (ISO-IR 192,
 * UTF-8) and \C2540\ (back to the message's charset). */
static hub_status put_non_ascii(const hub_v2_msg *m, hub__v2_conv *cv,
                                const unsigned char *u, size_t n, hub_buf *out) {
    hub__v2_cstate st;
    hub__v2_cs_initial(m->cs, &st);
    if (st.mode == HUB__MODE_UTF8) return hub_buf_append(out, u, n);
    char esc = m->d.esc;
    bool in_utf8 = false;
    for (size_t i = 0; i < n;) {
        size_t len = hub__v2_utf8_len(u + i, n - i);
        int b = native_byte(cv, m->cs, utf8_cp(u + i, len), u + i, len);
        char t[32];
        size_t k = 0;
        if (b >= 0 && in_utf8) k += (size_t)snprintf(t, sizeof t, "%cC2540%c", esc, esc);
        if (b >= 0) t[k++] = (char)b;
        else {
            if (!in_utf8) k += (size_t)snprintf(t, sizeof t, "%cC2547%c", esc, esc);
            t[k++] = esc;
            t[k++] = 'X';
            for (size_t j = 0; j < len; j++)
                k += (size_t)snprintf(t + k, sizeof t - k, "%02X", u[i + j]);
            t[k++] = esc;
        }
        in_utf8 = b < 0;
        if (hub_buf_append(out, t, k) != HUB_OK) return HUB_E_NOMEM;
        i += len;
    }
    if (in_utf8) {
        char t[8];
        int k = snprintf(t, sizeof t, "%cC2540%c", esc, esc);
        if (hub_buf_append(out, t, (size_t)k) != HUB_OK) return HUB_E_NOMEM;
    }
    return HUB_OK;
}

/* True when the message's charset writes every non-ASCII character of
 * text as it is or as its own bytes (no escape needed). */
static bool needs_no_escape(const hub_v2_msg *m, hub__v2_conv *cv, const unsigned char *u,
                            size_t n) {
    hub__v2_cstate st;
    hub__v2_cs_initial(m->cs, &st);
    if (st.mode == HUB__MODE_UTF8) return true;
    for (size_t i = 0; i < n;) {
        size_t len = hub__v2_utf8_len(u + i, n - i);
        if (u[i] >= 0x80 && native_byte(cv, m->cs, utf8_cp(u + i, len), u + i, len) < 0)
            return false;
        i += len;
    }
    return true;
}

hub_status hub__v2_escape_for(const hub_v2_msg *m, const char *text, hub_buf *out,
                              const char *where, hub_err *err) {
    const unsigned char *u = (const unsigned char *)text;
    size_t n = strlen(text);
    for (size_t i = 0; i < n;) {
        size_t len = hub__v2_utf8_len(u + i, n - i);
        if (len == 0) return hub_err_set(err, HUB_E_ARG, where, "value is not valid UTF-8");
        i += len;
    }
    hub__v2_conv cv;
    hub__v2_conv_init(&cv);
    hub_status rc = HUB_OK;
    if (m->d.esc == 0 && !needs_no_escape(m, &cv, u, n)) {
        rc = hub_err_set(err, HUB_E_ARG, where,
                         "non-ASCII text needs an escape in this message's charset "
                         "but MSH-2 has no escape character");
        goto done;
    }
    for (size_t i = 0; i < n && rc == HUB_OK;) {
        size_t j = i;
        while (j < n && u[j] < 0x80) j++;
        /* Without an escape character nothing is escaped: the caller has
         * refused text holding a delimiter. */
        if (j > i)
            rc = m->d.esc ? hub_v2_escape(hub_slice_of(text + i, j - i), &m->d, out)
                          : hub_buf_append(out, text + i, j - i);
        i = j;
        while (j < n && u[j] >= 0x80) j++;
        if (j > i && rc == HUB_OK) rc = put_non_ascii(m, &cv, u + i, j - i, out);
        i = j;
    }
    if (rc == HUB_E_NOMEM) hub_err_set(err, HUB_E_NOMEM, where, "out of memory");
done:
    hub__v2_conv_release(&cv);
    return rc;
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
    if (m->iso2022 && memchr(p, 0x1B, n)) return false;
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
                if (c >= 0x80 || (m->d.esc && c == (unsigned char)m->d.esc) ||
                    (m->iso2022 && c == 0x1B)) {
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
