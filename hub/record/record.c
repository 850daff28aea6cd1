/* The record: reads, history and apply(). apply prepares every operation on
 * the caller's thread (checks, validation, id generation, the compact JSON
 * with placeholders for the version and the instant), then submits one
 * writer job (a transaction) or one job per operation (a batch) and waits
 * for the commit. The job resolves what only the store can answer
 * (conditional criteria, current versions, If-Match), splices the version
 * into the prepared bytes and writes. JSON work happens on the writer only
 * where it cannot be known earlier: PATCH (it needs the stored version) and
 * resources whose references point at conditionally resolved entries. */
#include "internal.h"
#include "hub/limits.h"

#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- open, close ------------------------------------------------------------ */

hub_status hub_record_open(const hub_record_cfg *c, hub_record **out,
                           hub_err *err) {
    *out = NULL;
    if (c == NULL || c->store == NULL)
        return hub_err_set(err, HUB_E_ARG, "record", "no store");
    hub_record *r = hub_calloc(1, sizeof *r);
    if (r == NULL) return hub_err_set(err, HUB_E_NOMEM, "record", "out of memory");
    r->store = c->store;
    r->defs = c->defs;
    r->search = c->search;
    r->vopts = c->validate;
    r->max_bundle_entries = c->max_bundle_entries > 0 ? c->max_bundle_entries : 1000;
    r->stored = hub__stored_new();
    *out = r;
    return HUB_OK;
}

void hub_record_close(hub_record *r) {
    if (r) hub__stored_free(r->stored);
    hub_free(r);
}

const hub_fhir_defs *hub_record_defs(const hub_record *r) { return r->defs; }
const hub_fhir_sps *hub_record_sps(const hub_record *r) { return r->search; }
hub_store *hub_record_store(const hub_record *r) { return r->store; }

void hub_record_set_patient_ids(hub_record *r, hub_record_patient_ids_fn fn, void *ud) {
    r->patient_ids = fn;
    r->patient_ids_ud = ud;
}

hub_status hub_record_patient_ids(hub_record *r, const char *id, hub_arena *a,
                                  const char ***ids, size_t *n, hub_err *err) {
    if (r->patient_ids) return r->patient_ids(r->patient_ids_ud, id, a, ids, n, err);
    const char **one = hub_arena_alloc(a, sizeof *one);
    char *copy = one ? hub_arena_strndup(a, id, strlen(id)) : NULL;
    if (copy == NULL) return hub_err_set(err, HUB_E_NOMEM, "record", "out of memory");
    one[0] = copy;
    *ids = one;
    *n = 1;
    return HUB_OK;
}

hub_status hub_record_listen(hub_record *r, hub_record_listener fn, void *ud) {
    int cap = (int)(sizeof r->listeners / sizeof r->listeners[0]);
    if (r->nlisteners == cap)
        return HUB_E_LIMIT;
    r->listeners[r->nlisteners].fn = fn;
    r->listeners[r->nlisteners].ud = ud;
    r->nlisteners++;
    return HUB_OK;
}

hub_status hub__record_notify(hub_record *r, hub_store_tx *tx, const hub_record_change *ch,
                              hub_err *err) {
    for (int i = 0; i < r->nlisteners; i++) {
        hub_status rc = r->listeners[i].fn(r->listeners[i].ud, tx, ch, err);
        if (rc) return rc;
    }
    return HUB_OK;
}

hub_status hub_record_prewrite(hub_record *r, const char *type, hub_record_prewrite_fn fn,
                               void *ud) {
    int cap = (int)(sizeof r->prewrites / sizeof r->prewrites[0]);
    if (r->nprewrites == cap) return HUB_E_LIMIT;
    r->prewrites[r->nprewrites].type = type;
    r->prewrites[r->nprewrites].fn = fn;
    r->prewrites[r->nprewrites].ud = ud;
    r->nprewrites++;
    return HUB_OK;
}

hub_status hub__record_prewrite(hub_record *r, hub_store_tx *tx, hub_record_pending *pw,
                                bool *changed, hub_err *err) {
    *changed = false;
    for (int i = 0; i < r->nprewrites; i++) {
        if (strcmp(r->prewrites[i].type, pw->type) != 0) continue;
        bool ch = false;
        hub_status rc = r->prewrites[i].fn(r->prewrites[i].ud, tx, pw, &ch, err);
        if (rc) return rc;
        *changed = *changed || ch;
    }
    return HUB_OK;
}

void hub_resource_release(hub_resource *r) {
    if (r == NULL) return;
    hub_free(r->json);
    r->json = NULL;
    r->json_len = 0;
}

void hub_record_op_release(hub_record_op *op) {
    if (op == NULL) return;
    hub_resource_release(&op->res);
    hub_oo_free(op->outcome);
    op->outcome = NULL;
}

/* [A-Za-z0-9-.] by table: this runs on every read. */
static const bool ID_CHAR[256] = {
    ['-'] = 1, ['.'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1,
    ['7'] = 1, ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1,
    ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1,
    ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1,
    ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1,
    ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1,
    ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1,
    ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

bool hub__record_id_ok(const char *id) {
    if (id == NULL) return false;
    size_t n = 0;
    while (n <= 64 && ID_CHAR[(unsigned char)id[n]]) n++;
    return n > 0 && n <= 64 && id[n] == '\0';
}

static bool type_ok(const hub_record *r, const char *type) {
    if (type == NULL || *type == '\0' || strlen(type) >= 64) return false;
    if (r->defs) return hub_fhir_is_resource(r->defs, type);
    for (const char *p = type; *p; p++)
        if (!isalpha((unsigned char)*p)) return false;
    return isupper((unsigned char)type[0]);
}

int hub__op_fail(hub_record_op *op, int status, const char *code,
                 const char *expr, const char *fmt, ...) {
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (op->outcome == NULL) op->outcome = hub_oo_new();
    if (op->outcome) hub_oo_add(op->outcome, HUB_OO_ERROR, code, expr, "%s", msg);
    op->status = status;
    return status;
}

/* ---- reads ---------------------------------------------------------------------- */

/* src into dst[cap], cut to fit; no printf on the read path. */
static void copy_name(char *dst, size_t cap, const char *src) {
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static void fill_head(hub_resource *o, const hub_store_version *v) {
    copy_name(o->type, sizeof o->type, v->type);
    copy_name(o->id, sizeof o->id, v->id);
    o->version = v->version;
    o->last_updated_ms = v->last_updated_ms;
    o->deleted = v->deleted;
}

/* The one copy of a read: the stored bytes into the caller's buffer. */
static hub_status copy_version(hub_resource *o, const hub_store_version *v) {
    fill_head(o, v);
    o->json = NULL;
    o->json_len = 0;
    if (!v->deleted && v->json) {
        o->json = hub_malloc(v->json_len + 1);
        if (o->json == NULL) return HUB_E_NOMEM;
        memcpy(o->json, v->json, v->json_len);
        o->json[v->json_len] = '\0';
        o->json_len = v->json_len;
    }
    return HUB_OK;
}

static hub_status read_cb(void *ud, const hub_store_version *v) {
    return copy_version(ud, v);
}

hub_status hub_record_read(hub_record *r, const char *type, const char *id,
                           int64_t version, hub_resource *out, hub_err *err) {
    memset(out, 0, sizeof *out);
    if (!type_ok(r, type))
        return hub_err_set(err, HUB_E_NOTFOUND, "record", "unknown resource type");
    if (!hub__record_id_ok(id))
        return hub_err_set(err, HUB_E_NOTFOUND, "record", "no %s with that id", type);
    hub_status rc = hub_store_res_read(r->store, type, id, version, read_cb, out, err);
    if (rc == HUB_E_NOTFOUND)
        return hub_err_set(err, HUB_E_NOTFOUND, "record",
                           version > 0 ? "no such version of that %s"
                                       : "no %s with that id",
                           type);
    if (rc == HUB_E_NOMEM) {
        hub_resource_release(out);
        return hub_err_set(err, HUB_E_NOMEM, "record", "out of memory");
    }
    return rc;
}

typedef struct {
    hub_resource_fn fn;
    void *ud;
} hist_ctx;

static hub_status hist_cb(void *ud, const hub_store_version *v) {
    hist_ctx *h = ud;
    hub_resource res;
    fill_head(&res, v);
    /* Borrowed for the call: no copy on the history path. */
    res.json = v->deleted ? NULL : (char *)v->json;
    res.json_len = v->deleted ? 0 : v->json_len;
    return h->fn(h->ud, &res);
}

hub_status hub_record_history(hub_record *r, const hub_history_query *q,
                              hub_resource_fn fn, void *ud,
                              int64_t *next_cursor, int64_t *total,
                              hub_err *err) {
    *next_cursor = 0;
    *total = 0;
    if (q->type && !type_ok(r, q->type))
        return hub_err_set(err, HUB_E_NOTFOUND, "record", "unknown resource type");
    if (q->id && (!q->type || !hub__record_id_ok(q->id)))
        return hub_err_set(err, HUB_E_NOTFOUND, "record", "no resource with that id");
    if (q->count < 1 || q->count > 1000)
        return hub_err_set(err, HUB_E_ARG, "_count", "count must be 1..1000");
    hub_store_history_q sq = {q->type, q->id, q->since_ms, q->count, q->cursor};
    hist_ctx h = {fn, ud};
    return hub_store_res_history(r->store, &sq, hist_cb, &h, next_cursor,
                                 total, err);
}

/* ---- apply: preparation ------------------------------------------------------ */

/* Placeholders for meta.versionId and meta.lastUpdated in the prepared
 * bytes. Control characters are escaped by the encoder, so the marker can
 * only come from us (FHIR strings may not hold U+0001 either). */
#define MARK_V "\x01hubv\x01"
#define MARK_T "\x01hubt\x01"
#define MARK_V_JSON "\\u0001hubv\\u0001"
#define MARK_T_JSON "\\u0001hubt\\u0001"
#define MARK_LEN 16

typedef struct {
    const char *param;
    const char *system; /* NULL: any system */
    const char *value;
    hub_store_query *q; /* the whole criteria as a search (when the record
                           has the search table): then the only crit */
} crit;


typedef struct {
    hub_record_op *op;
    char id[72];          /* the target */
    int64_t if_match;     /* -1 none, 0 unparsable, else the version */
    crit *crit;
    size_t ncrit;
    bool conditional;     /* criteria (or If-None-Exist) given */
    char *pre;            /* prepared JSON with the markers */
    size_t pre_len, ver_at, lu_at;
    hub_store_token *toks; /* in the apply's arena */
    size_t ntoks;
    bool late;            /* serialize in the job */
    bool done;            /* result final before the job */
    bool write;           /* the job writes a version */
    int64_t cur_version;
    int64_t cur_lu;       /* the current version's lastUpdated (ms) */
    bool exists, deleted;
    char *final;
    size_t final_len;
} opx;

typedef struct {
    hub_record *r;
    opx *x;
    size_t n;
    bool atomic;
    /* A transaction Bundle's entries (not one REST write): a urn:uuid or
     * urn:oid reference must name one of them. */
    bool urn_refs_local;
    hub_arena arena; /* criteria and other per-apply strings */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int pending;
    hub_status store_rc; /* a store or commit failure */
    hub_err store_err;
} apply_ctx;

/* The resource's index rows, into the apply's arena. */
static int index_rows(apply_ctx *c, opx *x, const json_t *res) {
    hub_record_op *op = x->op;
    hub_status rc = hub__record_extract_stored(c->r->defs, c->r->search, &c->arena, op->type,
                                               res, &x->toks, &x->ntoks);
    if (rc == HUB_E_LIMIT)
        return hub__op_fail(op, 400, "too-costly", NULL,
                            "more than %d search index values", HUB__RECORD_MAX_ROWS);
    if (rc) return hub__op_fail(op, 500, "exception", NULL, "out of memory");
    return 0;
}

static int64_t parse_etag(const char *s) {
    if (s == NULL) return -1;
    while (*s == ' ') s++;
    if (s[0] == 'W' && s[1] == '/') s += 2;
    bool q = *s == '"';
    if (q) s++;
    if (!isdigit((unsigned char)*s)) return 0;
    int64_t v = 0;
    while (isdigit((unsigned char)*s)) {
        if (v > (INT64_MAX - 9) / 10) return 0;
        v = v * 10 + (*s++ - '0');
    }
    if (q && *s++ != '"') return 0;
    while (*s == ' ') s++;
    return *s ? 0 : v;
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* URL-decodes [p, p+n) into the arena; NULL on a bad escape. */
static char *url_decode(hub_arena *a, const char *p, size_t n) {
    char *out = hub_arena_alloc(a, n + 1);
    if (out == NULL) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '%') {
            int h, l;
            if (i + 2 >= n) return NULL;
            h = hexval((unsigned char)p[i + 1]);
            l = hexval((unsigned char)p[i + 2]);
            if (h < 0 || l < 0) return NULL;
            char ch = (char)(h * 16 + l);
            if (ch == '\0') return NULL;
            out[k++] = ch;
            i += 2;
        } else if (p[i] == '+') {
            out[k++] = ' ';
        } else {
            out[k++] = p[i];
        }
    }
    out[k] = '\0';
    return out;
}

/* Parses conditional criteria ("identifier=sys|v&_id=x"). Only `_id` and
 * `identifier` are supported here (search widens this); anything else is a
 * 400 naming the parameter. Returns 0 or the failing status. */
static int parse_criteria(apply_ctx *c, hub_record_op *op, const char *type_of_crit,
                          const char *q, crit **out, size_t *nout) {
    *out = NULL;
    *nout = 0;
    if (q == NULL || *q == '\0')
        return hub__op_fail(op, 400, "invalid", NULL,
                            "conditional %s without search criteria", op->type);
    size_t cap = 1;
    for (const char *p = q; *p; p++) cap += *p == '&';
    if (cap > 16)
        return hub__op_fail(op, 400, "too-costly", NULL,
                            "too many search criteria for a conditional operation");
    crit *cr = hub_arena_calloc(&c->arena, cap * sizeof *cr);
    if (cr == NULL) return hub__op_fail(op, 500, "exception", NULL, "out of memory");
    if (c->r->search) {
        /* Any search parameter: the criteria are a search (strict: an
         * unknown parameter is a 400, never silently ignored). */
        if (op->outcome == NULL) op->outcome = hub_oo_new();
        if (op->outcome == NULL) return hub__op_fail(op, 500, "exception", NULL, "out of memory");
        int st = hub__search_criteria(c->r, &c->arena, type_of_crit, q, &cr[0].q, op->outcome);
        if (st) {
            op->status = st;
            return st;
        }
        if (cr[0].q->nclauses == 0)
            return hub__op_fail(op, 400, "invalid", NULL,
                                "conditional %s without search criteria", op->type);
        *out = cr;
        *nout = 1;
        return 0;
    }
    size_t n = 0;
    const char *p = q;
    while (*p) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        if (len == 0) {
            p += amp ? 1 : 0;
            if (!amp) break;
            continue;
        }
        const char *eq = memchr(p, '=', len);
        if (eq == NULL)
            return hub__op_fail(op, 400, "invalid", NULL,
                                "search criterion without '='");
        char *name = url_decode(&c->arena, p, (size_t)(eq - p));
        char *val = url_decode(&c->arena, eq + 1, len - (size_t)(eq - p) - 1);
        if (name == NULL || val == NULL)
            return hub__op_fail(op, 400, "invalid", NULL,
                                "bad percent-encoding in search criteria");
        if (strcmp(name, "_id") == 0) {
            cr[n].param = "_id";
            cr[n].system = NULL;
            cr[n].value = val;
        } else if (strcmp(name, "identifier") == 0) {
            char *bar = strchr(val, '|');
            cr[n].param = "identifier";
            if (bar) {
                *bar = '\0';
                cr[n].system = val; /* "" for |value: no system */
                cr[n].value = bar + 1;
            } else {
                cr[n].system = NULL;
                cr[n].value = val;
            }
        } else {
            /* The name is the client's parameter, not data: safe to echo,
             * but cut to a sane length. */
            return hub__op_fail(op, 400, "not-supported", NULL,
                                "search parameter '%.64s' is not supported for "
                                "conditional operations (only _id and identifier)",
                                name);
        }
        if (*cr[n].value == '\0')
            return hub__op_fail(op, 400, "invalid", NULL,
                                "empty value for search parameter '%s'",
                                cr[n].param);
        n++;
        if (!amp) break;
        p = amp + 1;
    }
    if (n == 0)
        return hub__op_fail(op, 400, "invalid", NULL,
                            "conditional %s without search criteria", op->type);
    *out = cr;
    *nout = n;
    return 0;
}

/* Does any Reference.reference in `v` need the job (a conditional
 * reference, or one naming another entry's fullUrl)? */
static bool refs_need_job(const apply_ctx *c, const json_t *v, int depth) {
    if (depth > HUB_MAX_JSON_DEPTH) return false;
    if (json_is_array(v)) {
        size_t i;
        const json_t *it;
        json_array_foreach(v, i, it) if (refs_need_job(c, it, depth + 1)) return true;
        return false;
    }
    if (!json_is_object(v)) return false;
    const char *k;
    const json_t *it;
    json_object_foreach((json_t *)v, k, it) {
        if (json_is_string(it) && strcmp(k, "reference") == 0) {
            const char *s = json_string_value(it);
            const char *qm = strchr(s, '?');
            if (qm && qm != s && !memchr(s, '/', (size_t)(qm - s))) return true;
            if (c->urn_refs_local &&
                (strncmp(s, "urn:uuid:", 9) == 0 || strncmp(s, "urn:oid:", 8) == 0))
                return true;
            if (c->atomic)
                for (size_t i = 0; i < c->n; i++)
                    if (c->x[i].op->full_url && strcmp(c->x[i].op->full_url, s) == 0)
                        return true;
        } else if (refs_need_job(c, it, depth + 1)) {
            return true;
        }
    }
    return false;
}

static int validate(apply_ctx *c, hub_record_op *op, const json_t *res,
                    int status) {
    if (c->r->defs == NULL) return 0;
    if (op->outcome == NULL) op->outcome = hub_oo_new();
    if (op->outcome == NULL) return hub__op_fail(op, 500, "exception", NULL, "out of memory");
    if (hub_fhir_validate(c->r->defs, res, &c->r->vopts, op->outcome) != HUB_OK) {
        op->status = status;
        return status;
    }
    return 0;
}

/* Sets meta.versionId and meta.lastUpdated (markers or real values). */
static int set_meta(hub_record_op *op, json_t *res, const char *ver,
                    const char *lu) {
    json_t *meta = json_object_get(res, "meta");
    if (meta == NULL) {
        meta = json_object();
        if (meta == NULL || json_object_set_new(res, "meta", meta))
            return hub__op_fail(op, 500, "exception", NULL, "out of memory");
    } else if (!json_is_object(meta)) {
        return hub__op_fail(op, 400, "structure", "meta", "meta must be an object");
    }
    if (json_object_set_new(meta, "versionId", json_string(ver)) ||
        json_object_set_new(meta, "lastUpdated", json_string(lu)))
        return hub__op_fail(op, 500, "exception", NULL, "out of memory");
    return 0;
}

/* The compact JSON with markers, and where they are. */
static int serialize_marked(opx *x) {
    hub_record_op *op = x->op;
    int st = set_meta(op, op->resource, MARK_V, MARK_T);
    if (st) return st;
    /* One encoding pass (jansson allocates with malloc, which hub_free
     * releases: hub_malloc is malloc underneath). */
    x->pre = hub_json_dumps(op->resource, JSON_COMPACT);
    if (x->pre == NULL) return hub__op_fail(op, 500, "exception", NULL, "cannot encode");
    x->pre_len = strlen(x->pre);
    const char *v = memmem(x->pre, x->pre_len, MARK_V_JSON, MARK_LEN);
    const char *t = memmem(x->pre, x->pre_len, MARK_T_JSON, MARK_LEN);
    if (v == NULL || t == NULL)
        return hub__op_fail(op, 500, "exception", NULL, "meta markers lost");
    x->ver_at = (size_t)(v - x->pre);
    x->lu_at = (size_t)(t - x->pre);
    return 0;
}

static int prep_body(apply_ctx *c, opx *x) {
    hub_record_op *op = x->op;
    json_t *res = op->resource;
    if (!json_is_object(res))
        return hub__op_fail(op, 400, "required", NULL, "%s needs a resource body",
                            op->kind == HUB_OP_CREATE ? "create" : "update");
    const char *rt = json_string_value(json_object_get(res, "resourceType"));
    if (rt == NULL)
        return hub__op_fail(op, 400, "required", "resourceType",
                            "resource without resourceType");
    if (strcmp(rt, op->type) != 0)
        return hub__op_fail(op, 400, "invalid", "resourceType",
                            "resourceType '%.64s' does not match the request type '%s'",
                            rt, op->type);
    json_t *jid = json_object_get(res, "id");
    if (jid && !json_is_string(jid))
        return hub__op_fail(op, 400, "structure", "id", "id must be a string");
    const char *bid = json_string_value(jid);
    if (op->kind == HUB_OP_UPDATE && !x->conditional) {
        if (bid == NULL)
            return hub__op_fail(op, 400, "required", "id",
                                "update needs the id in the resource");
        if (strcmp(bid, x->id) != 0)
            return hub__op_fail(op, 400, "invalid", "id",
                                "id in the resource does not match the request");
    }
    if (bid && op->kind == HUB_OP_UPDATE && !hub__record_id_ok(bid))
        return hub__op_fail(op, 400, "value", "id", "invalid resource id");
    int st = validate(c, op, res, 400);
    if (st) return st;
    if (op->kind == HUB_OP_CREATE) {
        /* The server assigns the id of a create; the client's is ignored. */
        if (json_object_set_new(res, "id", json_string(x->id)))
            return hub__op_fail(op, 500, "exception", NULL, "out of memory");
    }
    x->late = (x->conditional && op->kind == HUB_OP_UPDATE) ||
              (op->merge && op->kind == HUB_OP_UPDATE);
    if (!x->late && refs_need_job(c, res, 0)) x->late = true;
    if (x->late) return 0;
    int ist = index_rows(c, x, res);
    if (ist) return ist;
    return serialize_marked(x);
}

/* A server-assigned id: a UUID in the version-7 layout, 48 bits of the
 * millisecond clock then 74 random bits. Still unguessable, but ids made
 * close in time sort together, so the indexes keyed by id take new rows at
 * their right edge instead of dirtying a random leaf page per create (that
 * halves what a commit group writes). */
static void new_id(char out[72]) {
    char u[37];
    hub_uuid(u); /* random v4: xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx */
    uint64_t ms = (uint64_t)hub_now_ms();
    static const char hex[] = "0123456789abcdef";
    /* 12 hex digits of time into the first 8+4 positions (skipping the dash) */
    int pos[12] = {0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12};
    for (int i = 11; i >= 0; i--) {
        u[pos[i]] = hex[ms & 15];
        ms >>= 4;
    }
    u[14] = '7';
    snprintf(out, 72, "%s", u);
}

static int prep(apply_ctx *c, opx *x) {
    hub_record_op *op = x->op;
    op->status = 0;
    op->created = false;
    memset(&op->res, 0, sizeof op->res);
    x->if_match = parse_etag(op->if_match);
    if (!type_ok(c->r, op->type))
        return hub__op_fail(op, op->type && *op->type ? 404 : 400, "not-supported",
                            NULL, "unknown resource type");
    const char *cq = op->kind == HUB_OP_CREATE ? op->if_none_exist : op->criteria;
    if (cq && op->kind != HUB_OP_READ) {
        x->conditional = true;
        int st = parse_criteria(c, op, op->type, cq, &x->crit, &x->ncrit);
        if (st) return st;
    }
    switch (op->kind) {
    case HUB_OP_READ:
        if (!hub__record_id_ok(op->id))
            return hub__op_fail(op, 404, "not-found", NULL, "no %s with that id",
                                op->type);
        snprintf(x->id, sizeof x->id, "%s", op->id);
        return 0;
    case HUB_OP_CREATE:
        new_id(x->id);
        return prep_body(c, x);
    case HUB_OP_UPDATE:
    case HUB_OP_PATCH:
    case HUB_OP_DELETE:
        if (!x->conditional) {
            if (op->id == NULL)
                return hub__op_fail(op, 400, "required", NULL,
                                    "the request needs an id or search criteria");
            if (!hub__record_id_ok(op->id))
                return hub__op_fail(op, op->kind == HUB_OP_UPDATE ? 400 : 404,
                                    op->kind == HUB_OP_UPDATE ? "value" : "not-found",
                                    NULL, "invalid resource id");
            snprintf(x->id, sizeof x->id, "%s", op->id);
        } else {
            new_id(x->id); /* used if 0 matches */
        }
        if (op->kind == HUB_OP_UPDATE) return prep_body(c, x);
        if (op->kind == HUB_OP_PATCH) {
            if (!json_is_array(op->patch))
                return hub__op_fail(op, 400, "structure", NULL,
                                    "a JSON Patch must be an array of operations");
            x->late = true;
        }
        return 0;
    }
    return hub__op_fail(op, 400, "not-supported", NULL, "unknown interaction");
}

/* ---- apply: the writer job ------------------------------------------------------ */

typedef struct {
    hub_store_job job;
    apply_ctx *ctx;
    size_t *idx; /* ops of this job, in processing order */
    size_t nidx;
    int failed;  /* index into idx of the op that failed an atomic job, or -1 */
} rec_job;

typedef struct {
    char (*ids)[72];
    size_t n, max;
} id_set;

static hub_status collect_id(void *ud, const char *id) {
    id_set *s = ud;
    if (s->n < s->max) snprintf(s->ids[s->n], 72, "%s", id);
    s->n++;
    return HUB_OK;
}

/* Matches criteria (ANDed). *n gets 0, 1 or 2 (= many); the one id goes to
 * `id`. */
#define MATCH_MAX 64
static hub_status match(hub_store_tx *tx, const char *type, const crit *cr,
                        size_t ncr, int *n, char id[72], hub_err *err) {
    char ids[MATCH_MAX][72];
    size_t nids = 0;
    bool first = true;
    *n = 0;
    if (ncr == 1 && cr[0].q) {
        id_set s = {ids, 0, 1};
        int cnt = 0;
        hub_status rc = hub_store_search_tx(tx, cr[0].q, 1, collect_id, &s, &cnt, err);
        if (rc) return rc;
        *n = cnt > 1 ? 2 : cnt;
        if (cnt == 1) snprintf(id, 72, "%s", ids[0]);
        return HUB_OK;
    }
    for (size_t k = 0; k < ncr; k++) {
        char got[MATCH_MAX][72];
        size_t ngot = 0;
        if (strcmp(cr[k].param, "_id") == 0) {
            hub_store_version cur;
            hub_status rc = hub_store_res_current(tx, type, cr[k].value, false, &cur, err);
            if (rc && rc != HUB_E_NOTFOUND) return rc;
            if (rc == HUB_OK && !cur.deleted && hub__record_id_ok(cr[k].value)) {
                snprintf(got[0], 72, "%s", cr[k].value);
                ngot = 1;
            }
        } else {
            id_set s = {got, 0, MATCH_MAX};
            int cnt = 0;
            hub_status rc = hub_store_res_find(tx, type, cr[k].param, cr[k].system,
                                               cr[k].value, MATCH_MAX, collect_id,
                                               &s, &cnt, err);
            if (rc) return rc;
            if (cnt > MATCH_MAX && first && ncr == 1) {
                *n = 2;
                return HUB_OK;
            }
            ngot = s.n < MATCH_MAX ? s.n : MATCH_MAX;
        }
        if (first) {
            memcpy(ids, got, ngot * sizeof got[0]);
            nids = ngot;
            first = false;
        } else {
            size_t w = 0;
            for (size_t i = 0; i < nids; i++)
                for (size_t j = 0; j < ngot; j++)
                    if (strcmp(ids[i], got[j]) == 0) {
                        memmove(ids[w++], ids[i], 72);
                        break;
                    }
            nids = w;
        }
        if (nids == 0) break;
    }
    *n = nids == 0 ? 0 : nids == 1 ? 1 : 2;
    if (nids == 1) snprintf(id, 72, "%s", ids[0]);
    return HUB_OK;
}

static hub_status read_current(hub_store_tx *tx, opx *x, hub_err *err) {
    hub_store_version cur;
    hub_status rc = hub_store_res_current(tx, x->op->type, x->id, false, &cur, err);
    if (rc == HUB_E_NOTFOUND) {
        x->exists = x->deleted = false;
        x->cur_version = 0;
        return HUB_OK;
    }
    if (rc) return rc;
    x->exists = true;
    x->deleted = cur.deleted;
    x->cur_version = cur.version;
    x->cur_lu = cur.last_updated_ms;
    return HUB_OK;
}

/* Fills op->res from a stored version read on the writer. */
static hub_status res_from_store(hub_store_tx *tx, hub_record_op *op,
                                 const char *id, int64_t version, hub_err *err) {
    hub_store_version v;
    hub_status rc = hub_store_res_get(tx, op->type, id, version, &v, err);
    if (rc) return rc;
    hub_resource_release(&op->res);
    if (copy_version(&op->res, &v)) return hub_err_set(err, HUB_E_NOMEM, "record", "out of memory");
    return HUB_OK;
}

/* Phase 1: what the operation targets and whether it may go ahead. */
static hub_status resolve(hub_store_tx *tx, apply_ctx *c, opx *x, hub_err *err) {
    (void)c;
    hub_record_op *op = x->op;
    hub_status rc;
    if (op->kind == HUB_OP_READ) return HUB_OK;
    if (x->conditional) {
        int n;
        char id[72];
        rc = match(tx, op->type, x->crit, x->ncrit, &n, id, err);
        if (rc) return rc;
        if (n > 1) {
            hub__op_fail(op, 412, "multiple-matches", NULL,
                         "the search criteria match more than one %s", op->type);
            return HUB_OK;
        }
        switch (op->kind) {
        case HUB_OP_CREATE:
            if (n == 1) {
                /* Conditional create found it: answer with what is there. */
                rc = res_from_store(tx, op, id, 0, err);
                if (rc) return rc;
                snprintf(x->id, sizeof x->id, "%s", id);
                op->status = 200;
                x->done = true;
                return HUB_OK;
            }
            break;
        case HUB_OP_UPDATE: {
            const char *bid = json_string_value(json_object_get(op->resource, "id"));
            if (n == 1) {
                if (bid && strcmp(bid, id) != 0) {
                    hub__op_fail(op, 400, "invalid", "id",
                                 "id in the resource does not match the resource "
                                 "the criteria found");
                    return HUB_OK;
                }
                snprintf(x->id, sizeof x->id, "%s", id);
            } else if (bid) {
                snprintf(x->id, sizeof x->id, "%s", bid);
                rc = read_current(tx, x, err);
                if (rc) return rc;
                if (x->exists && !x->deleted) {
                    hub__op_fail(op, 409, "conflict", "id",
                                 "no resource matches the criteria but the id in "
                                 "the resource is taken");
                    return HUB_OK;
                }
            }
            break;
        }
        case HUB_OP_PATCH:
            if (n == 0) {
                hub__op_fail(op, 404, "not-found", NULL,
                             "no %s matches the criteria", op->type);
                return HUB_OK;
            }
            snprintf(x->id, sizeof x->id, "%s", id);
            break;
        case HUB_OP_DELETE:
            if (n == 0) {
                op->status = 204;
                x->done = true;
                return HUB_OK;
            }
            snprintf(x->id, sizeof x->id, "%s", id);
            break;
        default:
            break;
        }
    }
    if (op->kind == HUB_OP_CREATE) {
        x->write = true;
        x->cur_version = 0;
        return HUB_OK;
    }
    rc = read_current(tx, x, err);
    if (rc) return rc;
    /* If-Match (RFC 7232): without a current representation the condition
     * is false, so a missing resource is a 412 too. */
    if (x->if_match >= 0 && (!x->exists || x->if_match != x->cur_version)) {
        if (x->exists)
            hub__op_fail(op, 412, "conflict", NULL,
                         "If-Match names version %lld but the current version "
                         "is %lld",
                         (long long)x->if_match, (long long)x->cur_version);
        else
            hub__op_fail(op, 412, "conflict", NULL,
                         "If-Match given but the %s does not exist", op->type);
        return HUB_OK;
    }
    switch (op->kind) {
    case HUB_OP_UPDATE:
        x->write = true;
        break;
    case HUB_OP_PATCH:
        if (!x->exists) {
            hub__op_fail(op, 404, "not-found", NULL, "no %s with that id", op->type);
            return HUB_OK;
        }
        if (x->deleted) {
            hub__op_fail(op, 410, "deleted", NULL, "that %s is deleted", op->type);
            return HUB_OK;
        }
        x->write = true;
        break;
    case HUB_OP_DELETE:
        if (!x->exists || x->deleted) {
            /* Deleting what is not there changes nothing (the spec allows
             * 200/204 for an already deleted resource; we answer a missing
             * one the same way, so deletes are idempotent). */
            op->status = 204;
            x->done = true;
            return HUB_OK;
        }
        x->write = true;
        break;
    default:
        break;
    }
    return HUB_OK;
}

/* Rewrites references to other entries' fullUrls and conditional
 * references. Returns 0 or the failing status (set on op). */
static int rewrite_refs(hub_store_tx *tx, apply_ctx *c, opx *self, json_t *v,
                        int depth, hub_status *src, hub_err *err) {
    if (depth > HUB_MAX_JSON_DEPTH) return 0;
    if (json_is_array(v)) {
        size_t i;
        json_t *it;
        json_array_foreach(v, i, it) {
            int st = rewrite_refs(tx, c, self, it, depth + 1, src, err);
            if (st) return st;
        }
        return 0;
    }
    if (!json_is_object(v)) return 0;
    const char *k;
    json_t *it;
    json_object_foreach(v, k, it) {
        if (!(json_is_string(it) && strcmp(k, "reference") == 0)) {
            int st = rewrite_refs(tx, c, self, it, depth + 1, src, err);
            if (st) return st;
            continue;
        }
        const char *s = json_string_value(it);
        char buf[160];
        bool set = false;
        if (c->atomic) {
            for (size_t i = 0; i < c->n; i++) {
                const hub_record_op *o = c->x[i].op;
                if (o->full_url && strcmp(o->full_url, s) == 0 &&
                    o->kind != HUB_OP_DELETE && o->kind != HUB_OP_READ) {
                    snprintf(buf, sizeof buf, "%s/%s", o->type, c->x[i].id);
                    set = true;
                    break;
                }
            }
        }
        if (!set && c->urn_refs_local &&
            (strncmp(s, "urn:uuid:", 9) == 0 || strncmp(s, "urn:oid:", 8) == 0))
            return hub__op_fail(self->op, 400, "not-found", NULL,
                                "reference to a urn that is not an entry of the "
                                "transaction");
        const char *qm = strchr(s, '?');
        if (!set && qm && qm != s && !memchr(s, '/', (size_t)(qm - s))) {
            char type[64];
            size_t tl = (size_t)(qm - s);
            if (tl >= sizeof type)
                return hub__op_fail(self->op, 400, "invalid", NULL,
                                    "conditional reference with a bad type");
            memcpy(type, s, tl);
            type[tl] = '\0';
            if (!type_ok(c->r, type))
                return hub__op_fail(self->op, 400, "invalid", NULL,
                                    "conditional reference to an unknown type");
            crit *cr;
            size_t ncr;
            int st = parse_criteria(c, self->op, type, qm + 1, &cr, &ncr);
            if (st) return st;
            int n;
            char id[72];
            *src = match(tx, type, cr, ncr, &n, id, err);
            if (*src) return 500;
            if (n == 0)
                return hub__op_fail(self->op, 400, "not-found", NULL,
                                    "conditional reference to %s matches nothing",
                                    type);
            if (n > 1)
                return hub__op_fail(self->op, 412, "multiple-matches", NULL,
                                    "conditional reference to %s matches more "
                                    "than one resource",
                                    type);
            snprintf(buf, sizeof buf, "%s/%s", type, id);
            set = true;
        }
        if (set && json_string_set(it, buf))
            return hub__op_fail(self->op, 500, "exception", NULL, "out of memory");
    }
    return 0;
}

/* The prepared bytes with the markers replaced. */
static int splice(opx *x, int64_t version, const char *iso) {
    char vbuf[24];
    int vl = snprintf(vbuf, sizeof vbuf, "%lld", (long long)version);
    size_t tl = strlen(iso);
    size_t n = x->pre_len - 2 * MARK_LEN + (size_t)vl + tl;
    char *out = hub_malloc(n + 1);
    if (out == NULL) return hub__op_fail(x->op, 500, "exception", NULL, "out of memory");
    size_t a = x->ver_at < x->lu_at ? x->ver_at : x->lu_at;
    size_t b = x->ver_at < x->lu_at ? x->lu_at : x->ver_at;
    const char *sa = x->ver_at < x->lu_at ? vbuf : iso;
    size_t la = x->ver_at < x->lu_at ? (size_t)vl : tl;
    const char *sb = x->ver_at < x->lu_at ? iso : vbuf;
    size_t lb = x->ver_at < x->lu_at ? tl : (size_t)vl;
    char *w = out;
    memcpy(w, x->pre, a);
    w += a;
    memcpy(w, sa, la);
    w += la;
    memcpy(w, x->pre + a + MARK_LEN, b - a - MARK_LEN);
    w += b - a - MARK_LEN;
    memcpy(w, sb, lb);
    w += lb;
    memcpy(w, x->pre + b + MARK_LEN, x->pre_len - b - MARK_LEN);
    w += x->pre_len - b - MARK_LEN;
    *w = '\0';
    x->final = out;
    x->final_len = (size_t)(w - out);
    return 0;
}

/* The type's pre-write hooks on `res`, about to be written as the next
 * version:
 * 0, 400 when a hook refused it, or 500 with *src set (store failure).
 * *changed says whether a hook amended res. */
static int run_prewrite(apply_ctx *c, opx *x, hub_store_tx *tx, json_t *res, bool *changed,
                        hub_status *src, hub_err *err) {
    *changed = false;
    if (c->r->nprewrites == 0) return 0;
    hub_record_op *op = x->op;
    /* The version about to be written, whichever meta res carries now (an
     * update is first encoded with the current one, to compare). */
    int64_t version = x->cur_version + 1;
    hub_record_pending pw = {op->kind, op->type, x->id, version, res, op->actor, 0};
    hub_status rc = hub__record_prewrite(c->r, tx, &pw, changed, err);
    if (rc == HUB_E_INVALID)
        return hub__op_fail(op, 400, "invalid", err->where[0] ? err->where : NULL, "%s",
                            err->msg);
    if (rc) {
        *src = rc;
        return 500;
    }
    return 0;
}

/* The prepared bytes and index rows again, after a hook amended
 * op->resource (the placeholders are still in its meta). */
static int prepare_again(apply_ctx *c, opx *x) {
    hub_free(x->pre);
    x->pre = NULL;
    int st = index_rows(c, x, x->op->resource);
    return st ? st : serialize_marked(x);
}

/* Serializes op->resource (late path) with its real id and meta. */
static int serialize_now(apply_ctx *c, opx *x, json_t *res, int64_t version,
                         const char *iso, hub_store_tx *tx, hub_status *src,
                         hub_err *err) {
    hub_record_op *op = x->op;
    if (json_object_set_new(res, "id", json_string(x->id)))
        return hub__op_fail(op, 500, "exception", NULL, "out of memory");
    int st = rewrite_refs(tx, c, x, res, 0, src, err);
    if (st) return st;
    char vbuf[24];
    snprintf(vbuf, sizeof vbuf, "%lld", (long long)version);
    st = set_meta(op, res, vbuf, iso);
    if (st) return st;
    bool amended;
    st = run_prewrite(c, x, tx, res, &amended, src, err);
    if (st) return st;
    int ist = index_rows(c, x, res);
    if (ist) return ist;
    x->final = hub_json_dumps(res, JSON_COMPACT);
    if (x->final == NULL) return hub__op_fail(op, 500, "exception", NULL, "cannot encode");
    x->final_len = strlen(x->final);
    return 0;
}

/* PATCH on the writer: the stored version, patched, checked, encoded. */
static int do_patch(apply_ctx *c, opx *x, int64_t version, const char *iso,
                    hub_store_tx *tx, json_t **patched, hub_status *src,
                    hub_err *err) {
    hub_record_op *op = x->op;
    hub_store_version cur;
    *src = hub_store_res_current(tx, op->type, x->id, true, &cur, err);
    if (*src) return 500;
    json_error_t je;
    json_t *doc = json_loadb(cur.json, cur.json_len, 0, &je);
    if (doc == NULL) {
        *src = hub_err_set(err, HUB_E_STORE, "record", "stored JSON unreadable");
        return 500;
    }
    if (op->outcome == NULL) op->outcome = hub_oo_new();
    hub_status prc = hub_json_patch(doc, op->patch, op->outcome);
    if (prc) {
        json_decref(doc);
        op->status = prc == HUB_E_PARSE ? 400 : 422;
        return op->status;
    }
    const char *rt = json_string_value(json_object_get(doc, "resourceType"));
    const char *id = json_string_value(json_object_get(doc, "id"));
    if (rt == NULL || strcmp(rt, op->type) != 0 || id == NULL || strcmp(id, x->id) != 0) {
        json_decref(doc);
        return hub__op_fail(op, 422, "processing", NULL,
                            "the patch may not change resourceType or id");
    }
    int st = validate(c, op, doc, 422);
    if (st) {
        json_decref(doc);
        return st;
    }
    *patched = doc;
    return serialize_now(c, x, doc, version, iso, tx, src, err);
}

/* Whether `key` of a stored resource is another form of element `k` of
 * `type` that the body `body` does not carry: `_k` or `k` (the
 * primitive's value and its extensions go together) or, for a choice
 * element (deceasedBoolean), another choice (deceasedDateTime). */
static bool other_form(const apply_ctx *c, const json_t *body, const char *type,
                       const char *k, const hub_fhir_elem *el, const char *key) {
    if (json_object_get(body, key)) return false;
    const char *base = k[0] == '_' ? k + 1 : k;
    const char *kb = key[0] == '_' ? key + 1 : key;
    if (strcmp(kb, base) == 0) return true;
    const char *ty;
    return el && el->choice && hub_fhir_child(c->r->defs, type, kb, &ty) == el;
}

static const hub_fhir_elem *elem_of(const apply_ctx *c, const char *type, const char *k) {
    const char *ty;
    return c->r->defs ? hub_fhir_child(c->r->defs, type, k[0] == '_' ? k + 1 : k, &ty) : NULL;
}

/* Removes from `doc` the other forms of element `k` (other_form). */
static void drop_forms(const apply_ctx *c, json_t *doc, const json_t *body,
                       const char *type, const char *k) {
    const hub_fhir_elem *el = elem_of(c, type, k);
    const char *key;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(doc, tmp, key, v) {
        if (other_form(c, body, type, k, el, key)) json_object_del(doc, key);
    }
}

/* Whether `doc` has another form of `k` that drop_forms would remove. */
static bool has_forms(const apply_ctx *c, const json_t *doc, const json_t *body,
                      const char *type, const char *k) {
    const hub_fhir_elem *el = elem_of(c, type, k);
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)doc, key, v) {
        if (other_form(c, body, type, k, el, key)) return true;
    }
    return false;
}

static bool merge_skips(const char *k) {
    return strcmp(k, "resourceType") == 0 || strcmp(k, "id") == 0 || strcmp(k, "meta") == 0;
}

/* Whether merging the body into the stored `doc` would change it: a
 * resent message, or the same practitioner in another message, changes
 * nothing, and telling so needs no copy of the stored resource. */
static bool merge_changes(const apply_ctx *c, const json_t *doc, const hub_record_op *op) {
    const char *k;
    json_t *v;
    json_object_foreach(op->resource, k, v) {
        if (merge_skips(k)) continue;
        if (!json_equal(json_object_get(doc, k), v) ||
            has_forms(c, doc, op->resource, op->type, k))
            return true;
    }
    for (size_t i = 0; i < json_array_size(op->clear); i++) {
        const char *nm = json_string_value(json_array_get(op->clear, i));
        if (nm == NULL || json_object_get(op->resource, nm)) continue;
        if (has_forms(c, doc, op->resource, op->type, nm)) return true;
    }
    return false;
}

/* UPDATE with merge of an existing resource: the stored version with the
 * body's top-level elements overlaid and the `clear` names removed. */
static int merge_stored(hub_store_tx *tx, apply_ctx *c, opx *x, json_t **out,
                        bool *same, hub_status *src, hub_err *err) {
    hub_record_op *op = x->op;
    hub_store_version cur;
    *src = hub_store_res_current(tx, op->type, x->id, true, &cur, err);
    if (*src) return 500;
    /* A resend's stored resource was parsed the last time it came. */
    json_t *kept = hub__stored_get(c->r->stored, op->type, x->id, cur.json, cur.json_len);
    if (kept && !merge_changes(c, kept, op)) {
        json_decref(kept);
        *out = NULL;
        *same = true;
        return 0;
    }
    json_error_t je;
    json_t *doc = kept ? json_deep_copy(kept) : json_loadb(cur.json, cur.json_len, 0, &je);
    json_decref(kept);
    if (doc == NULL) {
        *src = hub_err_set(err, HUB_E_STORE, "record", "stored JSON unreadable");
        return 500;
    }
    *out = doc;
    *same = !merge_changes(c, doc, op);
    if (*same) {
        hub__stored_put(c->r->stored, op->type, x->id, cur.json, cur.json_len, doc);
        return 0;
    }
    const char *k;
    json_t *v;
    json_object_foreach(op->resource, k, v) {
        if (merge_skips(k)) continue;
        drop_forms(c, doc, op->resource, op->type, k);
        if (json_object_set(doc, k, v))
            return hub__op_fail(op, 500, "exception", NULL, "out of memory");
    }
    for (size_t i = 0; i < json_array_size(op->clear); i++) {
        const char *nm = json_string_value(json_array_get(op->clear, i));
        if (nm == NULL || json_object_get(op->resource, nm)) continue;
        drop_forms(c, doc, op->resource, op->type, nm);
    }
    return 0;
}

/* An update that changes nothing: no new version, the current one
 * answers (200), and no listener hears of it. */
static int unchanged(hub_store_tx *tx, opx *x, hub_status *src, hub_err *err) {
    hub_record_op *op = x->op;
    hub_status rc = res_from_store(tx, op, x->id, 0, err);
    if (rc) {
        *src = rc;
        return 500;
    }
    op->status = 200;
    op->created = false;
    return 0;
}

/* Whether x->final (encoded with the current version's meta) is the
 * stored current version byte for byte. */
static hub_status same_as_stored(hub_store_tx *tx, opx *x, bool *same, hub_err *err) {
    hub_store_version cur;
    hub_status rc = hub_store_res_current(tx, x->op->type, x->id, true, &cur, err);
    if (rc) return rc;
    *same = cur.version == x->cur_version && cur.json && cur.json_len == x->final_len &&
            memcmp(cur.json, x->final, x->final_len) == 0;
    return HUB_OK;
}

/* The JSON of an update of a live resource: first with the current
 * version's meta, to tell a resend of the same content (a repeated A08,
 * a corrected ORU that corrects nothing) from a change; when it changed,
 * again with the new version's. *same: nothing to write. */
static int encode_update(apply_ctx *c, opx *x, json_t *res, int64_t version, const char *iso,
                         hub_store_tx *tx, bool *same, hub_status *src, hub_err *err) {
    hub_record_op *op = x->op;
    char cur_iso[32], vbuf[24];
    hub_time_iso(x->cur_lu, cur_iso);
    /* The hooks amend what is compared (the late path runs them in
     * serialize_now): an update the patient index would only give back
     * its link is no change. */
    int st = 0;
    if (!x->late) {
        bool amended = false;
        st = run_prewrite(c, x, tx, res, &amended, src, err);
        if (st == 0 && amended) st = prepare_again(c, x);
        if (st) return st;
    }
    st = x->late ? serialize_now(c, x, res, x->cur_version, cur_iso, tx, src, err)
                 : splice(x, x->cur_version, cur_iso);
    if (st) return st;
    *src = same_as_stored(tx, x, same, err);
    if (*src) return 500;
    if (*same) return 0;
    hub_free(x->final);
    x->final = NULL;
    if (!x->late) return splice(x, version, iso);
    snprintf(vbuf, sizeof vbuf, "%lld", (long long)version);
    st = set_meta(op, res, vbuf, iso);
    if (st) return st;
    x->final = hub_json_dumps(res, JSON_COMPACT);
    if (x->final == NULL) return hub__op_fail(op, 500, "exception", NULL, "cannot encode");
    x->final_len = strlen(x->final);
    return 0;
}

/* Phase 2: writes one version. Returns 0, a failing status (op says why),
 * or 500 with *src set for a store failure. */
static int write_op(hub_store_tx *tx, apply_ctx *c, opx *x, int64_t now, const char *iso,
                    hub_status *src, hub_err *err) {
    hub_record_op *op = x->op;
    int64_t version = x->cur_version + 1;
    int st = 0;
    json_t *patched = NULL;
    hub_store_version v = {op->type, x->id, version, now, false, NULL, 0, 0};
    if (op->kind == HUB_OP_DELETE) {
        v.deleted = true;
    } else if (op->kind == HUB_OP_PATCH) {
        st = do_patch(c, x, version, iso, tx, &patched, src, err);
    } else if (x->late && op->merge && x->exists && !x->deleted) {
        bool same = false;
        /* References resolved first, so that a resend of a resource that
         * refers to others compares equal to what is stored without being
         * encoded (and hooked and indexed) to find that out: 1.0-1.1k such
         * entries per 300 ORU or ADT messages, 153k instructions each. */
        st = rewrite_refs(tx, c, x, op->resource, 0, src, err);
        if (st == 0) st = merge_stored(tx, c, x, &patched, &same, src, err);
        /* Nothing changed (a resent message, the same practitioner in
         * another message): no new version; the current one answers. A
         * change to the body may still encode to the stored bytes (what
         * the pre-write hooks put back): encode_update tells. */
        if (st == 0 && !same) st = encode_update(c, x, patched, version, iso, tx, &same, src, err);
        if (st == 0 && same) {
            json_decref(patched);
            return unchanged(tx, x, src, err);
        }
    } else if (op->kind == HUB_OP_UPDATE && x->exists && !x->deleted) {
        bool same = false;
        st = encode_update(c, x, op->resource, version, iso, tx, &same, src, err);
        if (st == 0 && same) return unchanged(tx, x, src, err);
    } else if (x->late) {
        st = serialize_now(c, x, op->resource, version, iso, tx, src, err);
    } else {
        bool amended = false;
        st = run_prewrite(c, x, tx, op->resource, &amended, src, err);
        if (st == 0 && amended) st = prepare_again(c, x);
        if (st == 0) st = splice(x, version, iso);
    }
    if (st) {
        json_decref(patched);
        return st;
    }
    v.json = x->final;
    v.json_len = x->final_len;
    hub_status rc = hub_store_res_put(tx, &v, x->toks, v.deleted ? 0 : x->ntoks, err);
    if (rc == HUB_E_CONFLICT) {
        json_decref(patched);
        return hub__op_fail(op, 409, "conflict", NULL,
                            "that version of the %s was written concurrently",
                            op->type);
    }
    if (rc) {
        json_decref(patched);
        *src = rc;
        return 500;
    }
    /* The index rows borrow strings of `patched` (PATCH, merge): it lives
     * until the listeners have seen them. */
    if (c->r->nlisteners > 0) {
        hub_record_change ch = {
            .kind = op->kind,
            .type = op->type,
            .id = x->id,
            .version = version,
            .last_updated_ms = now,
            .created = !v.deleted && (!x->exists || x->deleted),
            .deleted = v.deleted,
            .json = v.deleted ? NULL : x->final,
            .json_len = v.deleted ? 0 : x->final_len,
            .toks = v.deleted ? NULL : x->toks,
            .ntoks = v.deleted ? 0 : x->ntoks,
            .actor = op->actor,
            .depth = 0,
        };
        rc = hub__record_notify(c->r, tx, &ch, err);
        if (rc == HUB_E_INVALID) { /* a listener refused the resource */
            json_decref(patched);
            return hub__op_fail(op, 400, "invalid", err->where[0] ? err->where : NULL, "%s",
                                err->msg);
        }
        if (rc) {
            json_decref(patched);
            *src = rc;
            return 500;
        }
    }
    json_decref(patched);
    hub_resource_release(&op->res);
    snprintf(op->res.type, sizeof op->res.type, "%s", op->type);
    snprintf(op->res.id, sizeof op->res.id, "%s", x->id);
    op->res.version = version;
    op->res.last_updated_ms = now;
    op->res.deleted = v.deleted;
    if (!v.deleted) {
        op->res.json = x->final; /* handed over: the caller releases it */
        op->res.json_len = x->final_len;
        x->final = NULL;
    }
    switch (op->kind) {
    case HUB_OP_CREATE:
        op->status = 201;
        op->created = true;
        break;
    case HUB_OP_UPDATE:
        op->created = !x->exists || x->deleted;
        op->status = op->created ? 201 : 200;
        break;
    case HUB_OP_PATCH:
        op->status = 200;
        break;
    case HUB_OP_DELETE:
        op->status = 204;
        break;
    default:
        break;
    }
    return 0;
}

static int do_read(hub_store_tx *tx, opx *x, hub_status *src, hub_err *err) {
    hub_record_op *op = x->op;
    hub_status rc = res_from_store(tx, op, x->id, op->version, err);
    if (rc == HUB_E_NOTFOUND)
        return hub__op_fail(op, 404, "not-found", NULL,
                            op->version > 0 ? "no such version of that %s"
                                            : "no %s with that id",
                            op->type);
    if (rc) {
        *src = rc;
        return 500;
    }
    if (op->res.deleted) {
        /* A version read of a delete marker, or a read of a deleted
         * resource: 410, res says which version. */
        return hub__op_fail(op, 410, "deleted", NULL, "that %s is deleted", op->type);
    }
    op->status = 200;
    return 0;
}

static bool failed(const hub_record_op *op) { return op->status >= 400; }

static hub_status job_run(hub_store_tx *tx, hub_store_job *j, hub_err *err) {
    rec_job *rj = (rec_job *)j;
    apply_ctx *c = rj->ctx;
    hub_status src = HUB_OK;
    rj->failed = -1;
    /* One time for the job's versions, formatted once. */
    int64_t now = hub_now_ms();
    char iso[32];
    hub_time_iso(now, iso);

    /* Phase 1: targets, existence, preconditions. */
    for (size_t k = 0; k < rj->nidx; k++) {
        opx *x = &c->x[rj->idx[k]];
        if (x->done || failed(x->op)) continue;
        src = resolve(tx, c, x, err);
        if (src) return src;
        if (failed(x->op)) {
            rj->failed = (int)k;
            return hub_err_set(err, HUB_E_CONFLICT, "record", "operation failed");
        }
    }
    /* One transaction may change a resource once. */
    if (c->atomic) {
        for (size_t a = 0; a < rj->nidx; a++) {
            opx *xa = &c->x[rj->idx[a]];
            if (!xa->write) continue;
            for (size_t b = a + 1; b < rj->nidx; b++) {
                opx *xb = &c->x[rj->idx[b]];
                if (xb->write && strcmp(xa->op->type, xb->op->type) == 0 &&
                    strcmp(xa->id, xb->id) == 0) {
                    hub__op_fail(xb->op, 400, "invalid", NULL,
                                 "two entries of the transaction change the same %s",
                                 xb->op->type);
                    rj->failed = (int)b;
                    return hub_err_set(err, HUB_E_CONFLICT, "record", "operation failed");
                }
            }
        }
    }
    /* Phase 2: writes; then the reads, which see them. */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t k = 0; k < rj->nidx; k++) {
            opx *x = &c->x[rj->idx[k]];
            if (x->done || failed(x->op)) continue;
            int st;
            if (pass == 0 && x->write)
                st = write_op(tx, c, x, now, iso, &src, err);
            else if (pass == 1 && x->op->kind == HUB_OP_READ)
                st = do_read(tx, x, &src, err);
            else
                continue;
            if (src) return src;
            if (st) {
                rj->failed = (int)k;
                return hub_err_set(err, HUB_E_CONFLICT, "record", "operation failed");
            }
        }
    }
    return HUB_OK;
}

static void job_done(hub_store_job *j, hub_status rc, const hub_err *err) {
    rec_job *rj = (rec_job *)j;
    apply_ctx *c = rj->ctx;
    pthread_mutex_lock(&c->mu);
    /* An operation's own failure is in its status; anything else is the
     * store's. */
    if (rc && rj->failed < 0 && c->store_rc == HUB_OK) {
        c->store_rc = rc;
        if (err) c->store_err = *err;
    }
    if (rc && rj->failed < 0) rj->failed = -2;
    c->pending--;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* The transaction's processing order: DELETE, POST, PUT/PATCH, GET. */
static int rank(hub_op_kind k) {
    switch (k) {
    case HUB_OP_DELETE: return 0;
    case HUB_OP_CREATE: return 1;
    case HUB_OP_UPDATE:
    case HUB_OP_PATCH: return 2;
    default: return 3;
    }
}

static hub_status status_code(int http) {
    switch (http) {
    case 404:
    case 410: return HUB_E_NOTFOUND;
    case 409:
    case 412: return HUB_E_CONFLICT;
    case 500: return HUB_E_STORE;
    default: return HUB_E_INVALID;
    }
}

/* After the commit, on the caller's thread: the caller's resource gets the
 * meta that was stored. */
static void finish_op(opx *x) {
    hub_record_op *op = x->op;
    /* Only what was written: a conditional create that found a match
     * leaves the caller's resource alone. */
    if (op->res.version > 0 && !op->res.deleted && op->resource &&
        ((op->kind == HUB_OP_CREATE && op->status == 201) ||
         (op->kind == HUB_OP_UPDATE && op->status < 300))) {
        char vbuf[24], iso[32];
        snprintf(vbuf, sizeof vbuf, "%lld", (long long)op->res.version);
        hub_time_iso(op->res.last_updated_ms, iso);
        json_t *meta = json_object_get(op->resource, "meta");
        if (json_is_object(meta)) {
            json_object_set_new(meta, "versionId", json_string(vbuf));
            json_object_set_new(meta, "lastUpdated", json_string(iso));
        }
        json_object_set_new(op->resource, "id", json_string(op->res.id));
    }
}

hub_status hub_record_apply(hub_record *r, hub_record_op *ops, size_t n,
                            bool atomic, hub_err *err) {
    return hub__record_apply(r, ops, n, atomic, false, err);
}

hub_status hub__record_apply(hub_record *r, hub_record_op *ops, size_t n,
                             bool atomic, bool bundle, hub_err *err) {
    if (n == 0) return HUB_OK;
    apply_ctx c;
    memset(&c, 0, sizeof c);
    c.r = r;
    c.n = n;
    c.atomic = atomic;
    c.urn_refs_local = atomic && bundle;
    hub_arena_init(&c.arena, 4096);
    pthread_mutex_init(&c.mu, NULL);
    pthread_cond_init(&c.cv, NULL);
    c.x = hub_calloc(n, sizeof *c.x);
    size_t *order = hub_calloc(n, sizeof *order);
    size_t njobs = atomic ? 1 : n;
    rec_job *jobs = hub_calloc(njobs, sizeof *jobs);
    hub_status rc = HUB_OK;
    if (c.x == NULL || order == NULL || jobs == NULL) {
        rc = hub_err_set(err, HUB_E_NOMEM, "record", "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        c.x[i].op = &ops[i];
        ops[i].outcome = NULL;
    }
    /* Preparation on this thread. */
    int failed_at = -1;
    for (size_t i = 0; i < n; i++) {
        if (prep(&c, &c.x[i]) && atomic) {
            failed_at = (int)i;
            break;
        }
    }
    if (failed_at >= 0) {
        rc = hub_err_set(err, status_code(ops[failed_at].status), "record",
                         "operation %d of the transaction failed", failed_at);
        goto out;
    }
    /* Stable order by rank (insertion sort keeps equal ranks in order). */
    for (size_t i = 0; i < n; i++) order[i] = i;
    if (atomic) {
        for (size_t i = 1; i < n; i++) {
            size_t v = order[i], k = i;
            while (k > 0 && rank(ops[order[k - 1]].kind) > rank(ops[v].kind)) {
                order[k] = order[k - 1];
                k--;
            }
            order[k] = v;
        }
    }
    size_t submitted = 0;
    for (size_t k = 0; k < njobs; k++) {
        rec_job *rj = &jobs[k];
        rj->ctx = &c;
        rj->job.run = job_run;
        rj->job.done = job_done;
        rj->failed = -1;
        if (atomic) {
            rj->idx = order;
            rj->nidx = n;
        } else {
            if (c.x[k].done || failed(&ops[k])) continue;
            rj->idx = &order[k];
            rj->nidx = 1;
        }
        pthread_mutex_lock(&c.mu);
        c.pending++;
        pthread_mutex_unlock(&c.mu);
        hub_status s = hub_store_submit(r->store, &rj->job, err);
        if (s) {
            pthread_mutex_lock(&c.mu);
            c.pending--;
            if (!c.store_rc) {
                c.store_rc = s;
                if (err) c.store_err = *err;
            }
            pthread_mutex_unlock(&c.mu);
            rj->failed = -2;
            break;
        }
        submitted++;
    }
    pthread_mutex_lock(&c.mu);
    while (c.pending > 0) pthread_cond_wait(&c.cv, &c.mu);
    pthread_mutex_unlock(&c.mu);
    (void)submitted;

    if (atomic && (jobs[0].failed != -1 || c.store_rc)) {
        /* Rolled back: nothing of it stands. */
        for (size_t i = 0; i < n; i++) hub_resource_release(&ops[i].res);
        if (c.store_rc) {
            if (err) *err = c.store_err;
            rc = c.store_rc;
        } else {
            hub_record_op *fop = &ops[order[jobs[0].failed]];
            rc = hub_err_set(err, status_code(fop->status), "record",
                             "operation %d of the transaction failed",
                             (int)order[jobs[0].failed]);
        }
        goto out;
    }
    if (!atomic) {
        for (size_t k = 0; k < n; k++) {
            if (jobs[k].failed == -2) {
                hub_resource_release(&ops[k].res);
                hub__op_fail(&ops[k], 500, "exception", NULL, "the store failed");
            } else if (jobs[k].failed >= 0) {
                hub_resource_release(&ops[k].res); /* rolled back */
            }
        }
        if (c.store_rc) {
            if (err) *err = c.store_err;
            rc = c.store_rc;
            goto out;
        }
    }
    for (size_t i = 0; i < n; i++) finish_op(&c.x[i]);
out:
    if (c.x)
        for (size_t i = 0; i < n; i++) {
            hub_free(c.x[i].pre);
            hub_free(c.x[i].final);
        }
    hub_free(c.x);
    hub_free(order);
    hub_free(jobs);
    hub_arena_release(&c.arena);
    pthread_mutex_destroy(&c.mu);
    pthread_cond_destroy(&c.cv);
    return rc;
}

/* ---- applying inside another writer job ------------------------------------ */

struct hub_record_txn {
    apply_ctx c;
    size_t *order;
    rec_job rj;
    hub_record_op *ops;
    size_t n;
    bool ran, ok;
    void *owner;                /* the Bundle's parsed entries */
    void (*owner_free)(void *);
};

hub_status hub__txn_prepare(hub_record *r, hub_record_op *ops, size_t n,
                            void *owner, void (*owner_free)(void *),
                            hub_record_txn **out, int *failed_at, hub_err *err) {
    *failed_at = -1;
    hub_record_txn *t = hub_calloc(1, sizeof *t);
    if (t == NULL) {
        owner_free(owner);
        return hub_err_set(err, HUB_E_NOMEM, "record", "out of memory");
    }
    t->owner = owner;
    t->owner_free = owner_free;
    t->ops = ops;
    t->n = n;
    apply_ctx *c = &t->c;
    c->r = r;
    c->n = n;
    c->atomic = true;
    hub_arena_init(&c->arena, 4096);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    c->x = hub_calloc(n ? n : 1, sizeof *c->x);
    t->order = hub_calloc(n ? n : 1, sizeof *t->order);
    if (c->x == NULL || t->order == NULL) {
        hub_record_txn_free(t);
        return hub_err_set(err, HUB_E_NOMEM, "record", "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        c->x[i].op = &ops[i];
        ops[i].outcome = NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (prep(c, &c->x[i])) {
            *failed_at = (int)i;
            *out = t;
            return hub_err_set(err, status_code(ops[i].status), "record",
                               "operation %zu of the transaction failed", i);
        }
    }
    for (size_t i = 0; i < n; i++) t->order[i] = i;
    for (size_t i = 1; i < n; i++) {
        size_t v = t->order[i], k = i;
        while (k > 0 && rank(ops[t->order[k - 1]].kind) > rank(ops[v].kind)) {
            t->order[k] = t->order[k - 1];
            k--;
        }
        t->order[k] = v;
    }
    t->rj.ctx = c;
    t->rj.idx = t->order;
    t->rj.nidx = n;
    t->rj.failed = -1;
    *out = t;
    return HUB_OK;
}

hub_record_op *hub__txn_ops(hub_record_txn *t, size_t *n) {
    *n = t->n;
    return t->ops;
}

hub_status hub_record_bundle_tx(hub_record_txn *t, hub_store_tx *tx,
                                hub_oo **outcome, hub_err *err) {
    if (outcome) *outcome = NULL;
    if (t->ran) return hub_err_set(err, HUB_E_STATE, "record", "transaction applied already");
    t->ran = true;
    hub_status rc = job_run(tx, &t->rj.job, err);
    if (rc == HUB_OK) {
        t->ok = true;
        return HUB_OK;
    }
    if (t->rj.failed < 0) return rc; /* the store's failure */
    size_t i = t->order[t->rj.failed];
    hub_record_op *op = &t->ops[i];
    if (outcome) {
        *outcome = op->outcome;
        op->outcome = NULL;
    }
    return hub_err_set(err, status_code(op->status), "record",
                       "entry %zu of the mapped Bundle failed (%d)", i, op->status);
}

void hub_record_txn_set_actor(hub_record_txn *t, const hub_actor *actor) {
    for (size_t i = 0; i < t->n; i++) t->ops[i].actor = actor;
}

/* ---- writes by listeners and modules ------------------------------------------ */

#define PUT_MAX_DEPTH 4

hub_status hub_record_put_tx(hub_record *r, hub_store_tx *tx, const char *type,
                             const char *id, json_t *res, bool deleted,
                             const hub_actor *actor, int depth, hub_resource *out,
                             hub_err *err) {
    if (depth > PUT_MAX_DEPTH)
        return hub_err_set(err, HUB_E_LIMIT, "record",
                           "changes feeding each other deeper than %d", PUT_MAX_DEPTH);
    if (!deleted && !json_is_object(res))
        return hub_err_set(err, HUB_E_ARG, "record", "no resource to write");
    char nid[72];
    if (id == NULL) {
        new_id(nid);
        id = nid;
    } else if (!hub__record_id_ok(id)) {
        return hub_err_set(err, HUB_E_ARG, "record", "not a valid id");
    }
    hub_store_version cur;
    int64_t version = 1;
    bool existed = false, was_deleted = false;
    hub_status rc = hub_store_res_current(tx, type, id, false, &cur, err);
    if (rc == HUB_OK) {
        version = cur.version + 1;
        existed = true;
        was_deleted = cur.deleted;
    } else if (rc != HUB_E_NOTFOUND) {
        return rc;
    }
    int64_t now = hub_now_ms();
    hub_arena a;
    hub_arena_init(&a, 4096);
    hub_store_token *toks = NULL;
    size_t ntoks = 0;
    char *text = NULL;
    hub_store_version v = {type, id, version, now, deleted, NULL, 0, 0};
    rc = HUB_OK;
    if (!deleted) {
        char vbuf[24], iso[32];
        snprintf(vbuf, sizeof vbuf, "%lld", (long long)version);
        hub_time_iso(now, iso);
        json_t *meta = json_object_get(res, "meta");
        if (!json_is_object(meta)) {
            meta = json_object();
            if (meta == NULL || json_object_set_new(res, "meta", meta)) rc = HUB_E_NOMEM;
        }
        if (!rc && (json_object_set_new(res, "id", json_string(id)) ||
                    json_object_set_new(meta, "versionId", json_string(vbuf)) ||
                    json_object_set_new(meta, "lastUpdated", json_string(iso))))
            rc = HUB_E_NOMEM;
        if (!rc && r->nprewrites > 0) {
            hub_record_pending pw = {existed && !was_deleted ? HUB_OP_UPDATE : HUB_OP_CREATE,
                                     type, id, version, res, actor, depth + 1};
            bool amended;
            rc = hub__record_prewrite(r, tx, &pw, &amended, err);
            if (rc) {
                hub_arena_release(&a);
                return rc;
            }
        }
        if (!rc) rc = hub__record_extract_stored(r->defs, r->search, &a, type, res, &toks, &ntoks);
        if (!rc) {
            text = hub_json_dumps(res, JSON_COMPACT);
            if (text == NULL) rc = HUB_E_NOMEM;
        }
        if (rc) {
            hub_arena_release(&a);
            return hub_err_set(err, rc, "record", rc == HUB_E_LIMIT
                                                      ? "too many search index values"
                                                      : "out of memory");
        }
        v.json = text;
        v.json_len = strlen(text);
    }
    rc = hub_store_res_put(tx, &v, toks, deleted ? 0 : ntoks, err);
    if (!rc) {
        hub_record_change ch = {
            .kind = deleted ? HUB_OP_DELETE : existed ? HUB_OP_UPDATE : HUB_OP_CREATE,
            .type = type,
            .id = id,
            .version = version,
            .last_updated_ms = now,
            .created = !deleted && (!existed || was_deleted),
            .deleted = deleted,
            .json = text,
            .json_len = v.json_len,
            .toks = deleted ? NULL : toks,
            .ntoks = deleted ? 0 : ntoks,
            .actor = actor,
            .depth = depth + 1,
        };
        rc = hub__record_notify(r, tx, &ch, err);
    }
    hub_arena_release(&a);
    if (rc) {
        hub_free(text);
        return rc;
    }
    if (out) {
        memset(out, 0, sizeof *out);
        snprintf(out->type, sizeof out->type, "%s", type);
        snprintf(out->id, sizeof out->id, "%s", id);
        out->version = version;
        out->last_updated_ms = now;
        out->deleted = deleted;
        out->json = text;
        out->json_len = v.json_len;
    } else {
        hub_free(text);
    }
    return HUB_OK;
}

size_t hub_record_txn_count(const hub_record_txn *t) { return t && t->ok ? t->n : 0; }

void hub_record_txn_free(hub_record_txn *t) {
    if (t == NULL) return;
    apply_ctx *c = &t->c;
    for (size_t i = 0; c->x && i < t->n; i++) {
        hub_free(c->x[i].pre);
        hub_free(c->x[i].final);
    }
    hub_free(c->x);
    hub_free(t->order);
    hub_arena_release(&c->arena);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    if (t->owner_free) t->owner_free(t->owner);
    hub_free(t);
}
