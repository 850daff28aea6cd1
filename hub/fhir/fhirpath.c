/* A small FHIRPath evaluator: the subset the official search parameters
 * use. Paths, `|`, parentheses, indexers, `where(...)` with `resolve() is
 * X` or `field = 'literal'`, `ofType(T)`, `as T`, `is T`, `exists()`,
 * `first()`, `extension('url')`, `and`, `=` and `!=`.
 *
 * An expression is compiled once (the search table does it at load time)
 * into a tree; evaluation walks the resource's jansson values and knows
 * each value's FHIR type from the element table, so `value.ofType(Quantity)`
 * finds `valueQuantity` and a date parameter can tell a Period from a
 * dateTime. */
#include "hub/fhir.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef enum {
    N_CHILD,   /* a.name (or name from the context) */
    N_UNION,   /* a | b */
    N_INDEX,   /* a[n] */
    N_WHERE,   /* a.where(b) */
    N_OFTYPE,  /* a.ofType(T), a as T */
    N_IS,      /* a is T */
    N_EXISTS,  /* a.exists() */
    N_FIRST,   /* a.first() */
    N_EXT,     /* a.extension('url') */
    N_RESOLVE, /* a.resolve() */
    N_AND,
    N_EQ,
    N_NE,
    N_STR,     /* 'literal' */
    N_BOOL,    /* true, false */
    N_THIS,    /* the context (a path's start) */
    N_ROOT,    /* %resource */
} node_kind;

typedef struct fp_node fp_node;
struct fp_node {
    node_kind kind;
    fp_node *a, *b;
    char *name; /* child name, type name, literal, url */
    long index;
    /* N_OFTYPE of a child (value.ofType(Quantity)): the JSON name of that
     * type of a choice element ("valueQuantity"), found without walking
     * the object's keys */
    char *choice_key;
};

/* The property names an expression can read first on its input (heads):
 * when the input is an object with none of them (or the stem of a choice,
 * valueQuantity for value), the result is empty without evaluating. Most
 * of a type's search parameters name elements a given resource does not
 * have. any: not known (the expression may yield the input itself, or
 * reads it in a way the analysis does not follow). */
#define MAX_HEADS 16

struct hub_fhirpath {
    fp_node *root;
    bool any;
    size_t nheads;
    const char *heads[MAX_HEADS]; /* borrowed from the tree's nodes */
    /* the head is a name as it is (value, valueQuantity: read through
     * ofType), not also the stem of a choice (value: valueQuantity,
     * valueString...) */
    bool exact[MAX_HEADS];
    uint64_t head_bits; /* key_bit of each head (every bit when any) */
};

/* ---- parsing ------------------------------------------------------------- */

typedef struct {
    const char *p;
    bool bad;
} lexer;

static void skip_ws(lexer *l) {
    while (*l->p == ' ' || *l->p == '\t' || *l->p == '\n' || *l->p == '\r') l->p++;
}

static bool accept(lexer *l, const char *tok) {
    skip_ws(l);
    size_t n = strlen(tok);
    if (strncmp(l->p, tok, n) != 0) return false;
    /* A keyword must not run into an identifier ("and" vs "andrew"). */
    if (isalpha((unsigned char)tok[0]) && (isalnum((unsigned char)l->p[n]) || l->p[n] == '_'))
        return false;
    l->p += n;
    return true;
}

static char *ident(lexer *l) {
    skip_ws(l);
    const char *s = l->p;
    if (*s == '`') {
        const char *e = strchr(s + 1, '`');
        if (!e) return NULL;
        l->p = e + 1;
        return hub_strndup(s + 1, (size_t)(e - s - 1));
    }
    if (!isalpha((unsigned char)*s) && *s != '_') return NULL;
    while (isalnum((unsigned char)*l->p) || *l->p == '_') l->p++;
    return hub_strndup(s, (size_t)(l->p - s));
}

static char *str_lit(lexer *l) {
    skip_ws(l);
    if (*l->p != '\'') return NULL;
    const char *s = ++l->p;
    while (*l->p && *l->p != '\'') l->p++;
    if (*l->p != '\'') return NULL;
    char *out = hub_strndup(s, (size_t)(l->p - s));
    l->p++;
    return out;
}

static fp_node *mk(node_kind k, fp_node *a, fp_node *b, char *name) {
    fp_node *n = hub_calloc(1, sizeof *n);
    if (!n) {
        hub_free(name);
        return NULL;
    }
    n->kind = k;
    n->a = a;
    n->b = b;
    n->name = name;
    return n;
}

static void node_free(fp_node *n) {
    if (!n) return;
    node_free(n->a);
    node_free(n->b);
    hub_free(n->name);
    hub_free(n->choice_key);
    hub_free(n);
}

/* An ofType (or `as`) node of `on` for type t; when `on` names a child,
 * the JSON name that child has when it is a choice of type t. */
static fp_node *mk_oftype(fp_node *on, char *t) {
    fp_node *n = mk(N_OFTYPE, on, NULL, t);
    /* (an upper-case name is a type: Observation.ofType(...) is no choice) */
    if (!n || on->kind != N_CHILD || isupper((unsigned char)on->name[0])) return n;
    size_t a = strlen(on->name), b = strlen(t);
    n->choice_key = hub_malloc(a + b + 1);
    if (!n->choice_key) {
        n->a = NULL;
        node_free(n);
        return NULL;
    }
    memcpy(n->choice_key, on->name, a);
    memcpy(n->choice_key + a, t, b + 1);
    n->choice_key[a] = (char)toupper((unsigned char)t[0]);
    return n;
}

static fp_node *p_expr(lexer *l, int depth);

/* A function call or a name, applied to `on` (N_THIS for a path start). */
static fp_node *p_invocation(lexer *l, fp_node *on, int depth) {
    char *name = ident(l);
    if (!name) {
        l->bad = true;
        node_free(on);
        return NULL;
    }
    if (!accept(l, "(")) return mk(N_CHILD, on, NULL, name);
    fp_node *n = NULL;
    if (strcmp(name, "where") == 0) {
        fp_node *cond = p_expr(l, depth + 1);
        n = cond ? mk(N_WHERE, on, cond, NULL) : NULL;
        if (!n) node_free(cond);
    } else if (strcmp(name, "ofType") == 0 || strcmp(name, "as") == 0 ||
               strcmp(name, "is") == 0) {
        char *t = ident(l);
        n = !t ? NULL : name[0] == 'i' ? mk(N_IS, on, NULL, t) : mk_oftype(on, t);
    } else if (strcmp(name, "extension") == 0) {
        char *u = str_lit(l);
        n = u ? mk(N_EXT, on, NULL, u) : NULL;
    } else if (strcmp(name, "exists") == 0) {
        n = mk(N_EXISTS, on, NULL, NULL);
    } else if (strcmp(name, "first") == 0) {
        n = mk(N_FIRST, on, NULL, NULL);
    } else if (strcmp(name, "resolve") == 0) {
        n = mk(N_RESOLVE, on, NULL, NULL);
    }
    hub_free(name);
    if (!n || !accept(l, ")")) {
        l->bad = true;
        if (n) node_free(n);
        else node_free(on);
        return NULL;
    }
    return n;
}

static fp_node *p_term(lexer *l, int depth) {
    skip_ws(l);
    if (accept(l, "(")) {
        fp_node *e = p_expr(l, depth + 1);
        if (!e || !accept(l, ")")) {
            l->bad = true;
            node_free(e);
            return NULL;
        }
        return e;
    }
    if (*l->p == '\'') {
        char *s = str_lit(l);
        if (!s) {
            l->bad = true;
            return NULL;
        }
        return mk(N_STR, NULL, NULL, s);
    }
    if (accept(l, "%resource")) {
        fp_node *root = mk(N_ROOT, NULL, NULL, NULL);
        if (!root) return NULL;
        /* a following .name applies to it */
        return root;
    }
    if (accept(l, "true")) return mk(N_BOOL, NULL, NULL, hub_strdup("true"));
    if (accept(l, "false")) return mk(N_BOOL, NULL, NULL, hub_strdup("false"));
    fp_node *self = mk(N_THIS, NULL, NULL, NULL);
    return self ? p_invocation(l, self, depth) : NULL;
}

static fp_node *p_postfix(lexer *l, int depth) {
    fp_node *n = p_term(l, depth);
    while (n && !l->bad) {
        if (accept(l, ".")) {
            n = p_invocation(l, n, depth);
        } else if (accept(l, "[")) {
            skip_ws(l);
            char *end;
            long i = strtol(l->p, &end, 10);
            if (end == l->p || i < 0) {
                l->bad = true;
                break;
            }
            l->p = end;
            if (!accept(l, "]")) {
                l->bad = true;
                break;
            }
            fp_node *x = mk(N_INDEX, n, NULL, NULL);
            if (!x) {
                node_free(n);
                return NULL;
            }
            x->index = i;
            n = x;
        } else {
            break;
        }
    }
    if (l->bad) {
        node_free(n);
        return NULL;
    }
    return n;
}

static fp_node *p_type(lexer *l, int depth) {
    fp_node *n = p_postfix(l, depth);
    if (!n) return NULL;
    bool is = accept(l, "is");
    if (is || accept(l, "as")) {
        char *t = ident(l);
        if (!t) {
            l->bad = true;
            node_free(n);
            return NULL;
        }
        fp_node *x = is ? mk(N_IS, n, NULL, t) : mk_oftype(n, t);
        if (!x) node_free(n);
        return x;
    }
    return n;
}

/* The binary node k over n and r (either NULL after a parse error or
 * allocation failure: both sides are freed and NULL returned). */
static fp_node *join(node_kind k, fp_node *n, fp_node *r) {
    fp_node *x = n && r ? mk(k, n, r, NULL) : NULL;
    if (!x) {
        node_free(n);
        node_free(r);
    }
    return x;
}

static fp_node *p_union(lexer *l, int depth) {
    fp_node *n = p_type(l, depth);
    while (n && accept(l, "|")) n = join(N_UNION, n, p_type(l, depth));
    return n;
}

static fp_node *p_eq(lexer *l, int depth) {
    fp_node *n = p_union(l, depth);
    if (!n) return NULL;
    node_kind k;
    if (accept(l, "!=")) k = N_NE;
    else if (accept(l, "=")) k = N_EQ;
    else return n;
    return join(k, n, p_union(l, depth));
}

static fp_node *p_expr(lexer *l, int depth) {
    if (depth > 16) {
        l->bad = true;
        return NULL;
    }
    fp_node *n = p_eq(l, depth);
    while (n && accept(l, "and")) n = join(N_AND, n, p_eq(l, depth));
    return n;
}

/* ---- heads ------------------------------------------------------------------ */

/* What node n reads first from its input: adds names to fp->heads, and
 * returns whether n may yield the input itself (a path's leading type name,
 * ofType, an indexer on it). Anything it cannot follow sets fp->any. */
static bool add_head(hub_fhirpath *fp, const char *name, bool exact) {
    for (size_t i = 0; i < fp->nheads; i++) {
        if (strcmp(fp->heads[i], name) != 0) continue;
        fp->exact[i] = fp->exact[i] && exact;
        return false;
    }
    if (fp->nheads == MAX_HEADS) {
        fp->any = true;
        return false;
    }
    fp->exact[fp->nheads] = exact;
    fp->heads[fp->nheads++] = name;
    return false;
}

static bool heads_of(hub_fhirpath *fp, const fp_node *n) {
    switch (n->kind) {
    case N_THIS:
        return true;
    case N_CHILD:
        if (!heads_of(fp, n->a)) return false;
        /* Property names are lower camel case: an upper-case name is the
         * resource's type (or Resource, DomainResource), which passes the
         * input on, or matches nothing. */
        if (isupper((unsigned char)n->name[0])) return true;
        return add_head(fp, n->name, false);
    case N_UNION: {
        bool a = heads_of(fp, n->a);
        bool b = heads_of(fp, n->b);
        return a || b;
    }
    case N_OFTYPE:
        /* name.ofType(T) on the input reads `name` as it is, or the choice
         * nameT: not the choice's other types */
        if (n->choice_key) {
            if (!heads_of(fp, n->a->a)) return false;
            add_head(fp, n->a->name, true);
            return add_head(fp, n->choice_key, true);
        }
        return heads_of(fp, n->a);
    case N_INDEX:
    case N_FIRST:
        return heads_of(fp, n->a);
    case N_EXT:
        return heads_of(fp, n->a) ? add_head(fp, "extension", false) : false;
    case N_EXISTS:
        /* exists() of nothing is false: a value, whatever the input has. */
        fp->any = true;
        return false;
    case N_WHERE:
    case N_IS:
    case N_RESOLVE:
        /* A condition or a test on the input itself reads what it likes. */
        if (heads_of(fp, n->a)) fp->any = true;
        return false;
    default:
        fp->any = true;
        return false;
    }
}

/* A bit for a name's first two characters: a head and every key it
 * matches (itself, or its choices) have the same one. */
static uint64_t key_bit(const char *s) {
    return (uint64_t)1 << (((unsigned char)s[0] * 31u + (unsigned char)s[1]) & 63u);
}

static void find_heads(hub_fhirpath *fp) {
    fp->any = false;
    fp->nheads = 0;
    if (heads_of(fp, fp->root)) fp->any = true;
    fp->head_bits = fp->any ? UINT64_MAX : 0;
    for (size_t h = 0; h < fp->nheads; h++)
        fp->head_bits |= fp->heads[h][0] && fp->heads[h][1] ? key_bit(fp->heads[h]) : UINT64_MAX;
}

uint64_t hub_fhirpath_key_bits(const char *const *keys, size_t n) {
    uint64_t b = 0;
    for (size_t i = 0; i < n; i++)
        if (keys[i][0]) b |= key_bit(keys[i]);
    return b;
}

bool hub_fhirpath_bits_may_match(const hub_fhirpath *fp, uint64_t bits) {
    return fp->any || (fp->head_bits & bits) != 0;
}

bool hub_fhirpath_keys_may_match(const hub_fhirpath *fp, const char *const *keys, size_t n) {
    if (fp->any) return true;
    for (size_t h = 0; h < fp->nheads; h++) {
        const char *head = fp->heads[h];
        size_t hn = strlen(head);
        bool exact = fp->exact[h];
        for (size_t i = 0; i < n; i++) {
            const char *k = keys[i];
            /* the name itself, or a choice: the stem and a type name */
            if (k[0] == head[0] && strncmp(k, head, hn) == 0 &&
                (k[hn] == '\0' || (!exact && isupper((unsigned char)k[hn]))))
                return true;
        }
    }
    return false;
}

/* Can `fp` find anything in v? False only when v is an object with none of
 * the heads, or not an object at all. */
static bool may_match(const hub_fhirpath *fp, const json_t *v) {
    if (fp->any) return true;
    if (!json_is_object(v)) return false;
    const char *keys[64];
    size_t n = 0;
    const char *k;
    const json_t *cv;
    json_object_foreach((json_t *)v, k, cv) {
        if (n == 64) return true;
        keys[n++] = k;
    }
    return hub_fhirpath_keys_may_match(fp, keys, n);
}

hub_status hub_fhirpath_compile(const char *expr, hub_fhirpath **out, hub_err *err) {
    *out = NULL;
    lexer l = {expr, false};
    fp_node *root = p_expr(&l, 0);
    skip_ws(&l);
    if (!root || l.bad || *l.p) {
        node_free(root);
        return hub_err_set(err, HUB_E_UNSUPPORTED, "fhirpath",
                           "expression not in the supported subset at offset %zu",
                           (size_t)(l.p - expr));
    }
    hub_fhirpath *fp = hub_malloc(sizeof *fp);
    if (!fp) {
        node_free(root);
        return hub_err_set(err, HUB_E_NOMEM, "fhirpath", "out of memory");
    }
    fp->root = root;
    find_heads(fp);
    *out = fp;
    return HUB_OK;
}

void hub_fhirpath_free(hub_fhirpath *fp) {
    if (!fp) return;
    node_free(fp->root);
    hub_free(fp);
}

/* ---- evaluation ------------------------------------------------------------ */

typedef struct {
    const json_t *v;
    const char *type; /* FHIR type name, or NULL when unknown */
    const char *key;  /* where the children are defined (type or backbone path) */
} item;

typedef struct {
    item *it;
    size_t n, cap;
} coll;

typedef struct {
    const hub_fhir_defs *d;
    hub_arena *a;
    const char *rtype;
    bool nomem;
    item root; /* %resource (the outermost evaluation's value) */
} ev;

static bool push(ev *e, coll *c, item x) {
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 8;
        item *p = hub_arena_grow(e->a, c->it, c->cap * sizeof *p, cap * sizeof *p);
        if (!p) {
            e->nomem = true;
            return false;
        }
        c->it = p;
        c->cap = cap;
    }
    c->it[c->n++] = x;
    return true;
}

static const json_t *const_bool(bool b) {
    /* jansson's true and false are static singletons. */
    return b ? json_true() : json_false();
}

static bool type_is(const char *have, const char *want) {
    if (!have) return false;
    if (strcasecmp(have, want) == 0) return true; /* DateTime vs dateTime */
    return false;
}

static void push_value(ev *e, const hub_fhir_elem *el, const char *type, const json_t *v,
                       coll *out);

/* The value of `name` (a JSON property) on object x, with its type from the
 * element table; arrays are flattened. */
static void child_of(ev *e, const item *x, const char *name, coll *out) {
    if (!json_is_object(x->v)) return;
    const json_t *v = json_object_get(x->v, name);
    const char *type = NULL;
    const hub_fhir_elem *el = NULL;
    if (v) {
        if (e->d && x->key) el = hub_fhir_child(e->d, x->key, name, &type);
    } else if (e->d && x->key) {
        /* A choice element: value -> valueQuantity, valueString, ... */
        size_t n = strlen(name);
        const char *k;
        const json_t *cv;
        json_object_foreach((json_t *)x->v, k, cv) {
            if (strncmp(k, name, n) != 0 || !isupper((unsigned char)k[n])) continue;
            const char *t = NULL;
            const hub_fhir_elem *ce = hub_fhir_child(e->d, x->key, k, &t);
            if (ce && ce->choice && strcmp(ce->name, name) == 0) {
                v = cv;
                el = ce;
                type = t;
                break;
            }
        }
    }
    if (!v) return;
    push_value(e, el, type, v, out);
}

/* x.name.ofType(T) when `name` is not x's own property: the choice's
 * property of that type (choice_key, valueQuantity), looked up at once
 * instead of walking x's keys for name's choices. Anything else (x has
 * `name` itself, no table) takes the general way. */
static void choice_of(ev *e, const item *x, const fp_node *n, coll *out) {
    const char *name = n->a->name;
    if (!json_is_object(x->v)) return;
    if (!e->d || !x->key || json_object_get(x->v, name)) {
        coll src = {0};
        child_of(e, x, name, &src);
        for (size_t i = 0; i < src.n; i++)
            if (type_is(src.it[i].type, n->name)) push(e, out, src.it[i]);
        return;
    }
    const json_t *v = json_object_get(x->v, n->choice_key);
    if (!v) return;
    const char *type = NULL;
    const hub_fhir_elem *el = hub_fhir_child(e->d, x->key, n->choice_key, &type);
    if (!el || !el->choice || strcmp(el->name, name) != 0 || !type_is(type, n->name)) return;
    push_value(e, el, type, v, out);
}

/* v (an array flattened), the value of element el of type `type`. */
static void push_value(ev *e, const hub_fhir_elem *el, const char *type, const json_t *v,
                       coll *out) {
    const char *key = NULL;
    if (el && type) {
        size_t nk = 0;
        if (el->choice) key = hub_fhir_children_of_type(e->d, el, type, &nk) ? type : NULL;
        else key = el->children_key;
    }
    size_t i;
    const json_t *one;
    if (json_is_array(v)) {
        json_array_foreach(v, i, one) {
            item y = {one, type, key};
            /* A resource in Bundle.entry.resource or contained: its type is
             * its resourceType. */
            if (type && strcmp(type, "Resource") == 0) {
                y.type = y.key = json_string_value(json_object_get(one, "resourceType"));
            }
            if (!push(e, out, y)) return;
        }
    } else {
        item y = {v, type, key};
        if (type && strcmp(type, "Resource") == 0)
            y.type = y.key = json_string_value(json_object_get(v, "resourceType"));
        push(e, out, y);
    }
}

/* The resource type a Reference points at: "Patient/1", ".../Patient/1",
 * Reference.type. */
static const char *ref_type(ev *e, const json_t *ref, size_t *n) {
    const char *t = json_string_value(json_object_get(ref, "type"));
    if (t) {
        *n = strlen(t);
        return t;
    }
    const char *r = json_string_value(json_object_get(ref, "reference"));
    if (!r || r[0] == '#') return NULL;
    const char *q = strchr(r, '?');
    size_t len = q ? (size_t)(q - r) : strlen(r);
    /* Type/id[/_history/v]: the type is the segment before the id. */
    const char *segs[8];
    size_t ns = 0;
    const char *s = r;
    while (s < r + len && ns < 8) {
        segs[ns++] = s;
        const char *sl = memchr(s, '/', (size_t)(r + len - s));
        if (!sl) break;
        s = sl + 1;
    }
    (void)e;
    if (ns >= 4 && strncmp(segs[ns - 2], "_history/", 9) == 0) ns -= 2;
    if (ns < 2) return NULL;
    const char *ts = segs[ns - 2];
    *n = (size_t)(segs[ns - 1] - 1 - ts);
    return ts;
}

static bool truthy(const coll *c) {
    if (c->n != 1) return c->n > 0;
    return !json_is_false(c->it[0].v);
}

static bool item_eq(const item *x, const item *y) {
    if (json_is_string(x->v) && json_is_string(y->v))
        return strcmp(json_string_value(x->v), json_string_value(y->v)) == 0;
    if (json_is_boolean(x->v) && json_is_boolean(y->v))
        return json_is_true(x->v) == json_is_true(y->v);
    if (json_is_number(x->v) && json_is_number(y->v))
        return json_number_value(x->v) == json_number_value(y->v);
    return false;
}

static void eval(ev *e, const fp_node *n, const coll *in, coll *out, int depth);

static void eval_each(ev *e, const fp_node *n, const item *x, coll *out, int depth) {
    coll one = {(item *)x, 1, 1};
    eval(e, n, &one, out, depth);
}

static void eval(ev *e, const fp_node *n, const coll *in, coll *out, int depth) {
    if (e->nomem || depth > 64) return;
    coll src = {0};
    switch (n->kind) {
    case N_THIS:
        for (size_t i = 0; i < in->n; i++) push(e, out, in->it[i]);
        return;
    case N_ROOT:
        if (e->root.v) push(e, out, e->root);
        return;
    case N_STR:
    case N_BOOL: {
        json_t *lit = n->kind == N_BOOL ? (json_t *)const_bool(n->name[0] == 't') : NULL;
        if (n->kind == N_STR) {
            /* Literal strings live as long as the tree: a jansson string
             * would need freeing, so compare through a borrowed view. */
            item y = {NULL, "string", (const char *)n->name};
            push(e, out, y);
            return;
        }
        item y = {lit, "boolean", NULL};
        push(e, out, y);
        return;
    }
    case N_OFTYPE:
        if (!n->choice_key) break;
        eval(e, n->a->a, in, &src, depth + 1);
        for (size_t i = 0; i < src.n; i++) choice_of(e, &src.it[i], n, out);
        return;
    default:
        break;
    }
    if (n->a) eval(e, n->a, in, &src, depth + 1);
    switch (n->kind) {
    case N_CHILD:
        for (size_t i = 0; i < src.n; i++) {
            const item *x = &src.it[i];
            /* A path's first name may be the resource's type. */
            if (n->a->kind == N_THIS && x->type && json_is_object(x->v) &&
                (strcmp(n->name, x->type) == 0 || strcmp(n->name, "Resource") == 0 ||
                 strcmp(n->name, "DomainResource") == 0) &&
                json_object_get(x->v, "resourceType")) {
                push(e, out, *x);
                continue;
            }
            child_of(e, x, n->name, out);
        }
        return;
    case N_UNION:
        for (size_t i = 0; i < src.n; i++) push(e, out, src.it[i]);
        eval(e, n->b, in, out, depth + 1);
        return;
    case N_INDEX:
        if ((size_t)n->index < src.n) push(e, out, src.it[n->index]);
        return;
    case N_FIRST:
        if (src.n) push(e, out, src.it[0]);
        return;
    case N_WHERE:
        for (size_t i = 0; i < src.n; i++) {
            coll r = {0};
            eval_each(e, n->b, &src.it[i], &r, depth + 1);
            if (r.n && truthy(&r)) push(e, out, src.it[i]);
        }
        return;
    case N_OFTYPE:
        for (size_t i = 0; i < src.n; i++)
            if (type_is(src.it[i].type, n->name)) push(e, out, src.it[i]);
        return;
    case N_IS: {
        bool yes = src.n == 1 && type_is(src.it[0].type, n->name);
        if (src.n) push(e, out, (item){const_bool(yes), "boolean", NULL});
        return;
    }
    case N_EXISTS:
        push(e, out, (item){const_bool(src.n > 0), "boolean", NULL});
        return;
    case N_RESOLVE:
        /* No fetch: the reference's target type is what `is` needs. */
        for (size_t i = 0; i < src.n; i++) {
            size_t tn = 0;
            const char *t = ref_type(e, src.it[i].v, &tn);
            if (!t) continue;
            char *tt = hub_arena_strndup(e->a, t, tn);
            if (!tt) {
                e->nomem = true;
                return;
            }
            push(e, out, (item){src.it[i].v, tt, NULL});
        }
        return;
    case N_EXT:
        for (size_t i = 0; i < src.n; i++) {
            const json_t *exts = json_object_get(src.it[i].v, "extension");
            size_t k;
            const json_t *x;
            json_array_foreach(exts, k, x) {
                const char *url = json_string_value(json_object_get(x, "url"));
                if (url && strcmp(url, n->name) == 0)
                    push(e, out, (item){x, "Extension", "Extension"});
            }
        }
        return;
    case N_AND: {
        coll r = {0};
        eval(e, n->b, in, &r, depth + 1);
        if (!src.n || !r.n) return; /* empty propagates */
        push(e, out, (item){const_bool(truthy(&src) && truthy(&r)), "boolean", NULL});
        return;
    }
    case N_EQ:
    case N_NE: {
        coll r = {0};
        eval(e, n->b, in, &r, depth + 1);
        if (src.n != 1 || r.n != 1) return;
        item x = src.it[0], y = r.it[0];
        bool eq;
        if (x.v == NULL || y.v == NULL) {
            /* A string literal: x.key holds its text. */
            const char *xs = x.v ? json_string_value(x.v) : x.key;
            const char *ys = y.v ? json_string_value(y.v) : y.key;
            eq = xs && ys && strcmp(xs, ys) == 0;
        } else {
            eq = item_eq(&x, &y);
        }
        push(e, out, (item){const_bool(n->kind == N_EQ ? eq : !eq), "boolean", NULL});
        return;
    }
    default:
        return;
    }
}

/* The evaluation proper, without the heads check. */
static hub_status run(const hub_fhir_defs *d, const hub_fhirpath *fp, hub_arena *a,
                      const char *type, const char *key, const json_t *v, const char *rtype,
                      const json_t *res, hub_fhirpath_fn fn, void *ud) {
    ev e = {d, a, type, false, {res, rtype, rtype}};
    item root = {v, type, key};
    coll in = {&root, 1, 1};
    coll out = {0};
    eval(&e, fp->root, &in, &out, 0);
    if (e.nomem) return HUB_E_NOMEM;
    for (size_t i = 0; i < out.n; i++) {
        if (out.it[i].v == NULL) continue; /* a bare literal */
        hub_status rc = fn(ud, out.it[i].v, out.it[i].type, out.it[i].key);
        if (rc) return rc;
    }
    return HUB_OK;
}

/* On a whole resource the caller (index extraction) has checked the heads
 * against the resource's keys, collected once for all its parameters;
 * evaluating them again here was a walk of the keys per parameter. */
hub_status hub_fhirpath_eval(const hub_fhir_defs *d, const hub_fhirpath *fp,
                             hub_arena *a, const char *rtype, const json_t *res,
                             hub_fhirpath_fn fn, void *ud) {
    return run(d, fp, a, rtype, rtype, res, rtype, res, fn, ud);
}

hub_status hub_fhirpath_eval_at(const hub_fhir_defs *d, const hub_fhirpath *fp,
                                hub_arena *a, const char *type, const char *key,
                                const json_t *v, const char *rtype, const json_t *res,
                                hub_fhirpath_fn fn, void *ud) {
    if (!may_match(fp, v)) return HUB_OK;
    return run(d, fp, a, type, key, v, rtype, res, fn, ud);
}
