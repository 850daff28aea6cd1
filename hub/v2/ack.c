/* Acknowledgements: original (AA/AE/AR) and enhanced (CA/CE/CR) mode, ERR
 * segments from findings, and the best ACK for bytes that did not parse. */
#include "internal.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

const char *hub_v2_errcode_text(int code) {
    switch (code) {
    case 0: return "Message accepted";
    case 100: return "Segment sequence error";
    case 101: return "Required field missing";
    case 102: return "Data type error";
    case 103: return "Table value not found";
    case 104: return "Value too long";
    case 200: return "Unsupported message type";
    case 201: return "Unsupported event code";
    case 202: return "Unsupported processing id";
    case 203: return "Unsupported version id";
    case 204: return "Unknown key identifier";
    case 205: return "Duplicate key identifier";
    case 206: return "Application record locked";
    case 207: return "Application internal error";
    default: return "Unknown error";
    }
}

static bool slice_nocase(hub_slice s, const char *lit) {
    return s.p && hub_slice_eq_nocase(s, lit);
}

static hub_v2_ack_mode mode_of(hub_slice accept, hub_slice app) {
    return (accept.n > 0 || app.n > 0) ? HUB_V2_ACKMODE_ENHANCED : HUB_V2_ACKMODE_ORIGINAL;
}

hub_v2_ack_mode hub_v2_msg_ack_mode(const hub_v2_msg *m) {
    return mode_of(m->msh.accept_ack, m->msh.app_ack);
}

bool hub_v2_ack_wanted(const hub_v2_msg *m, hub_v2_ack_status status) {
    if (hub_v2_msg_ack_mode(m) == HUB_V2_ACKMODE_ORIGINAL) return true;
    hub_slice v = m->msh.accept_ack;
    if (slice_nocase(v, "NE")) return false;
    if (slice_nocase(v, "ER")) return status != HUB_V2_ACK_ACCEPT;
    if (slice_nocase(v, "SU")) return status == HUB_V2_ACK_ACCEPT;
    return true;
}

/* What the ACK needs from the message, as raw slices in its delimiters. */
typedef struct {
    hub_v2_delims d;
    hub_slice enc;  /* MSH-2 text to write */
    hub_slice f[20]; /* MSH fields by number */
    bool sanitize;   /* values come from unparsed bytes */
} ack_src;

typedef struct {
    hub_buf *out;
    const ack_src *src;
    bool fail;
    bool special[256]; /* bytes hub_v2_escape rewrites */
} w_t;

static inline void put(w_t *w, const void *p, size_t n) {
    if (w->fail || n == 0) return;
    hub_buf *b = w->out;
    if (b->cap - b->n > n) { /* the common case: room (and for the NUL) */
        memcpy(b->p + b->n, p, n);
        b->n += n;
        b->p[b->n] = '\0';
        return;
    }
    if (hub_buf_append(b, p, n) != HUB_OK) w->fail = true;
}
static inline void putc_(w_t *w, char c) {
    hub_buf *b = w->out;
    if (!w->fail && b->cap - b->n > 1) {
        b->p[b->n++] = c;
        b->p[b->n] = '\0';
        return;
    }
    put(w, &c, 1);
}
static inline void puts_(w_t *w, const char *s) { put(w, s, strlen(s)); }

static void special_init(w_t *w) {
    const hub_v2_delims *d = &w->src->d;
    memset(w->special, 0, sizeof w->special);
    w->special[(unsigned char)d->field] = true;
    w->special[(unsigned char)d->comp] = true;
    w->special[(unsigned char)d->rep] = true;
    w->special[(unsigned char)(d->esc ? d->esc : '\\')] = true;
    if (d->sub) w->special[(unsigned char)d->sub] = true;
    if (d->trunc) w->special[(unsigned char)d->trunc] = true;
    w->special['\r'] = w->special['\n'] = true;
}

/* Escaped text; copied as is when nothing in it needs an escape. */
static void put_text(w_t *w, const char *s) {
    if (w->fail) return;
    size_t n = 0;
    while (s[n] && !w->special[(unsigned char)s[n]]) n++;
    if (s[n] == '\0') {
        put(w, s, n);
        return;
    }
    if (hub_v2_escape(hub_slice_cstr(s), &w->src->d, w->out) != HUB_OK) w->fail = true;
}

/* A value copied from the message: as is when it was parsed; from unparsed
 * bytes, only printable bytes other than the field separator, capped. */
static void put_raw(w_t *w, hub_slice v) {
    if (v.p == NULL || v.n == 0) return;
    if (!w->src->sanitize) {
        put(w, v.p, v.n);
        return;
    }
    size_t n = v.n < 80 ? v.n : 80;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v.p[i];
        if (c < 0x20 || c == 0x7F || c == (unsigned char)w->src->d.field) continue;
        putc_(w, (char)c);
    }
}

static bool version_ge_25(hub_slice v) {
    if (v.p == NULL || v.n < 3 || v.p[0] < '0' || v.p[0] > '9' || v.p[1] != '.')
        return true; /* unknown: the current layout */
    int major = v.p[0] - '0', minor = 0;
    for (size_t i = 2; i < v.n && v.p[i] >= '0' && v.p[i] <= '9' && minor < 100; i++)
        minor = minor * 10 + (v.p[i] - '0');
    return major > 2 || (major == 2 && minor >= 5);
}

/* Decimal digits of v into b[24]; returns the length. */
static size_t fmt_int(char *b, long v) {
    char t[24];
    size_t n = 0;
    unsigned long u = v < 0 ? 0ul - (unsigned long)v : (unsigned long)v;
    do {
        t[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) t[n++] = '-';
    for (size_t i = 0; i < n; i++) b[i] = t[n - 1 - i];
    b[n] = '\0';
    return n;
}

static void put_num(w_t *w, unsigned v) {
    char b[24];
    put(w, b, fmt_int(b, (long)v));
}

static void put_loc(w_t *w, const hub_v2_loc *l, char sep) {
    if (l->seg_id[0] == '\0') return;
    put(w, l->seg_id, strnlen(l->seg_id, 3));
    unsigned v[5] = {l->seg_seq ? l->seg_seq : 1, l->field, l->rep, l->comp, l->sub};
    int last = 0;
    for (int i = 1; i < 5; i++)
        if (v[i]) last = i;
    if (last >= 2 && v[2] == 0) v[2] = 1; /* a component implies a repetition */
    for (int i = 0; i <= last; i++) {
        putc_(w, sep);
        if (v[i]) put_num(w, v[i]);
    }
}

static hub_status emit(const ack_src *src, const hub_v2_ack_req *req_in,
                       bool force_reject, hub_buf *out, hub_err *err) {
    static const hub_v2_ack_req dflt = {HUB_V2_ACK_REJECT, NULL, 0, NULL, NULL,
                                        NULL, NULL, NULL, false};
    const hub_v2_ack_req *req = req_in ? req_in : &dflt;
    w_t w;
    w.out = out;
    w.src = src;
    w.fail = false;
    special_init(&w);
    /* Room for the usual ACK at once (it grows as needed). */
    size_t nreq = req->findings ? req->nfindings : 0;
    if (nreq > HUB_MAX_ACK_ERRORS) nreq = HUB_MAX_ACK_ERRORS;
    (void)hub_buf_reserve(out, 512 + nreq * 160); /* a failure shows below */
    const hub_v2_delims *d = &src->d;
    char fs = d->field, cs = d->comp;
    hub_v2_ack_status st = force_reject ? HUB_V2_ACK_REJECT : req->status;
    if ((unsigned)st > HUB_V2_ACK_REJECT) st = HUB_V2_ACK_REJECT;
    bool enhanced = !req->force_original &&
                    mode_of(src->f[15], src->f[16]) == HUB_V2_ACKMODE_ENHANCED;

    /* MSH */
    puts_(&w, "MSH");
    putc_(&w, fs);
    put(&w, src->enc.p, src->enc.n);
    putc_(&w, fs);
    if (req->app) put_text(&w, req->app);
    else if (src->f[5].n) put_raw(&w, src->f[5]);
    else puts_(&w, "HUB");
    putc_(&w, fs);
    if (req->facility) put_text(&w, req->facility);
    else put_raw(&w, src->f[6]);
    putc_(&w, fs);
    put_raw(&w, src->f[3]);
    putc_(&w, fs);
    put_raw(&w, src->f[4]);
    putc_(&w, fs);
    if (req->timestamp) {
        put_text(&w, req->timestamp);
    } else {
        /* Formatted once per second and thread. */
        static _Thread_local time_t ts_sec = (time_t)-1;
        static _Thread_local char ts[32];
        time_t t = (time_t)(hub_now_ms() / 1000);
        if (t != ts_sec) {
            struct tm tm;
            gmtime_r(&t, &tm);
            strftime(ts, sizeof ts, "%Y%m%d%H%M%S+0000", &tm);
            ts_sec = t;
        }
        puts_(&w, ts);
    }
    putc_(&w, fs);
    putc_(&w, fs);
    puts_(&w, "ACK");
    hub_slice trig = hub_v2_split(src->f[9], cs, 2, NULL);
    if (trig.n) {
        putc_(&w, cs);
        put_raw(&w, trig);
        putc_(&w, cs);
        puts_(&w, "ACK");
    }
    putc_(&w, fs);
    if (req->control_id) {
        put_text(&w, req->control_id);
    } else {
        char u[37], id[21];
        hub_uuid(u);
        size_t k = 0;
        for (size_t i = 0; u[i] && k < 20; i++)
            if (u[i] != '-') id[k++] = u[i];
        id[k] = '\0';
        puts_(&w, id);
    }
    putc_(&w, fs);
    if (src->f[11].n) put_raw(&w, src->f[11]);
    else puts_(&w, "P");
    putc_(&w, fs);
    if (src->f[12].n) put_raw(&w, src->f[12]);
    else puts_(&w, "2.5.1");
    if (enhanced) {
        /* The ACK asks for no acknowledgement of its own. */
        putc_(&w, fs);
        putc_(&w, fs);
        putc_(&w, fs);
        puts_(&w, "NE");
        putc_(&w, fs);
        puts_(&w, "NE");
    }
    putc_(&w, '\r');

    /* MSA */
    static const char *const codes[2][3] = {{"AA", "AE", "AR"}, {"CA", "CE", "CR"}};
    puts_(&w, "MSA");
    putc_(&w, fs);
    puts_(&w, codes[enhanced][st]);
    putc_(&w, fs);
    put_raw(&w, src->f[10]);
    if (req->text) {
        putc_(&w, fs);
        put_text(&w, req->text);
    }
    putc_(&w, '\r');

    /* ERR */
    bool v25 = version_ge_25(hub_v2_split(src->f[12], cs, 1, NULL));
    char sub = d->sub ? d->sub : '&';
    size_t nerr = req->nfindings < HUB_MAX_ACK_ERRORS ? req->nfindings : HUB_MAX_ACK_ERRORS;
    for (size_t i = 0; req->findings && i < nerr; i++) {
        const hub_v2_finding *f = &req->findings[i];
        char code[24];
        if (f->code >= -999999 && f->code <= 9999999) fmt_int(code, f->code);
        else snprintf(code, 8, "%d", f->code); /* as before: cut to 7 */
        const char *ctext = hub_v2_errcode_text(f->code);
        puts_(&w, "ERR");
        putc_(&w, fs);
        if (v25) {
            putc_(&w, fs);
            put_loc(&w, &f->loc, cs);
            putc_(&w, fs);
            puts_(&w, code);
            putc_(&w, cs);
            put_text(&w, ctext);
            putc_(&w, cs);
            puts_(&w, "HL70357");
            putc_(&w, fs);
            char sev = f->severity == 'W' || f->severity == 'I' ? f->severity : 'E';
            putc_(&w, sev);
            if (f->text && f->text[0]) {
                for (int k = 0; k < 4; k++) putc_(&w, fs); /* to ERR-8 */
                put_text(&w, f->text);
            }
        } else {
            /* ERR-1 (ELD): segment^sequence^field^code&text&table. */
            hub_v2_loc l = f->loc;
            if (l.seg_id[0]) {
                put(&w, l.seg_id, strnlen(l.seg_id, 3));
                putc_(&w, cs);
                put_num(&w, l.seg_seq ? l.seg_seq : 1);
                putc_(&w, cs);
                if (l.field) put_num(&w, l.field);
            } else {
                putc_(&w, cs);
                putc_(&w, cs);
            }
            putc_(&w, cs);
            puts_(&w, code);
            putc_(&w, sub);
            const char *t = f->text && f->text[0] ? f->text : ctext;
            /* Sub-component text: escape it at that level too. */
            put_text(&w, t);
            putc_(&w, sub);
            puts_(&w, "HL70357");
        }
        putc_(&w, '\r');
    }
    if (w.fail) return hub_err_set(err, HUB_E_NOMEM, "ack", "out of memory");
    return HUB_OK;
}

hub_status hub_v2_ack_build(const hub_v2_msg *m, const hub_v2_ack_req *req,
                            hub_buf *out, hub_err *err) {
    ack_src src;
    memset(&src, 0, sizeof src);
    src.d = m->d;
    src.enc = hub_v2_at(m, 0, 2, 0, 0, 0);
    for (size_t i = 3; i < 20; i++) src.f[i] = hub_v2_at(m, 0, i, 0, 0, 0);
    /* MSH-11 and MSH-12: their first component only. */
    src.f[11] = hub_v2_at(m, 0, 11, 1, 1, 0);
    src.f[12] = hub_v2_at(m, 0, 12, 1, 1, 0);
    src.f[9] = hub_v2_at(m, 0, 9, 1, 0, 0);
    return emit(&src, req, false, out, err);
}

hub_status hub_v2_ack_build_raw(const char *p, size_t n, const hub_v2_ack_req *req,
                                hub_buf *out, hub_err *err) {
    ack_src src;
    memset(&src, 0, sizeof src);
    src.d = hub_v2_delims_default();
    src.enc = hub_slice_of("^~\\&", 4);
    src.sanitize = true;
    size_t i = 0;
    if (p && n >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) i = 3;
    while (p && i < n && (p[i] == '\r' || p[i] == '\n' || p[i] == ' ')) i++;
    if (p && n - i >= 4 && memcmp(p + i, "MSH", 3) == 0) {
        hub_v2_delims d;
        size_t enc_len;
        hub_err e2;
        size_t end = i;
        while (end < n && p[end] != '\r' && p[end] != '\n') end++;
        bool good = hub__v2_read_delims(p + i + 3, end - i - 3, "MSH", &d, &enc_len, &e2);
        char fs = p[i + 3];
        bool fs_ok = fs != '\r' && fs != '\n' && (unsigned char)fs >= 0x20 &&
                     (unsigned char)fs < 0x7F && !(fs >= 'A' && fs <= 'Z') &&
                     !(fs >= 'a' && fs <= 'z') && !(fs >= '0' && fs <= '9') && fs != ' ';
        if (good) {
            src.d = d;
            src.enc = hub_slice_of(p + i + 4, enc_len);
            if (enc_len == 5 && d.trunc == 0) src.enc = hub_slice_of("^~\\&", 4);
        }
        if (fs_ok) {
            /* Split the first line at the separator: MSH-1 is the separator,
             * so piece k (0-based) after "MSH" is MSH-(k+1). */
            hub_slice line = hub_slice_of(p + i + 4, end - i - 4);
            size_t cnt;
            hub_v2_split(line, fs, 0, &cnt);
            for (size_t k = 1; k <= cnt && k + 1 < 20; k++)
                src.f[k + 1] = hub_v2_split(line, fs, k, NULL);
            if (!good) {
                /* Without valid encoding characters, keep only what cannot
                 * be mistaken for structure: field-level values. */
                src.f[2] = (hub_slice){NULL, 0};
            }
            src.f[11] = hub_v2_split(src.f[11], src.d.comp, 1, NULL);
            src.f[12] = hub_v2_split(src.f[12], src.d.comp, 1, NULL);
            /* Only take a version that looks like one. */
            hub_slice v = src.f[12];
            bool vok = v.n >= 3 && v.n <= 8;
            for (size_t k = 0; vok && k < v.n; k++)
                vok = (v.p[k] >= '0' && v.p[k] <= '9') || v.p[k] == '.';
            if (!vok) src.f[12] = (hub_slice){NULL, 0};
            if (!good) {
                /* The ACK uses the standard set; keep its field separator
                 * out of the values via put_raw. */
                src.d.field = '|';
            }
        }
    }
    return emit(&src, req, true, out, err);
}
