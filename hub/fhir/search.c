/* The search-parameter table: conformance/fhir/r4/searchparams.tsv (one row
 * per parameter and base type, generated from the official R4
 * SearchParameters) and compartment-patient.tsv, loaded once with every
 * expression compiled. */
#include "hub/fhir.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_TABLE (16u << 20)

typedef struct {
    const char *type;
    size_t first; /* index into strs (which may move while loading) */
    size_t n;
} comp_row;

struct hub_fhir_sps {
    char *text[2];
    hub_fhir_sp *rows;
    const hub_fhir_sp **byref; /* rows by (base, code), pointers */
    size_t *gend;              /* gend[i]: the end of byref[i]'s base in byref */
    size_t n, compiled;
    const char **strs;         /* every split list (targets, params) */
    size_t nstrs, capstrs;
    comp_row *comp;
    size_t ncomp;
};

static const struct {
    const char *name;
    hub_sp_type t;
} TYPES[] = {
    {"number", HUB_SP_NUMBER},       {"date", HUB_SP_DATE},   {"string", HUB_SP_STRING},
    {"token", HUB_SP_TOKEN},         {"reference", HUB_SP_REFERENCE},
    {"composite", HUB_SP_COMPOSITE}, {"quantity", HUB_SP_QUANTITY},
    {"uri", HUB_SP_URI},             {"special", HUB_SP_SPECIAL},
};

static bool type_of(const char *s, hub_sp_type *out) {
    for (size_t i = 0; i < sizeof TYPES / sizeof *TYPES; i++)
        if (strcmp(TYPES[i].name, s) == 0) {
            *out = TYPES[i].t;
            return true;
        }
    return false;
}

/* Splits `s` at `sep` in place (NUL-terminating fields); returns the
 * count, at most max. */
static size_t split(char *s, char sep, char **f, size_t max) {
    size_t n = 0;
    while (n < max) {
        f[n++] = s;
        char *e = strchr(s, sep);
        if (!e) break;
        *e = '\0';
        s = e + 1;
    }
    return n;
}

/* A comma list as a pointer array kept in t->strs (one allocation for
 * the table: pointers are indexes until the end, fixed up by the caller). */
static hub_status list_of(hub_fhir_sps *t, char *s, size_t *first, size_t *n) {
    *first = t->nstrs;
    *n = 0;
    if (strcmp(s, "-") == 0 || *s == '\0') return HUB_OK;
    for (;;) {
        if (t->nstrs == t->capstrs) {
            size_t cap = t->capstrs ? t->capstrs * 2 : 1024;
            const char **p = hub_realloc(t->strs, cap * sizeof *p);
            if (!p) return HUB_E_NOMEM;
            t->strs = p;
            t->capstrs = cap;
        }
        t->strs[t->nstrs++] = s;
        (*n)++;
        char *c = strchr(s, ',');
        if (!c) break;
        *c = '\0';
        s = c + 1;
    }
    return HUB_OK;
}

static int cmp_sp(const void *a, const void *b) {
    const hub_fhir_sp *x = *(const hub_fhir_sp *const *)a, *y = *(const hub_fhir_sp *const *)b;
    int c = strcmp(x->base, y->base);
    return c ? c : strcmp(x->code, y->code);
}

static hub_status bad(hub_err *err, const char *file, size_t line, const char *what) {
    return hub_err_set(err, HUB_E_CONFIG, "fhir search", "%s line %zu: %s", file, line, what);
}

/* The parameter in byref[from, to) whose expression is exactly expr[0, n),
 * of type `type`, not itself an alias; NULL if none. */
static const hub_fhir_sp *by_expr(const hub_fhir_sps *t, size_t from, size_t to,
                                  const char *expr, size_t n, hub_sp_type type) {
    for (size_t i = from; i < to; i++) {
        const hub_fhir_sp *o = t->byref[i];
        if (o->type == type && o->path && o->nsame == 0 && strlen(o->expression) == n &&
            strncmp(o->expression, expr, n) == 0)
            return o;
    }
    return NULL;
}

static bool same_components(const hub_fhir_sp *a, const hub_fhir_sp *b) {
    if (a->ncomp != b->ncomp) return false;
    for (size_t i = 0; i < a->ncomp; i++)
        if (a->comp_type[i] != b->comp_type[i] || !a->comp_expr[i] || !b->comp_expr[i] ||
            strcmp(a->comp_expr[i], b->comp_expr[i]) != 0)
            return false;
    return true;
}

/* Parameters whose rows another parameter's rows already hold (Observation:
 * patient = subject's Patient references; combo-code = code |
 * component-code; combo-code-value-quantity = code-value-quantity |
 * component-code-value-quantity; Patient: phonetic = name, the same
 * expression): the index writes only the others, a third fewer rows for an
 * Observation. */
static void find_aliases(hub_fhir_sps *t) {
    static const char WHERE[] = ".where(resolve() is ";
    for (size_t i = 0; i < t->n;) {
        size_t j = i;
        while (j < t->n && strcmp(t->byref[j]->base, t->byref[i]->base) == 0) j++;
        for (size_t k = i; k < j; k++) {
            hub_fhir_sp *sp = (hub_fhir_sp *)t->byref[k];
            if (!sp->path || sp->code[0] == '_') continue;
            const char *e = sp->expression;
            const char *w = strstr(e, WHERE);
            const char *bar = strstr(e, " | ");
            /* the same expression and type as another: the same rows (the
             * extraction reads nothing else of a parameter) */
            const hub_fhir_sp *twin =
                sp->type == HUB_SP_COMPOSITE ? NULL : by_expr(t, i, j, e, strlen(e), sp->type);
            if (twin && twin != sp) {
                sp->same[0] = twin->code;
                sp->nsame = 1;
            } else if (sp->type == HUB_SP_REFERENCE && w && !bar && w[strlen(w) - 1] == ')' &&
                !strchr(w + sizeof WHERE - 1, '.')) {
                const hub_fhir_sp *o = by_expr(t, i, j, e, (size_t)(w - e), HUB_SP_REFERENCE);
                const char *ty = w + sizeof WHERE - 1;
                size_t tl = strlen(ty) - 1;
                /* the type, as one of the parameter's targets (a string
                 * of its own) */
                for (size_t x = 0; o && o != sp && x < sp->ntargets; x++)
                    if (strlen(sp->targets[x]) == tl && strncmp(sp->targets[x], ty, tl) == 0) {
                        sp->same[0] = o->code;
                        sp->same_type = sp->targets[x];
                        sp->nsame = 1;
                    }
            } else if (bar && !w) {
                /* X | Y: the first terms of the union are another
                 * parameter's whole expression, the rest a third's */
                for (size_t a = i; a < j && !sp->nsame; a++) {
                    const hub_fhir_sp *pa = t->byref[a];
                    size_t la = strlen(pa->expression);
                    if (pa == sp || pa->type != sp->type || !pa->path || pa->nsame ||
                        strncmp(e, pa->expression, la) != 0 || strncmp(e + la, " | ", 3) != 0 ||
                        (sp->type == HUB_SP_COMPOSITE && !same_components(sp, pa)))
                        continue;
                    for (size_t b = i; b < j; b++) {
                        const hub_fhir_sp *pb = t->byref[b];
                        if (pb == sp || pb == pa || pb->type != sp->type || !pb->path || pb->nsame ||
                            strcmp(e + la + 3, pb->expression) != 0 ||
                            (sp->type == HUB_SP_COMPOSITE && !same_components(sp, pb)))
                            continue;
                        sp->same[0] = pa->code;
                        sp->same[1] = pb->code;
                        sp->nsame = 2;
                        break;
                    }
                }
            }
        }
        i = j;
    }
}

/* term[0, n) without one pair of parentheses around all of it. */
static void unparen(const char **term, size_t *n) {
    const char *s = *term;
    if (*n < 2 || s[0] != '(' || s[*n - 1] != ')') return;
    int depth = 0;
    for (size_t i = 0; i < *n; i++) {
        depth += s[i] == '(' ? 1 : s[i] == ')' ? -1 : 0;
        if (depth == 0 && i + 1 < *n) return; /* (a).b | (c): not one pair */
    }
    (*term)++;
    *n -= 2;
}

/* The i-th " | " term of expr (unparenthesized, without `base.`), or
 * false past the last. */
static bool term_at(const char *expr, const char *base, size_t i, const char **t, size_t *n) {
    const char *s = expr;
    for (; i > 0; i--) {
        s = strstr(s, " | ");
        if (!s) return false;
        s += 3;
    }
    const char *e = strstr(s, " | ");
    *t = s;
    *n = e ? (size_t)(e - s) : strlen(s);
    unparen(t, n);
    size_t bl = base ? strlen(base) : 0;
    if (base) {
        if (*n <= bl || strncmp(*t, base, bl) != 0 || (*t)[bl] != '.') return false;
        *t += bl + 1;
        *n -= bl + 1;
    }
    return true;
}

/* Whether expr (of some parameter of base) has the term t[0, n). Types
 * compare without case (ofType(DateTime) is ofType(dateTime)). */
static bool has_term(const char *expr, const char *base, const char *t, size_t n) {
    const char *u;
    size_t un;
    for (size_t i = 0; term_at(expr, base, i, &u, &un); i++)
        if (un == n && strncasecmp(u, t, n) == 0) return true;
    return false;
}

/* Whether parameter p's values are exactly those of the component
 * expression c (relative to the resource) of type `type`: the same terms,
 * except that a quantity parameter's SampledData term gives no index rows
 * (hub_record_extract reads a quantity's value, which SampledData lacks). */
static bool same_values(const hub_fhir_sp *p, hub_sp_type type, const char *c) {
    if (p->type != type || !p->path || p->nsame || p->type == HUB_SP_COMPOSITE) return false;
    const char *t;
    size_t n;
    size_t i = 0;
    for (; term_at(c, NULL, i, &t, &n); i++)
        if (!has_term(p->expression, p->base, t, n)) return false;
    if (i == 0) return false;
    for (i = 0; term_at(p->expression, p->base, i, &t, &n); i++) {
        static const char SD[] = ".ofType(SampledData)";
        bool none = type == HUB_SP_QUANTITY && n > sizeof SD - 1 &&
                    strncmp(t + n - (sizeof SD - 1), SD, sizeof SD - 1) == 0;
        if (!none && !has_term(c, NULL, t, n)) return false;
    }
    /* every term of p's was read: a term that is not `base.` stops it */
    const char *e = p->expression;
    size_t terms = 1;
    while ((e = strstr(e, " | ")) != NULL) e += 3, terms++;
    return i == terms;
}

/* Composites over the resource itself whose components are two other
 * parameters' values (hub_fhir_sp pair). */
static void find_pairs(hub_fhir_sps *t) {
    for (size_t i = 0; i < t->n;) {
        size_t j = i;
        while (j < t->n && strcmp(t->byref[j]->base, t->byref[i]->base) == 0) j++;
        for (size_t k = i; k < j; k++) {
            hub_fhir_sp *sp = (hub_fhir_sp *)t->byref[k];
            if (sp->type != HUB_SP_COMPOSITE || !sp->path || sp->ncomp != 2 || !sp->comp_path[0] ||
                !sp->comp_path[1] || strcmp(sp->expression, sp->base) != 0)
                continue;
            const char *found[2] = {NULL, NULL};
            for (size_t c = 0; c < 2; c++)
                for (size_t x = i; x < j && !found[c]; x++)
                    if (same_values(t->byref[x], sp->comp_type[c], sp->comp_expr[c]))
                        found[c] = t->byref[x]->code;
            if (found[0] && found[1]) {
                sp->pair[0] = found[0];
                sp->pair[1] = found[1];
            }
        }
        i = j;
    }
}

static hub_status load_params(hub_fhir_sps *t, char *text, hub_err *err) {
    size_t lines = 0;
    for (char *p = text; *p; p++) lines += *p == '\n';
    t->rows = hub_calloc(lines + 1, sizeof *t->rows);
    if (!t->rows) return hub_err_set(err, HUB_E_NOMEM, "fhir search", "out of memory");
    size_t *tfirst = hub_calloc(lines + 1, sizeof *tfirst);
    if (!tfirst) return hub_err_set(err, HUB_E_NOMEM, "fhir search", "out of memory");
    size_t lineno = 0;
    hub_status rc = HUB_OK;
    for (char *line = text; line && *line && !rc;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        lineno++;
        if (*line && *line != '#') {
            char *f[8];
            size_t nf = split(line, '\t', f, 8);
            hub_fhir_sp *sp = &t->rows[t->n];
            if (nf < 5 || !type_of(f[2], &sp->type)) {
                rc = bad(err, "searchparams.tsv", lineno, "malformed row");
                break;
            }
            sp->base = f[0];
            sp->code = f[1];
            sp->expression = f[3];
            rc = list_of(t, f[4], &tfirst[t->n], &sp->ntargets);
            if (rc) {
                hub_err_set(err, rc, "fhir search", "out of memory");
                break;
            }
            hub_err ce;
            hub_fhirpath *fp = NULL;
            if (hub_fhirpath_compile(sp->expression, &fp, &ce) == HUB_E_NOMEM) {
                rc = hub_err_set(err, HUB_E_NOMEM, "fhir search", "out of memory");
                break;
            }
            sp->path = fp;
            bool ok = fp != NULL;
            for (size_t c = 5; c < nf && sp->ncomp < 3; c++) {
                char *cf[3];
                if (split(f[c], '=', cf, 3) != 3 || !type_of(cf[1], &sp->comp_type[sp->ncomp])) {
                    rc = bad(err, "searchparams.tsv", lineno, "malformed component");
                    break;
                }
                sp->comp_code[sp->ncomp] = cf[0];
                sp->comp_expr[sp->ncomp] = cf[2];
                hub_fhirpath *cp = NULL;
                hub_fhirpath_compile(cf[2], &cp, &ce);
                sp->comp_path[sp->ncomp++] = cp;
                ok = ok && cp;
            }
            if (ok) t->compiled++;
            t->n++;
        }
        line = nl ? nl + 1 : NULL;
    }
    if (!rc) {
        for (size_t i = 0; i < t->n; i++)
            t->rows[i].targets = t->rows[i].ntargets ? &t->strs[tfirst[i]] : NULL;
        t->byref = hub_malloc((t->n + 1) * sizeof *t->byref);
        if (!t->byref) rc = hub_err_set(err, HUB_E_NOMEM, "fhir search", "out of memory");
    }
    if (!rc) {
        for (size_t i = 0; i < t->n; i++) t->byref[i] = &t->rows[i];
        qsort(t->byref, t->n, sizeof *t->byref, cmp_sp);
        find_aliases(t);
        find_pairs(t);
        t->gend = hub_malloc((t->n + 1) * sizeof *t->gend);
        if (!t->gend) rc = hub_err_set(err, HUB_E_NOMEM, "fhir search", "out of memory");
        for (size_t i = t->gend ? t->n : 0; i-- > 0;)
            t->gend[i] = i + 1 < t->n && strcmp(t->byref[i + 1]->base, t->byref[i]->base) == 0
                             ? t->gend[i + 1]
                             : i + 1;
    }
    hub_free(tfirst);
    return rc;
}

static hub_status load_comp(hub_fhir_sps *t, char *text, hub_err *err) {
    size_t lines = 0;
    for (char *p = text; *p; p++) lines += *p == '\n';
    t->comp = hub_calloc(lines + 1, sizeof *t->comp);
    hub_status rc = HUB_OK;
    if (!t->comp) rc = hub_err_set(err, HUB_E_NOMEM, "fhir search", "out of memory");
    size_t lineno = 0;
    for (char *line = text; !rc && line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        lineno++;
        if (*line && *line != '#') {
            char *f[2];
            if (split(line, '\t', f, 2) != 2) {
                rc = bad(err, "compartment-patient.tsv", lineno, "malformed row");
                break;
            }
            comp_row *c = &t->comp[t->ncomp++];
            c->type = f[0];
            if (list_of(t, f[1], &c->first, &c->n))
                rc = hub_err_set(err, HUB_E_NOMEM, "fhir search", "out of memory");
        }
        line = nl ? nl + 1 : NULL;
    }
    return rc;
}

hub_status hub_fhir_sps_load(const char *dir, hub_fhir_sps **out, hub_err *err) {
    *out = NULL;
    hub_fhir_sps *t = hub_calloc(1, sizeof *t);
    if (!t) return hub_err_set(err, HUB_E_NOMEM, "fhir search", "out of memory");
    static const char *const FILES[2] = {"searchparams.tsv", "compartment-patient.tsv"};
    hub_status rc = HUB_OK;
    for (int f = 0; f < 2 && !rc; f++) {
        char path[1024];
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, FILES[f]) >= sizeof path) {
            rc = hub_err_set(err, HUB_E_IO, "fhir search", "directory name too long");
            break;
        }
        size_t n;
        rc = hub_file_read(path, MAX_TABLE, &t->text[f], &n, err);
    }
    if (!rc) rc = load_comp(t, t->text[1], err);
    if (!rc) rc = load_params(t, t->text[0], err);
    if (rc) {
        hub_fhir_sps_free(t);
        return rc;
    }
    *out = t;
    return HUB_OK;
}

void hub_fhir_sps_free(hub_fhir_sps *t) {
    if (!t) return;
    for (size_t i = 0; i < t->n; i++) {
        hub_fhirpath_free((hub_fhirpath *)t->rows[i].path);
        for (size_t c = 0; c < t->rows[i].ncomp; c++)
            hub_fhirpath_free((hub_fhirpath *)t->rows[i].comp_path[c]);
    }
    hub_free(t->rows);
    hub_free(t->byref);
    hub_free(t->gend);
    hub_free((void *)t->strs);
    hub_free(t->comp);
    hub_free(t->text[0]);
    hub_free(t->text[1]);
    hub_free(t);
}

void hub_fhir_sps_stats(const hub_fhir_sps *t, size_t *rows, size_t *compiled) {
    *rows = t->n;
    *compiled = t->compiled;
}

static size_t lower_bound(const hub_fhir_sps *t, const char *type, const char *code) {
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(t->byref[mid]->base, type);
        if (c == 0 && code) c = strcmp(t->byref[mid]->code, code);
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

const hub_fhir_sp *hub_fhir_sp_find(const hub_fhir_sps *t, const char *type,
                                    const char *code) {
    const char *bases[3] = {type, "DomainResource", "Resource"};
    for (int b = 0; b < 3; b++) {
        size_t i = lower_bound(t, bases[b], code);
        if (i < t->n && strcmp(t->byref[i]->base, bases[b]) == 0 &&
            strcmp(t->byref[i]->code, code) == 0)
            return t->byref[i];
    }
    return NULL;
}

const hub_fhir_sp *const *hub_fhir_sp_list(const hub_fhir_sps *t,
                                           const char *type, size_t *n) {
    size_t i = lower_bound(t, type, NULL);
    *n = i < t->n && strcmp(t->byref[i]->base, type) == 0 ? t->gend[i] - i : 0;
    return *n ? &t->byref[i] : NULL;
}

const char *const *hub_fhir_compartment_params(const hub_fhir_sps *t,
                                               const char *type, size_t *n) {
    for (size_t i = 0; i < t->ncomp; i++)
        if (strcmp(t->comp[i].type, type) == 0) {
            *n = t->comp[i].n;
            return &t->strs[t->comp[i].first];
        }
    *n = 0;
    return NULL;
}

const char *hub_fhir_compartment_type(const hub_fhir_sps *t, size_t i) {
    return i < t->ncomp ? t->comp[i].type : NULL;
}
