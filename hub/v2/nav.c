/* Navigation by index: segments, fields, repetitions, components and
 * sub-components, split on demand with memchr. */
#include "internal.h"

#include <string.h>

static const hub_slice absent = {NULL, 0};

hub_slice hub_v2_split(hub_slice raw, char sep, size_t i, size_t *count) {
    if (raw.p == NULL) {
        if (count) *count = 0;
        return absent;
    }
    const char *p = raw.p, *end = raw.p + raw.n;
    hub_slice found = absent;
    size_t k = 0;
    for (;;) {
        const char *q;
        if (sep == 0) {
            q = NULL;
        } else if (end - p < 32) {
            /* Most values are short: a loop beats a call to memchr. */
            q = p;
            while (q < end && *q != sep) q++;
            if (q == end) q = NULL;
        } else {
            q = memchr(p, sep, (size_t)(end - p));
        }
        const char *stop = q ? q : end;
        k++;
        if (k == i) {
            found = hub_slice_of(p, (size_t)(stop - p));
            if (count == NULL) return found;
        }
        if (q == NULL) break;
        p = q + 1;
    }
    if (count) *count = k;
    return found;
}

size_t hub_v2_seg_count(const hub_v2_msg *m) { return m ? m->nseg : 0; }

hub_slice hub_v2_seg_id(const hub_v2_msg *m, size_t seg) {
    if (m == NULL || seg >= m->nseg) return absent;
    return m->segs[seg].fields[0];
}

hub_slice hub_v2_seg_raw(const hub_v2_msg *m, size_t seg) {
    if (m == NULL || seg >= m->nseg) return absent;
    return m->segs[seg].raw;
}

size_t hub_v2_seg_find(const hub_v2_msg *m, const char *id, size_t from,
                       unsigned occurrence) {
    if (m == NULL || id == NULL || strlen(id) != 3) return SIZE_MAX;
    if (occurrence == 0) occurrence = 1;
    for (size_t i = from; i < m->nseg; i++) {
        const char *p = m->segs[i].fields[0].p;
        if (m->segs[i].fields[0].n == 3 && p[0] == id[0] && p[1] == id[1] &&
            p[2] == id[2] && --occurrence == 0)
            return i;
    }
    return SIZE_MAX;
}

uint32_t hub_v2_seg_seq(const hub_v2_msg *m, size_t seg) {
    if (m == NULL || seg >= m->nseg) return 0;
    hub_slice id = m->segs[seg].fields[0];
    uint32_t k = 0;
    for (size_t i = 0; i <= seg; i++)
        if (hub_slice_eq(m->segs[i].fields[0], id)) k++;
    return k;
}

size_t hub_v2_field_count(const hub_v2_msg *m, size_t seg) {
    if (m == NULL || seg >= m->nseg) return 0;
    return m->segs[seg].nfields - 1;
}

static hub_slice field_at(const hub_v2_msg *m, size_t seg, size_t field,
                          bool *whole) {
    *whole = false;
    if (m == NULL || seg >= m->nseg) return absent;
    const hub__v2_seg *s = &m->segs[seg];
    if (field >= s->nfields) return absent;
    /* The id, MSH-1 and MSH-2 are single values, never split. */
    *whole = field == 0 || (field <= 2 && hub__v2_is_header(s->fields[0]));
    return s->fields[field];
}

size_t hub_v2_rep_count(const hub_v2_msg *m, size_t seg, size_t field) {
    bool whole;
    hub_slice f = field_at(m, seg, field, &whole);
    if (f.p == NULL) return 0;
    if (whole) return 1;
    size_t c;
    hub_v2_split(f, m->d.rep, 0, &c);
    return c;
}

size_t hub_v2_comp_count(const hub_v2_msg *m, size_t seg, size_t field,
                         size_t rep) {
    bool whole;
    hub_slice f = field_at(m, seg, field, &whole);
    if (f.p == NULL) return 0;
    if (whole) return rep <= 1 ? 1 : 0;
    hub_slice r = hub_v2_split(f, m->d.rep, rep ? rep : 1, NULL);
    size_t c;
    hub_v2_split(r, m->d.comp, 0, &c);
    return c;
}

size_t hub_v2_sub_count(const hub_v2_msg *m, size_t seg, size_t field,
                        size_t rep, size_t comp) {
    bool whole;
    hub_slice f = field_at(m, seg, field, &whole);
    if (f.p == NULL) return 0;
    if (whole) return rep <= 1 && comp <= 1 ? 1 : 0;
    hub_slice r = hub_v2_split(f, m->d.rep, rep ? rep : 1, NULL);
    hub_slice c = hub_v2_split(r, m->d.comp, comp ? comp : 1, NULL);
    if (c.p == NULL) return 0;
    if (m->d.sub == 0) return 1;
    size_t k;
    hub_v2_split(c, m->d.sub, 0, &k);
    return k;
}

hub_slice hub_v2_at(const hub_v2_msg *m, size_t seg, size_t field, size_t rep,
                    size_t comp, size_t sub) {
    bool whole;
    hub_slice v = field_at(m, seg, field, &whole);
    if (v.p == NULL) return absent;
    if (whole) return (rep <= 1 && comp <= 1 && sub <= 1) ? v : absent;
    if (rep == 0 && comp == 0 && sub == 0) return v;
    v = hub_v2_split(v, m->d.rep, rep ? rep : 1, NULL);
    if (comp == 0 && sub == 0) return v;
    v = hub_v2_split(v, m->d.comp, comp ? comp : 1, NULL);
    if (sub == 0 || v.p == NULL) return v;
    if (m->d.sub == 0) return sub == 1 ? v : absent;
    return hub_v2_split(v, m->d.sub, sub, NULL);
}

bool hub_v2_is_null(hub_slice raw) {
    return raw.p != NULL && raw.n == 2 && raw.p[0] == '"' && raw.p[1] == '"';
}
