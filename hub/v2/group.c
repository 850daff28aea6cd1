/* Message-structure groups: matching a message's segments against a
 * structure definition (ORDER_OBSERVATION, PATIENT_RESULT, ...), so that
 * an OBX or NTE is attached to the right parent. */
#include "internal.h"

#include <stdio.h>
#include <string.h>

#define SEG(n, mn, mx) {n, false, mn, mx, NULL, 0}
#define GRP(n, mn, mx, ch) {n, true, mn, mx, ch, sizeof(ch) / sizeof(ch[0])}

/* ORU_R01 (v2.5.1). */
static const hub_v2_struct_node oru_timing[] = {SEG("TQ1", 1, 1), SEG("TQ2", 0, 0)};
static const hub_v2_struct_node oru_observation[] = {SEG("OBX", 1, 1), SEG("NTE", 0, 0)};
static const hub_v2_struct_node oru_specimen[] = {SEG("SPM", 1, 1), SEG("OBX", 0, 0)};
static const hub_v2_struct_node oru_visit[] = {SEG("PV1", 1, 1), SEG("PV2", 0, 1)};
static const hub_v2_struct_node oru_patient[] = {
    SEG("PID", 1, 1), SEG("PD1", 0, 1), SEG("NTE", 0, 0), SEG("NK1", 0, 0),
    GRP("VISIT", 0, 1, oru_visit)};
static const hub_v2_struct_node oru_order[] = {
    SEG("ORC", 0, 1),
    SEG("OBR", 1, 1),
    SEG("NTE", 0, 0),
    GRP("TIMING_QTY", 0, 0, oru_timing),
    SEG("CTD", 0, 1),
    GRP("OBSERVATION", 0, 0, oru_observation),
    SEG("FT1", 0, 0),
    SEG("CTI", 0, 0),
    GRP("SPECIMEN", 0, 0, oru_specimen)};
static const hub_v2_struct_node oru_result[] = {
    GRP("PATIENT", 0, 1, oru_patient), GRP("ORDER_OBSERVATION", 1, 0, oru_order)};
static const hub_v2_struct_node oru_top[] = {
    SEG("MSH", 1, 1), SEG("SFT", 0, 0), GRP("PATIENT_RESULT", 1, 0, oru_result),
    SEG("DSC", 0, 1)};
static const hub_v2_struct_def oru_r01 = {"ORU_R01", NULL,
                                          GRP("ORU_R01", 1, 1, oru_top)};

/* ADT_A01 (v2.5.1), also the structure of A04, A08, A13. */
static const hub_v2_struct_node adt_procedure[] = {SEG("PR1", 1, 1), SEG("ROL", 0, 0)};
static const hub_v2_struct_node adt_insurance[] = {
    SEG("IN1", 1, 1), SEG("IN2", 0, 1), SEG("IN3", 0, 0), SEG("ROL", 0, 0)};
static const hub_v2_struct_node adt_top[] = {
    SEG("MSH", 1, 1), SEG("SFT", 0, 0), SEG("EVN", 1, 1), SEG("PID", 1, 1),
    SEG("PD1", 0, 1), SEG("ROL", 0, 0), SEG("NK1", 0, 0), SEG("PV1", 1, 1),
    SEG("PV2", 0, 1), SEG("ROL", 0, 0), SEG("DB1", 0, 0), SEG("OBX", 0, 0),
    SEG("AL1", 0, 0), SEG("DG1", 0, 0), SEG("DRG", 0, 1),
    GRP("PROCEDURE", 0, 0, adt_procedure), SEG("GT1", 0, 0),
    GRP("INSURANCE", 0, 0, adt_insurance), SEG("ACC", 0, 1), SEG("UB1", 0, 1),
    SEG("UB2", 0, 1), SEG("PDA", 0, 1)};
static const hub_v2_struct_def adt_a01 = {"ADT_A01", NULL,
                                          GRP("ADT_A01", 1, 1, adt_top)};

const hub_v2_struct_def *hub_v2_struct_builtin(const char *name) {
    if (name == NULL) return NULL;
    if (strcmp(name, "ORU_R01") == 0) return &oru_r01;
    if (strcmp(name, "ADT_A01") == 0 || strcmp(name, "ADT_A04") == 0 ||
        strcmp(name, "ADT_A08") == 0 || strcmp(name, "ADT_A13") == 0)
        return &adt_a01;
    return NULL;
}

void hub_v2_struct_name(const hub_v2_msg *m, char *out, size_t size) {
    if (size == 0) return;
    out[0] = '\0';
    const hub_v2_msh *h = &m->msh;
    if (h->structure.n > 0 && h->structure.n < 16) {
        snprintf(out, size, "%.*s", (int)h->structure.n, h->structure.p);
    } else if (h->msg_code.n > 0 && h->msg_code.n < 8 && h->trigger.n < 8) {
        snprintf(out, size, "%.*s_%.*s", (int)h->msg_code.n, h->msg_code.p,
                 (int)h->trigger.n, h->trigger.p);
    }
}

static bool name_is(const char *name, hub_slice id) {
    return strlen(name) == id.n && memcmp(name, id.p, id.n) == 0;
}

/* Whether a node can begin with segment `id`: a segment of that name, or
 * a group whose first segments (up to its first required one) include it. */
static bool starts_with(const hub_v2_struct_node *n, hub_slice id, int depth) {
    if (!n->is_group) return name_is(n->name, id);
    if (depth > 32) return false;
    for (size_t i = 0; i < n->nchildren; i++) {
        if (starts_with(&n->children[i], id, depth + 1)) return true;
        if (n->children[i].min >= 1) return false;
    }
    return false;
}

typedef struct {
    const hub_v2_struct_node *def;
    long ci; /* child matched last, -1 before the first */
    hub_v2_group *node;
} frame;

static long find_child(const frame *f, hub_slice id) {
    const hub_v2_struct_node *d = f->def;
    if (f->ci >= 0) {
        const hub_v2_struct_node *c = &d->children[f->ci];
        if (c->max != 1 && starts_with(c, id, 0)) return f->ci;
    }
    for (size_t j = (size_t)(f->ci + 1); j < d->nchildren; j++)
        if (starts_with(&d->children[j], id, 0)) return (long)j;
    return -1;
}

static hub_v2_group *new_node(hub_arena *a, hub_v2_group *parent,
                              const hub_v2_struct_node *def, const char *name,
                              bool is_seg, size_t seg) {
    hub_v2_group *g = hub_arena_calloc(a, sizeof *g);
    if (g == NULL) return NULL;
    g->def = def;
    g->name = name;
    g->is_segment = is_seg;
    g->seg = is_seg ? seg : SIZE_MAX;
    g->first_seg = seg;
    g->end_seg = seg + 1;
    g->parent = parent;
    g->occ = 1;
    if (parent) {
        hub_v2_group *last = NULL;
        for (hub_v2_group *c = parent->first_child; c; c = c->next) {
            if ((def && c->def == def) || (!def && !c->def && strcmp(c->name, name) == 0))
                g->occ = c->occ + 1;
            last = c;
        }
        if (last) last->next = g;
        else parent->first_child = g;
    }
    for (hub_v2_group *p = parent; p; p = p->parent)
        if (p->end_seg < seg + 1) p->end_seg = seg + 1;
    return g;
}

hub_status hub_v2_group_match(hub_arena *a, const hub_v2_msg *m,
                              const hub_v2_struct_def *def, hub_v2_groups *out,
                              hub_err *err) {
    memset(out, 0, sizeof *out);
    frame st[33];
    int top = 0;
    hub_v2_group *root = new_node(a, NULL, &def->root, def->root.name, false, 0);
    out->seg_node = hub_arena_calloc(a, (m->nseg ? m->nseg : 1) * sizeof *out->seg_node);
    out->unexpected = hub_arena_alloc(a, (m->nseg ? m->nseg : 1) * sizeof(size_t));
    if (root == NULL || out->seg_node == NULL || out->unexpected == NULL)
        return hub_err_set(err, HUB_E_NOMEM, "groups", "arena full");
    root->end_seg = 0;
    out->root = root;
    st[0] = (frame){&def->root, -1, root};
    for (size_t s = 0; s < m->nseg; s++) {
        hub_slice id = m->segs[s].fields[0];
        long j = -1;
        int L;
        for (L = top; L >= 0; L--) {
            j = find_child(&st[L], id);
            if (j >= 0) break;
        }
        char *idc = hub_arena_strndup(a, id.p, id.n);
        if (idc == NULL) return hub_err_set(err, HUB_E_NOMEM, "groups", "arena full");
        if (j < 0) {
            hub_v2_group *g = new_node(a, st[top].node, NULL, idc, true, s);
            if (g == NULL) return hub_err_set(err, HUB_E_NOMEM, "groups", "arena full");
            out->seg_node[s] = g;
            out->unexpected[out->nunexpected++] = s;
            continue;
        }
        top = L;
        st[top].ci = j;
        const hub_v2_struct_node *c = &st[top].def->children[j];
        while (c->is_group && top < 32) {
            hub_v2_group *g = new_node(a, st[top].node, c, c->name, false, s);
            if (g == NULL) return hub_err_set(err, HUB_E_NOMEM, "groups", "arena full");
            st[++top] = (frame){c, -1, g};
            j = find_child(&st[top], id);
            if (j < 0) break; /* cannot happen: starts_with said yes */
            st[top].ci = j;
            c = &c->children[j];
        }
        hub_v2_group *g = new_node(a, st[top].node, c->is_group ? NULL : c,
                                   c->is_group ? idc : c->name, true, s);
        if (g == NULL) return hub_err_set(err, HUB_E_NOMEM, "groups", "arena full");
        out->seg_node[s] = g;
    }
    return HUB_OK;
}

const hub_v2_group *hub_v2_group_parent(const hub_v2_groups *g, size_t seg) {
    if (g == NULL || g->seg_node == NULL) return NULL;
    /* seg_node has one entry per segment of the matched message. */
    hub_v2_group *n = g->seg_node[seg];
    return n ? n->parent : NULL;
}

/* The occ-th segment named id under node n, depth first. */
static const hub_v2_group *find_desc(const hub_v2_group *n, const char *id,
                                     uint32_t *occ) {
    for (const hub_v2_group *c = n->first_child; c; c = c->next) {
        if (c->is_segment) {
            if (strcmp(c->name, id) == 0 && --*occ == 0) return c;
        } else {
            const hub_v2_group *r = find_desc(c, id, occ);
            if (r) return r;
        }
    }
    return NULL;
}

size_t hub_v2_group_find_seg(const hub_v2_groups *g, const hub_v2_msg *m,
                             const hub_v2_path *path) {
    if (path->ngroups == 0 || g == NULL || g->root == NULL)
        return hub_v2_path_seg(m, path);
    const hub_v2_group *n = g->root;
    for (unsigned i = 0; i < path->ngroups; i++) {
        const hub_v2_group *hit = NULL;
        for (const hub_v2_group *c = n->first_child; c; c = c->next) {
            if (!c->is_segment && strcmp(c->name, path->groups[i].name) == 0 &&
                c->occ == path->groups[i].occ) {
                hit = c;
                break;
            }
        }
        if (hit == NULL) return SIZE_MAX;
        n = hit;
    }
    uint32_t occ = path->seg_occ ? path->seg_occ : 1;
    const hub_v2_group *s = find_desc(n, path->seg_id, &occ);
    return s ? s->seg : SIZE_MAX;
}

hub_slice hub_v2_group_get(const hub_v2_groups *g, const hub_v2_msg *m,
                           const hub_v2_path *path) {
    size_t seg = hub_v2_group_find_seg(g, m, path);
    if (seg == SIZE_MAX) return (hub_slice){NULL, 0};
    if (path->field == 0) return hub_v2_seg_raw(m, seg);
    return hub_v2_at(m, seg, path->field, path->rep, path->comp, path->sub);
}
