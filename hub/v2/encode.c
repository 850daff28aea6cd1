/* Building and changing messages, and writing them back as ER7. */
#include "internal.h"

#include <stdio.h>
#include <string.h>

static const char empty_text[1] = "";

hub_status hub_v2_msg_new(hub_arena *a, const hub_v2_delims *d,
                          hub_v2_msg **out, hub_err *err) {
    *out = NULL;
    hub_v2_msg *m = hub_arena_calloc(a, sizeof *m);
    if (m == NULL) return hub_err_set(err, HUB_E_NOMEM, "message", "arena full");
    m->d = d ? *d : hub_v2_delims_default();
    size_t k = 0;
    m->delim_text[k++] = m->d.field;
    m->delim_text[k++] = m->d.comp;
    m->delim_text[k++] = m->d.rep;
    if (m->d.esc) m->delim_text[k++] = m->d.esc;
    if (m->d.esc && m->d.sub) m->delim_text[k++] = m->d.sub;
    if (m->d.esc && m->d.sub && m->d.trunc) m->delim_text[k++] = m->d.trunc;
    m->delim_text[k] = '\0';
    m->in = empty_text;
    m->n = 0;
    m->head = hub_slice_of(empty_text, 0);
    m->cs = HUB_V2_CS_ASCII;
    *out = m;
    return HUB_OK;
}

/* Makes room for field index `field` in segment s (empty fields added). */
static hub_status ensure_field(hub_arena *a, hub__v2_seg *s, size_t field,
                               hub_err *err) {
    if (field < s->nfields) return HUB_OK;
    if (field > HUB_MAX_FIELDS)
        return hub_err_set(err, HUB_E_LIMIT, "field", "segment over %d fields",
                           HUB_MAX_FIELDS);
    if (field >= s->cap) {
        size_t cap = s->cap ? s->cap : 8;
        while (cap <= field) cap *= 2;
        hub_slice *f = hub_arena_alloc(a, cap * sizeof *f);
        if (f == NULL) return hub_err_set(err, HUB_E_NOMEM, "field", "arena full");
        if (s->nfields) memcpy(f, s->fields, s->nfields * sizeof *f);
        s->fields = f;
        s->cap = (uint32_t)cap;
    }
    for (size_t i = s->nfields; i <= field; i++) s->fields[i] = hub_slice_of(empty_text, 0);
    s->nfields = (uint32_t)field + 1;
    return HUB_OK;
}

hub_status hub_v2_seg_add(hub_arena *a, hub_v2_msg *m, const char *id,
                          size_t *seg, hub_err *err) {
    if (id == NULL || strlen(id) != 3 || id[0] < 'A' || id[0] > 'Z')
        return hub_err_set(err, HUB_E_ARG, "segment", "segment id is not 3 characters");
    for (int i = 1; i < 3; i++)
        if (!((id[i] >= 'A' && id[i] <= 'Z') || (id[i] >= '0' && id[i] <= '9')))
            return hub_err_set(err, HUB_E_ARG, "segment",
                               "segment id is not upper-case letters or digits");
    if (m->nseg >= HUB_MAX_SEGMENTS)
        return hub_err_set(err, HUB_E_LIMIT, "message", "over %d segments",
                           HUB_MAX_SEGMENTS);
    if (m->nseg == m->capseg) {
        size_t cap = m->capseg ? m->capseg * 2 : 8;
        hub__v2_seg *s = hub_arena_alloc(a, cap * sizeof *s);
        if (s == NULL) return hub_err_set(err, HUB_E_NOMEM, "message", "arena full");
        if (m->nseg) memcpy(s, m->segs, m->nseg * sizeof *s);
        m->segs = s;
        m->capseg = cap;
    }
    char *idc = hub_arena_strndup(a, id, 3);
    if (idc == NULL) return hub_err_set(err, HUB_E_NOMEM, "message", "arena full");
    hub__v2_seg *s = &m->segs[m->nseg];
    memset(s, 0, sizeof *s);
    s->dirty = true;
    s->raw = hub_slice_of(empty_text, 0);
    s->term = hub_slice_of("\r", 1);
    hub_status rc = ensure_field(a, s, 0, err);
    if (rc != HUB_OK) return rc;
    s->fields[0] = hub_slice_of(idc, 3);
    if (hub__v2_is_header(s->fields[0])) {
        rc = ensure_field(a, s, 2, err);
        if (rc != HUB_OK) return rc;
        s->fields[1] = hub_slice_of(m->delim_text, 1);
        s->fields[2] = hub_slice_of(m->delim_text + 1, strlen(m->delim_text + 1));
    }
    /* A message built in code has no terminator after its last segment
     * until another follows; new segments all end with CR. */
    if (seg) *seg = m->nseg;
    m->nseg++;
    if (m->nseg == 1) hub__v2_fill_msh(m);
    return HUB_OK;
}

/* Writes `whole` with its `idx`-th (1-based) piece at `sep` replaced by
 * `piece`, adding empty pieces when there are fewer. */
static hub_status replace_piece(hub_buf *b, hub_slice whole, char sep,
                                size_t idx, hub_slice piece) {
    size_t count;
    hub_v2_split(whole, sep, 0, &count);
    if (whole.p == NULL) count = 0;
    if (count == 0) count = 1; /* an empty value is one empty piece */
    size_t total = idx > count ? idx : count;
    for (size_t i = 1; i <= total; i++) {
        if (i > 1 && hub_buf_append(b, &sep, 1) != HUB_OK) return HUB_E_NOMEM;
        hub_slice v = i == idx ? piece : hub_v2_split(whole, sep, i, NULL);
        if (v.n && hub_buf_append(b, v.p, v.n) != HUB_OK) return HUB_E_NOMEM;
    }
    return HUB_OK;
}

static hub_status store_field(hub_arena *a, hub__v2_seg *s, size_t field,
                              const hub_buf *b, hub_err *err) {
    char *v = hub_arena_strndup(a, b->p ? b->p : "", b->n);
    if (v == NULL) return hub_err_set(err, HUB_E_NOMEM, "field", "arena full");
    s->fields[field] = hub_slice_of(v, b->n);
    s->dirty = true;
    return HUB_OK;
}

hub_status hub_v2_set(hub_arena *a, hub_v2_msg *m, size_t seg, size_t field,
                      size_t rep, size_t comp, size_t sub, const char *text,
                      hub_err *err) {
    if (m == NULL || seg >= m->nseg)
        return hub_err_set(err, HUB_E_ARG, "segment", "no such segment");
    hub__v2_seg *s = &m->segs[seg];
    char where[24];
    snprintf(where, sizeof where, "%.3s-%zu", s->fields[0].p, field);
    if (field == 0 || (field <= 2 && hub__v2_is_header(s->fields[0])))
        return hub_err_set(err, HUB_E_ARG, where, "field cannot be set");
    if (field > HUB_MAX_FIELDS || rep > HUB_MAX_REPS || comp > HUB_MAX_COMPONENTS ||
        sub > HUB_MAX_SUBCOMPONENTS)
        return hub_err_set(err, HUB_E_LIMIT, where, "position over the limits");
    if (sub && m->d.sub == 0)
        return hub_err_set(err, HUB_E_ARG, where, "message has no sub-component separator");
    if (m->d.esc == 0 && text != NULL) {
        /* Without an escape character a delimiter cannot be written. */
        for (const char *c = text; *c; c++) {
            if (*c == m->d.field || *c == m->d.comp || *c == m->d.rep ||
                (m->d.sub && *c == m->d.sub) || *c == '\r' || *c == '\n')
                return hub_err_set(err, HUB_E_ARG, where,
                                   "value needs escaping but MSH-2 has no escape character");
        }
    }
    hub_status rc = ensure_field(a, s, field, err);
    if (rc != HUB_OK) return rc;
    if (rep == 0) rep = 1;

    hub_buf val, b1, b2;
    hub_buf_init(&val);
    hub_buf_init(&b1);
    hub_buf_init(&b2);
    rc = HUB_E_NOMEM;
    if (text == NULL) {
        if (hub_buf_append(&val, "\"\"", 2) != HUB_OK) goto out;
    } else if ((rc = hub__v2_escape_for(m, text, &val, where, err)) != HUB_OK) {
        goto out;
    }
    rc = HUB_E_NOMEM;
    hub_slice f = s->fields[field];
    hub_slice r = hub_v2_split(f, m->d.rep, rep, NULL);
    hub_slice newrep = hub_slice_of(val.p, val.n);
    if (comp > 0 || sub > 0) {
        size_t c = comp ? comp : 1;
        hub_slice cv = hub_v2_split(r, m->d.comp, c, NULL);
        hub_slice newcomp = newrep;
        if (sub > 0) {
            if (replace_piece(&b1, cv, m->d.sub, sub, newrep) != HUB_OK) goto out;
            newcomp = hub_slice_of(b1.p, b1.n);
        }
        if (replace_piece(&b2, r, m->d.comp, c, newcomp) != HUB_OK) goto out;
        newrep = hub_slice_of(b2.p, b2.n);
    }
    hub_buf fb;
    hub_buf_init(&fb);
    if (replace_piece(&fb, f, m->d.rep, rep, newrep) != HUB_OK) {
        hub_buf_release(&fb);
        goto out;
    }
    if (fb.n > HUB_MAX_FIELD) {
        hub_buf_release(&fb);
        rc = hub_err_set(err, HUB_E_LIMIT, where, "field over %u bytes", HUB_MAX_FIELD);
        goto out;
    }
    rc = store_field(a, s, field, &fb, err);
    hub_buf_release(&fb);
    if (rc == HUB_OK && seg == 0) hub__v2_fill_msh(m);
out:
    if (rc == HUB_E_NOMEM && err && err->code != HUB_E_NOMEM)
        hub_err_set(err, HUB_E_NOMEM, where, "out of memory");
    hub_buf_release(&val);
    hub_buf_release(&b1);
    hub_buf_release(&b2);
    return rc;
}

hub_status hub_v2_set_path(hub_arena *a, hub_v2_msg *m, const char *path,
                           const char *text, hub_err *err) {
    hub_v2_path p;
    hub_status rc = hub_v2_path_parse(path, &p, err);
    if (rc != HUB_OK) return rc;
    if (p.field == 0) return hub_err_set(err, HUB_E_ARG, "path", "path names no field");
    size_t seg = hub_v2_path_seg(m, &p);
    if (seg == SIZE_MAX) return hub_err_set(err, HUB_E_NOTFOUND, "path", "no such segment");
    return hub_v2_set(a, m, seg, p.field, p.rep, p.comp, p.sub, text, err);
}

hub_status hub_v2_set_raw(hub_arena *a, hub_v2_msg *m, size_t seg,
                          size_t field, hub_slice raw, hub_err *err) {
    if (m == NULL || seg >= m->nseg)
        return hub_err_set(err, HUB_E_ARG, "segment", "no such segment");
    hub__v2_seg *s = &m->segs[seg];
    if (field == 0 || (field <= 2 && hub__v2_is_header(s->fields[0])))
        return hub_err_set(err, HUB_E_ARG, "field", "field cannot be set");
    if (raw.n > HUB_MAX_FIELD)
        return hub_err_set(err, HUB_E_LIMIT, "field", "field over %u bytes", HUB_MAX_FIELD);
    hub_status rc = ensure_field(a, s, field, err);
    if (rc != HUB_OK) return rc;
    s->fields[field] = raw.p ? raw : hub_slice_of(empty_text, 0);
    s->dirty = true;
    if (seg == 0) hub__v2_fill_msh(m);
    return HUB_OK;
}

hub_status hub_v2_encode(const hub_v2_msg *m, hub_buf *out, hub_err *err) {
#define APPEND(p_, n_)                                                         \
    do {                                                                       \
        if ((n_) && hub_buf_append(out, (p_), (n_)) != HUB_OK)                 \
            return hub_err_set(err, HUB_E_NOMEM, "encode", "out of memory");   \
    } while (0)
    if (out->p == NULL) {
        if (hub_buf_reserve(out, 1) != HUB_OK)
            return hub_err_set(err, HUB_E_NOMEM, "encode", "out of memory");
        out->p[0] = '\0';
    }
    APPEND(m->head.p, m->head.n);
    for (size_t i = 0; i < m->nseg; i++) {
        const hub__v2_seg *s = &m->segs[i];
        if (!s->dirty) {
            APPEND(s->raw.p, s->raw.n);
        } else {
            APPEND(s->fields[0].p, s->fields[0].n);
            bool hdr = hub__v2_is_header(s->fields[0]);
            for (size_t f = 1; f < s->nfields; f++) {
                if (hdr && f == 1) {
                    APPEND(&m->d.field, (size_t)1);
                    continue;
                }
                if (!(hdr && f == 2)) APPEND(&m->d.field, (size_t)1);
                APPEND(s->fields[f].p, s->fields[f].n);
            }
        }
        APPEND(s->term.p, s->term.n);
    }
    return HUB_OK;
#undef APPEND
}
