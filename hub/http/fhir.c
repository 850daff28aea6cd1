/* The FHIR R4 REST API under /fhir: routing of the interactions to the
 * record, content negotiation (JSON and XML), the version headers, and
 * OperationOutcome for every error.
 *
 * The read path is the hot one: a read by id sends the compact JSON the
 * record stored, as it is, from the record's own heap buffer (the response
 * frees it); nothing is parsed or re-encoded unless the client asked for XML
 * or _pretty. */
#include "hub/http.h"
#include "hub/auth.h"
#include "hub/fhir.h"
#include "hub/record.h"
#include "internal.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define BASE_PATH "/fhir"
#define CT_JSON "application/fhir+json;charset=utf-8"
#define CT_XML "application/fhir+xml;charset=utf-8"
#define HISTORY_DEFAULT_COUNT 50
#define HISTORY_MAX_COUNT 1000
#define MAX_OPS 32

struct hub_http_fhir {
    hub_record *rec;
    const hub_fhir_defs *defs;
    char base[256];
    int max_bundle_entries;
    hub_auth *auth;
    bool enforce;
    hub_audit *audit;
    int max_search_params, max_includes, max_count;
    /* The CapabilityStatement and its compact JSON, built on the first
     * /metadata (building it walks every type's definitions and search
     * parameters: tens of ms that start-up need not wait for). */
    pthread_mutex_t cap_mu;
    json_t *cap;
    char *cap_text;
    size_t cap_len;
    struct {
        char type[64]; /* "" any */
        char name[64];
        char definition[200];
        unsigned levels;
        bool affects_state;
        hub_fhir_op_fn fn;
        void *ud;
    } ops[MAX_OPS];
    int nops;
};

/* ---- what the server does: one table ------------------------------------
 *
 * The dispatcher maps each request to an interaction code and refuses (405)
 * any code missing here; the CapabilityStatement lists exactly these. */
typedef enum { LVL_TYPE, LVL_SYSTEM } level;
static const struct {
    const char *code;
    level lvl;
} INTERACTIONS[] = {
    {"read", LVL_TYPE},           {"vread", LVL_TYPE},
    {"update", LVL_TYPE},         {"patch", LVL_TYPE},
    {"delete", LVL_TYPE},         {"history-instance", LVL_TYPE},
    {"history-type", LVL_TYPE},   {"create", LVL_TYPE},
    {"search-type", LVL_TYPE},
    {"transaction", LVL_SYSTEM},  {"batch", LVL_SYSTEM},
    {"history-system", LVL_SYSTEM}, {"search-system", LVL_SYSTEM},
};
#define N_INTERACTIONS (sizeof INTERACTIONS / sizeof INTERACTIONS[0])

static bool supported(const char *code) {
    for (size_t i = 0; i < N_INTERACTIONS; i++)
        if (strcmp(INTERACTIONS[i].code, code) == 0) return true;
    return false;
}

static const char *const FORMATS[] = {"json", "xml", "application/fhir+json",
                                      "application/fhir+xml"};
static const char *const PATCH_FORMATS[] = {"application/json-patch+json"};

/* ---- a request in flight -------------------------------------------------- */

typedef enum { FMT_JSON, FMT_XML } fmt;

typedef struct {
    hub_http_fhir *f;
    const hub_http_req *req;
    hub_http_resp *resp;
    fmt out;      /* the response's format */
    bool pretty;
    char base[300]; /* absolute base URL of this request */
    /* security: the request's verified token (NULL when not enforced),
     * who it is (writes carry it to the record and its audit listener),
     * and what the audit trail records of it */
    const hub_auth_token *tok;
    hub_actor actor;
    bool filter_types; /* search: drop entries of types the token may not read */
    int a_kind;        /* hub_audit_kind, -1 none */
    char a_type[64], a_id[72], a_query[200];
} ctx;

/* ---- small helpers -------------------------------------------------------- */

/* src into dst[cap], cut to fit: the audit names of every request, without
 * printf. */
static void copy_cut(char *dst, size_t cap, const char *src) {
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* ---- responses ------------------------------------------------------------ */

static void resp_header(ctx *c, const char *name, const char *fmtstr, ...)
    __attribute__((format(printf, 3, 4)));
static void resp_header(ctx *c, const char *name, const char *fmtstr, ...) {
    char v[256];
    va_list ap;
    va_start(ap, fmtstr);
    vsnprintf(v, sizeof v, fmtstr, ap);
    va_end(ap);
    hub_http_resp_header(c->resp, name, v);
}

static void set_body(ctx *c, int status, const char *ctype, char *p, size_t n) {
    /* `p` is taken: the response frees it with hub_free. */
    hub_buf_release(&c->resp->body);
    c->resp->status = status;
    snprintf(c->resp->content_type, sizeof c->resp->content_type, "%s", ctype);
    c->resp->body.p = p;
    c->resp->body.n = n;
    c->resp->body.cap = n;
}

static void send_internal(ctx *c) {
    static const char oo[] =
        "{\"resourceType\":\"OperationOutcome\",\"issue\":[{\"severity\":"
        "\"error\",\"code\":\"exception\",\"diagnostics\":\"internal error\"}]}";
    hub_http_resp_set(c->resp, 500, CT_JSON, oo, sizeof oo - 1);
}

static void send_issue(ctx *c, int status, const char *code, const char *expr,
                       const char *fmtstr, ...)
    __attribute__((format(printf, 5, 6)));

/* Encodes `v` in the response's format. */
static void send_json(ctx *c, int status, const json_t *v) {
    if (c->out == FMT_XML) {
        hub_buf b;
        hub_buf_init(&b);
        hub_err err;
        if (hub_fhir_json_to_xml(c->f->defs, v, c->pretty, &b, &err) == HUB_OK) {
            set_body(c, status, CT_XML, b.p, b.n);
            return;
        }
        hub_buf_release(&b);
        /* A stored resource the XML form cannot carry (a narrative that is
         * not one XHTML div): not acceptable in XML, fine in JSON. */
        HUB_LOG_WARN("fhir", "xml encode failed err='%s'", err.msg);
        c->out = FMT_JSON;
        c->pretty = false;
        send_issue(c, 406, "not-supported", NULL,
                   "this resource cannot be represented in XML; ask for JSON");
        return;
    }
    hub_buf b;
    hub_buf_init(&b);
    if (hub_json_dump_buf(v, c->pretty ? JSON_INDENT(2) : JSON_COMPACT, &b) !=
            HUB_OK ||
        (c->pretty && hub_buf_append(&b, "\n", 1) != HUB_OK)) {
        hub_buf_release(&b);
        send_internal(c);
        return;
    }
    set_body(c, status, CT_JSON, b.p, b.n);
}

static void send_oo(ctx *c, int status, const hub_oo *oo) {
    json_t *j = hub_oo_json(oo);
    if (j == NULL) {
        send_internal(c);
        return;
    }
    send_json(c, status, j);
    json_decref(j);
}

static void send_issue(ctx *c, int status, const char *code, const char *expr,
                       const char *fmtstr, ...) {
    char msg[200];
    va_list ap;
    va_start(ap, fmtstr);
    vsnprintf(msg, sizeof msg, fmtstr, ap);
    va_end(ap);
    hub_oo *oo = hub_oo_new();
    if (oo == NULL) {
        send_internal(c);
        return;
    }
    hub_oo_add(oo, HUB_OO_ERROR, code, expr, "%s", msg);
    send_oo(c, status, oo);
    hub_oo_free(oo);
}

static void send_405(ctx *c, const char *allow, const char *what) {
    send_issue(c, 405, "not-supported", NULL, "%s is not supported", what);
    if (allow) hub_http_resp_header(c->resp, "Allow", allow);
}

/* A stored version: its bytes as they are for compact JSON, else parsed
 * and encoded in the asked format. Takes res->json. */
static void send_stored(ctx *c, int status, hub_resource *res) {
    if (c->out == FMT_JSON && !c->pretty) {
        set_body(c, status, CT_JSON, res->json, res->json_len);
        res->json = NULL;
        return;
    }
    hub_oo *oo = hub_oo_new();
    json_t *j = NULL;
    if (oo == NULL || hub_fhir_parse_json(res->json, res->json_len, &j, oo) != HUB_OK) {
        HUB_LOG_WARN("fhir", "stored version unreadable type=%s id=%s version=%" PRId64,
                     res->type, res->id, res->version);
        send_internal(c);
    } else {
        send_json(c, status, j);
    }
    json_decref(j);
    hub_oo_free(oo);
}

/* ETag and Last-Modified, on every read: no printf. */
static void version_headers(ctx *c, const hub_resource *res) {
    char etag[32], date[40];
    char digits[24];
    int nd = 0;
    uint64_t v = res->version > 0 ? (uint64_t)res->version : 0;
    do {
        digits[nd++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    size_t n = 0;
    etag[n++] = 'W';
    etag[n++] = '/';
    etag[n++] = '"';
    while (nd) etag[n++] = digits[--nd];
    etag[n++] = '"';
    etag[n] = '\0';
    hub_http_resp_header(c->resp, "ETag", etag);
    hub__fhir_http_date(res->last_updated_ms, date);
    hub_http_resp_header(c->resp, "Last-Modified", date);
}

/* ---- request parsing -------------------------------------------------------- */

/* The response format from _format, then Accept, then the request's own
 * body; false (and a 406 sent) when the client asked for none we have. */
static bool negotiate(ctx *c) {
    const char *f = hub_http_req_query(c->req, "_format");
    const char *pr = hub_http_req_query(c->req, "_pretty");
    c->pretty = pr && strcmp(pr, "true") == 0;
    if (f) {
        int k = hub__fhir_media_format(f, strlen(f));
        if (k < 0) {
            c->out = FMT_JSON;
            send_issue(c, 406, "not-supported", NULL,
                       "_format: only json and xml are supported");
            return false;
        }
        c->out = (fmt)k;
        return true;
    }
    const char *ct = hub_http_req_header(c->req, "Content-Type");
    int body = ct ? hub__fhir_media_format(ct, strlen(ct)) : -1;
    c->out = body == FMT_XML ? FMT_XML : FMT_JSON;
    const char *acc = hub_http_req_header(c->req, "Accept");
    int k = hub__fhir_accept(acc, c->out);
    if (k >= 0) {
        c->out = (fmt)k;
        return true;
    }
    send_issue(c, 406, "not-supported", NULL,
               "Accept: only application/fhir+json and application/fhir+xml "
               "are supported");
    return false;
}

/* The request body as a resource. false (and the answer sent: 413, 415,
 * 400) when there is none to take. */
static bool read_resource(ctx *c, json_t **out) {
    *out = NULL;
    hub_slice b = hub_http_req_body(c->req);
    if (b.n >= 3 && memcmp(b.p, "\xEF\xBB\xBF", 3) == 0) b.p += 3, b.n -= 3; /* a BOM */
    const char *ct = hub_http_req_header(c->req, "Content-Type");
    int k = ct ? hub__fhir_media_format(ct, strlen(ct)) : -1;
    if (k < 0) {
        send_issue(c, 415, "not-supported", NULL,
                   "Content-Type: send application/fhir+json or "
                   "application/fhir+xml");
        return false;
    }
    if (b.n == 0) {
        send_issue(c, 400, "structure", NULL, "the request has no body");
        return false;
    }
    hub_oo *oo = hub_oo_new();
    if (oo == NULL) {
        send_internal(c);
        return false;
    }
    hub_status rc = k == FMT_XML
                        ? hub_fhir_xml_to_json(c->f->defs, b.p, b.n, out, oo)
                        : hub_fhir_parse_json(b.p, b.n, out, oo);
    if (rc != HUB_OK || *out == NULL) {
        if (hub_oo_count(oo, HUB_OO_ERROR) == 0)
            hub_oo_add(oo, HUB_OO_ERROR, "structure", NULL,
                       "the body is not a FHIR resource");
        send_oo(c, 400, oo);
        hub_oo_free(oo);
        json_decref(*out);
        *out = NULL;
        return false;
    }
    hub_oo_free(oo);
    return true;
}

/* Prefer: return=... ; 0 representation (the default), 1 minimal, 2
 * OperationOutcome. */
static int prefer_return(ctx *c) {
    const char *p = hub_http_req_header(c->req, "Prefer");
    const char *r = p ? strstr(p, "return=") : NULL;
    if (r == NULL) return 0;
    r += 7;
    if (strncmp(r, "minimal", 7) == 0) return 1;
    if (strncmp(r, "OperationOutcome", 16) == 0) return 2;
    return 0;
}

/* The query string less the parameters that shape the response, for
 * conditional criteria; "" when nothing is left. In `out`. */
static void criteria_of(const ctx *c, char *out, size_t cap) {
    const char *q = hub_http_req_query_string(c->req);
    size_t n = 0;
    out[0] = '\0';
    while (*q) {
        const char *e = strchr(q, '&');
        size_t len = e ? (size_t)(e - q) : strlen(q);
        bool skip = len == 0 || strncmp(q, "_format=", 8) == 0 ||
                    strncmp(q, "_pretty=", 8) == 0 || strncmp(q, "_format", len) == 0;
        if (!skip && n + len + 2 < cap) {
            if (n) out[n++] = '&';
            memcpy(out + n, q, len);
            n += len;
            out[n] = '\0';
        }
        if (e == NULL) break;
        q = e + 1;
    }
}

/* The absolute base of this request, computed on first use (reads by id
 * never need it). */
static const char *base_of(ctx *c) {
    if (c->base[0]) return c->base;
    if (c->f->base[0]) {
        snprintf(c->base, sizeof c->base, "%s", c->f->base);
        return c->base;
    }
    const char *host = hub_http_req_header(c->req, "Host");
    bool ok = host && *host && strlen(host) < 200;
    for (const char *p = host; ok && *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr(".-:[]_", *p)) ok = false;
    if (!ok) {
        snprintf(c->base, sizeof c->base, "%s", BASE_PATH);
        return c->base;
    }
    snprintf(c->base, sizeof c->base, "%s://%s%s",
             hub_http_req_tls(c->req) ? "https" : "http", host, BASE_PATH);
    return c->base;
}

/* ---- writes ------------------------------------------------------------------ */

static int status_of(hub_status rc) {
    switch (rc) {
    case HUB_OK: return 200;
    case HUB_E_NOTFOUND: return 404;
    case HUB_E_INVALID: return 422;
    case HUB_E_PARSE: return 400;
    case HUB_E_CONFLICT: return 409;
    case HUB_E_DUP: return 412;
    case HUB_E_LIMIT: return 413;
    case HUB_E_UNSUPPORTED: return 405;
    default: return 500;
    }
}

static const char *issue_code_of(int status) {
    switch (status) {
    case 400: return "structure";
    case 404: return "not-found";
    case 405: return "not-supported";
    case 409: return "conflict";
    case 410: return "deleted";
    case 412: return "conflict";
    case 413: return "too-long";
    case 422: return "processing";
    default: return "exception";
    }
}

static const char *status_text(int status) {
    switch (status) {
    case 400: return "the request is malformed";
    case 404: return "no such resource";
    case 409: return "the resource was changed meanwhile";
    case 410: return "the resource was deleted";
    case 412: return "the version given does not match the current one";
    case 405: return "the interaction is not supported";
    case 413: return "the request is over a limit";
    case 422: return "the resource is not valid";
    default: return "the request failed";
    }
}

/* Answers a failed op: its outcome, or one issue naming the status. */
static void send_failure(ctx *c, int status, hub_oo *outcome) {
    if (outcome && hub_oo_count(outcome, HUB_OO_WARNING) > 0) {
        send_oo(c, status, outcome);
        return;
    }
    send_issue(c, status, issue_code_of(status), NULL, "%s", status_text(status));
}

static void location(ctx *c, const char *hdr, const hub_resource *res) {
    resp_header(c, hdr, "%s/%s/%s/_history/%" PRId64, base_of(c), res->type, res->id,
                res->version);
}

static void apply_one(ctx *c, hub_record_op *op) {
    hub_err err;
    hub_err_clear(&err);
    hub_status rc = hub_record_apply(c->f->rec, op, 1, true, &err);
    int status = op->status;
    if (status == 0) status = status_of(rc);
    if (status >= 500 || (rc != HUB_OK && status < 400)) {
        HUB_LOG_WARN("fhir", "write failed type=%s rc=%s where='%s' err='%s'",
                     op->type, hub_status_name(rc), err.where, err.msg);
        if (status < 500) status = 500;
        send_internal(c);
        return;
    }
    if (status >= 400) {
        send_failure(c, status, op->outcome);
        if (status == 410 && op->res.version > 0) version_headers(c, &op->res);
        return;
    }
    int want = prefer_return(c);
    bool has = op->res.version > 0 && op->res.type[0];
    if (has) {
        version_headers(c, &op->res);
        if (op->kind != HUB_OP_DELETE)
            location(c, status == 201 ? "Location" : "Content-Location", &op->res);
    }
    if (op->kind == HUB_OP_DELETE) {
        if (want == 2) {
            hub_oo *oo = op->outcome ? op->outcome : hub_oo_new();
            if (oo == NULL) {
                send_internal(c);
                return;
            }
            if (hub_oo_count(oo, HUB_OO_INFORMATION) == 0)
                hub_oo_add(oo, HUB_OO_INFORMATION, "informational", NULL,
                           "the resource was deleted");
            send_oo(c, 200, oo);
            if (oo != op->outcome) hub_oo_free(oo);
        } else {
            c->resp->status = 204;
        }
        return;
    }
    if (want == 1) {
        c->resp->status = status;
        return;
    }
    if (want == 2) {
        hub_oo *oo = op->outcome ? op->outcome : hub_oo_new();
        if (oo == NULL) {
            send_internal(c);
            return;
        }
        send_oo(c, status, oo); /* an empty one says "All OK" */
        if (oo != op->outcome) hub_oo_free(oo);
        return;
    }
    if (op->res.json) {
        send_stored(c, status, &op->res);
    } else if (op->resource) {
        send_json(c, status, op->resource);
    } else {
        c->resp->status = status;
    }
}

/* An update, patch or delete of type/id (or of the one resource criteria
 * selects), with the request's If-Match. */
static void apply_targeted(ctx *c, hub_op_kind kind, const char *type, const char *id,
                           const char *criteria, json_t *res, json_t *patch) {
    hub_record_op op = {.kind = kind,
                        .actor = &c->actor,
                        .type = type,
                        .id = id,
                        .criteria = criteria,
                        .resource = res,
                        .patch = patch,
                        .if_match = hub_http_req_header(c->req, "If-Match")};
    apply_one(c, &op);
    hub_record_op_release(&op);
}

/* The resource's resourceType must be the URL's type. */
static bool check_type(ctx *c, const json_t *res, const char *type) {
    const char *rt = json_string_value(json_object_get(res, "resourceType"));
    if (rt == NULL || strcmp(rt, type) != 0) {
        send_issue(c, 400, "invalid", "resourceType",
                   "resourceType does not match the type '%s' of the URL", type);
        return false;
    }
    return true;
}

static void do_create(ctx *c, const char *type) {
    json_t *res;
    if (!read_resource(c, &res)) return;
    if (!check_type(c, res, type)) {
        json_decref(res);
        return;
    }
    /* The server assigns the id of a created resource (the specification
     * lets it ignore one sent). */
    json_object_del(res, "id");
    hub_record_op op = {.kind = HUB_OP_CREATE, .actor = &c->actor, .type = type, .resource = res};
    const char *ine = hub_http_req_header(c->req, "If-None-Exist");
    if (ine && *ine) {
        if (*ine == '?') ine++;
        op.if_none_exist = ine;
    }
    apply_one(c, &op);
    hub_record_op_release(&op);
    json_decref(res);
}

static void do_update(ctx *c, const char *type, const char *id,
                      const char *criteria) {
    json_t *res;
    if (!read_resource(c, &res)) return;
    if (!check_type(c, res, type)) {
        json_decref(res);
        return;
    }
    json_t *jid = json_object_get(res, "id");
    if (id) {
        if (!json_is_string(jid) || strcmp(json_string_value(jid), id) != 0) {
            send_issue(c, 400, "invalid", "id",
                       jid ? "the id in the body does not match the id of the URL"
                           : "the body has no id (an update needs the URL's)");
            json_decref(res);
            return;
        }
    }
    apply_targeted(c, HUB_OP_UPDATE, type, id, criteria, res, NULL);
    json_decref(res);
}

static void do_patch(ctx *c, const char *type, const char *id,
                     const char *criteria) {
    const char *ct = hub_http_req_header(c->req, "Content-Type");
    size_t n = ct ? strcspn(ct, ";") : 0;
    while (n && isspace((unsigned char)ct[n - 1])) n--;
    if (ct == NULL || !hub__fhir_mime_is(ct, n, "application/json-patch+json")) {
        send_issue(c, 415, "not-supported", NULL,
                   "Content-Type: patch takes application/json-patch+json");
        return;
    }
    hub_slice b = hub_http_req_body(c->req);
    json_error_t jerr;
    json_t *patch = json_loadb(b.p, b.n, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_array(patch)) {
        if (patch)
            send_issue(c, 400, "structure", NULL, "a JSON Patch is an array of operations");
        else
            /* jansson's text quotes the input ("near '...'"): not sent. */
            send_issue(c, 400, "structure", NULL,
                       "JSON Patch is not valid JSON (line %d column %d)",
                       jerr.line, jerr.column);
        json_decref(patch);
        return;
    }
    apply_targeted(c, HUB_OP_PATCH, type, id, criteria, NULL, patch);
    json_decref(patch);
}

static void do_delete(ctx *c, const char *type, const char *id,
                      const char *criteria) {
    apply_targeted(c, HUB_OP_DELETE, type, id, criteria, NULL, NULL);
}

/* ---- reads -------------------------------------------------------------------- */

static void do_read(ctx *c, const char *type, const char *id, int64_t version) {
    hub_resource res;
    memset(&res, 0, sizeof res);
    hub_err err;
    hub_status rc = hub_record_read(c->f->rec, type, id, version, &res, &err);
    if (rc == HUB_E_NOTFOUND) {
        if (version)
            send_issue(c, 404, "not-found", NULL, "no version %" PRId64 " of %s/%s",
                       version, type, id);
        else
            send_issue(c, 404, "not-found", NULL, "no %s/%s", type, id);
        hub_resource_release(&res);
        return;
    }
    if (rc != HUB_OK) {
        HUB_LOG_WARN("fhir", "read failed type=%s rc=%s err='%s'", type,
                     hub_status_name(rc), err.msg);
        send_internal(c);
        hub_resource_release(&res);
        return;
    }
    if (res.deleted) {
        send_issue(c, 410, "deleted", NULL, "%s/%s was deleted", type, id);
        version_headers(c, &res);
        hub_resource_release(&res);
        return;
    }
    /* Conditional reads (not for a given version: it never changes). */
    const char *inm = version ? NULL : hub_http_req_header(c->req, "If-None-Match");
    const char *ims = version ? NULL : hub_http_req_header(c->req, "If-Modified-Since");
    bool not_modified = false;
    if (inm) {
        not_modified = strcmp(inm, "*") == 0 || hub__fhir_parse_etag(inm) == res.version;
    } else if (ims) {
        int64_t t = hub__fhir_parse_http_date(ims);
        not_modified = t >= 0 && res.last_updated_ms / 1000 * 1000 <= t;
    }
    version_headers(c, &res);
    if (not_modified) {
        c->resp->status = 304;
    } else {
        if (version) location(c, "Content-Location", &res);
        send_stored(c, 200, &res);
    }
    hub_resource_release(&res);
}

typedef struct {
    ctx *c;
    json_t *entries;
    bool failed;
} hist_acc;

static hub_status hist_entry(void *ud, const hub_resource *r) {
    hist_acc *h = ud;
    ctx *c = h->c;
    char url[448], lm[32], etag[40];
    snprintf(url, sizeof url, "%s/%s/%s", base_of(c), r->type, r->id);
    hub_time_iso(r->last_updated_ms, lm);
    snprintf(etag, sizeof etag, "W/\"%" PRId64 "\"", r->version);
    json_t *e = json_object();
    json_object_set_new(e, "fullUrl", json_string(url));
    if (!r->deleted && r->json) {
        json_t *res = NULL;
        hub_oo *oo = hub_oo_new();
        if (oo && hub_fhir_parse_json(r->json, r->json_len, &res, oo) == HUB_OK)
            json_object_set_new(e, "resource", res);
        else
            h->failed = true;
        hub_oo_free(oo);
    }
    char rurl[200];
    const char *method;
    if (r->deleted) {
        method = "DELETE";
        snprintf(rurl, sizeof rurl, "%s/%s", r->type, r->id);
    } else if (r->version == 1) {
        method = "POST";
        snprintf(rurl, sizeof rurl, "%s", r->type);
    } else {
        method = "PUT";
        snprintf(rurl, sizeof rurl, "%s/%s", r->type, r->id);
    }
    json_object_set_new(e, "request", json_pack("{s:s, s:s}", "method", method, "url", rurl));
    json_object_set_new(
        e, "response",
        json_pack("{s:s, s:s, s:s}", "status",
                  r->deleted ? "204 No Content" : r->version == 1 ? "201 Created" : "200 OK",
                  "etag", etag, "lastModified", lm));
    json_array_append_new(h->entries, e);
    return HUB_OK;
}

static void do_history(ctx *c, const char *type, const char *id) {
    hub_history_query q = {.type = type, .id = id, .count = HISTORY_DEFAULT_COUNT};
    const char *s = hub_http_req_query(c->req, "_since");
    if (s) {
        q.since_ms = hub__fhir_parse_instant(s);
        if (q.since_ms < 0) {
            send_issue(c, 400, "value", "_since", "_since is not an instant");
            return;
        }
    }
    const char *cnt = hub_http_req_query(c->req, "_count");
    if (cnt) {
        char *end;
        errno = 0;
        long v = strtol(cnt, &end, 10);
        if (*cnt == '\0' || *end || errno || v < 1) {
            send_issue(c, 400, "value", "_count", "_count must be a positive whole number");
            return;
        }
        q.count = v > HISTORY_MAX_COUNT ? HISTORY_MAX_COUNT : (int)v;
    }
    const char *cur = hub_http_req_query(c->req, "_cursor");
    if (cur) {
        char *end;
        errno = 0;
        long long v = strtoll(cur, &end, 10);
        if (*cur == '\0' || *end || errno || v < 1) {
            send_issue(c, 400, "value", "_cursor", "_cursor is not one this server gave");
            return;
        }
        q.cursor = v;
    }
    if (id) {
        /* The history of a resource that never existed is a 404. */
        hub_resource r;
        memset(&r, 0, sizeof r);
        hub_err err;
        hub_status rc = hub_record_read(c->f->rec, type, id, 0, &r, &err);
        hub_resource_release(&r);
        if (rc == HUB_E_NOTFOUND) {
            send_issue(c, 404, "not-found", NULL, "no %s/%s", type, id);
            return;
        }
    }
    hist_acc h = {.c = c, .entries = json_array()};
    int64_t next = 0, total = 0;
    hub_err err;
    hub_status rc = hub_record_history(c->f->rec, &q, hist_entry, &h, &next, &total, &err);
    if (rc != HUB_OK || h.failed) {
        HUB_LOG_WARN("fhir", "history failed rc=%s err='%s'", hub_status_name(rc),
                     rc ? err.msg : "stored version unreadable");
        json_decref(h.entries);
        send_internal(c);
        return;
    }
    char path[300];
    if (type && id) snprintf(path, sizeof path, "/%s/%s/_history", type, id);
    else if (type) snprintf(path, sizeof path, "/%s/_history", type);
    else snprintf(path, sizeof path, "/_history");
    char uuid[37], now[32];
    hub_uuid(uuid);
    hub_time_iso(hub_now_ms(), now);
    json_t *links = json_array();
    const char *qs = hub_http_req_query_string(c->req);
    hub_buf u;
    hub_buf_init(&u);
    hub_buf_printf(&u, "%s%s%s%s", base_of(c), path, *qs ? "?" : "", qs);
    json_array_append_new(links, json_pack("{s:s, s:s#}", "relation", "self", "url", u.p, u.n));
    if (next) {
        u.n = 0;
        hub_buf_printf(&u, "%s%s?", base_of(c), path);
        /* The same parameters, the cursor replaced. */
        for (const char *p = qs; *p;) {
            const char *e = strchr(p, '&');
            size_t len = e ? (size_t)(e - p) : strlen(p);
            if (len && strncmp(p, "_cursor=", 8) != 0) {
                hub_buf_append(&u, p, len);
                hub_buf_append(&u, "&", 1);
            }
            if (e == NULL) break;
            p = e + 1;
        }
        hub_buf_printf(&u, "_cursor=%" PRId64, next);
        json_array_append_new(links, json_pack("{s:s, s:s#}", "relation", "next", "url", u.p, u.n));
    }
    hub_buf_release(&u);
    json_t *b = json_pack("{s:s, s:s, s:{s:s}, s:s, s:I, s:o, s:o}", "resourceType", "Bundle",
                          "id", uuid, "meta", "lastUpdated", now, "type", "history", "total",
                          (json_int_t)total, "link", links, "entry", h.entries);
    if (b == NULL) {
        send_internal(c);
        return;
    }
    send_json(c, 200, b);
    json_decref(b);
}

/* ---- batch and transaction ------------------------------------------------------ */

static void do_bundle(ctx *c) {
    json_t *b;
    if (!read_resource(c, &b)) return;
    const char *rt = json_string_value(json_object_get(b, "resourceType"));
    const char *ty = json_string_value(json_object_get(b, "type"));
    if (rt == NULL || strcmp(rt, "Bundle") != 0) {
        send_issue(c, 400, "invalid", "resourceType",
                   "POST to the base takes a batch or transaction Bundle");
        json_decref(b);
        return;
    }
    if (ty == NULL || (strcmp(ty, "batch") != 0 && strcmp(ty, "transaction") != 0)) {
        send_issue(c, 400, "invalid", "Bundle.type",
                   "Bundle.type must be batch or transaction");
        json_decref(b);
        return;
    }
    if (!supported(ty)) {
        send_405(c, "GET", ty);
        json_decref(b);
        return;
    }
    json_t *out = NULL;
    hub_oo *oo = NULL;
    int status = 0;
    hub_err err;
    hub_err_clear(&err);
    hub_status rc = hub_record_bundle_as(c->f->rec, b, &c->actor, &out, &oo, &status, &err);
    json_decref(b);
    if (rc == HUB_OK && out) {
        send_json(c, 200, out);
    } else {
        if (status == 0) status = status_of(rc);
        if (status >= 500 || status < 400) {
            HUB_LOG_WARN("fhir", "bundle failed rc=%s where='%s' err='%s'",
                         hub_status_name(rc), err.where, err.msg);
            send_internal(c);
        } else {
            send_failure(c, status, oo);
        }
    }
    json_decref(out);
    hub_oo_free(oo);
}

static json_t *build_capabilities(const hub_http_fhir *f);

/* Builds the CapabilityStatement once; false when out of memory. */
static bool cap_ready(hub_http_fhir *f) {
    pthread_mutex_lock(&f->cap_mu);
    if (f->cap_text == NULL) {
        if (f->cap == NULL) f->cap = build_capabilities(f);
        char *text = f->cap ? hub_json_dumps(f->cap, JSON_COMPACT) : NULL;
        if (text) {
            f->cap_text = hub_strndup(text, strlen(text));
            if (f->cap_text) f->cap_len = strlen(text);
            free(text);
        }
    }
    bool ok = f->cap_text != NULL;
    pthread_mutex_unlock(&f->cap_mu);
    return ok;
}

static void do_metadata(ctx *c) {
    if (!cap_ready(c->f)) {
        send_internal(c);
        return;
    }
    if (c->out == FMT_JSON && !c->pretty) {
        hub_http_resp_set(c->resp, 200, CT_JSON, c->f->cap_text, c->f->cap_len);
        return;
    }
    send_json(c, 200, c->f->cap);
}

/* POST [base]/_search and [base]/Type/_search: the form body's
 * parameters, then the URL's. */
static void do_search(ctx *c, const char *type, const char *compartment, const char *query);
static void search_post(ctx *cc, const char *type) {
    const hub_http_req *req = cc->req;
    hub_slice body = hub_http_req_body(req);
    const char *qs = hub_http_req_query_string(req);
    char *q = hub_malloc(body.n + strlen(qs) + 2);
    if (!q) {
        send_internal(cc);
        return;
    }
    memcpy(q, body.p, body.n);
    size_t k = body.n;
    while (k && (q[k - 1] == '\n' || q[k - 1] == '\r')) k--;
    if (*qs) {
        if (k) q[k++] = '&';
        memcpy(q + k, qs, strlen(qs));
        k += strlen(qs);
    }
    q[k] = '\0';
    do_search(cc, type, NULL, q);
    hub_free(q);
}

/* ---- routing ---------------------------------------------------------------------- */

#define MAX_SEGS 5

/* ---- search ------------------------------------------------------------------ */

/* GET [base]/Type?query, POST [base]/Type/_search (form body), and the
 * Patient compartment [base]/Patient/<id>/Type. The Bundle comes back as
 * JSON text and is sent as it is unless XML or pretty output is asked. */
static void filter_bundle(ctx *c, hub_buf *out);

static void do_search(ctx *c, const char *type, const char *compartment, const char *query) {
    const char *prefer = hub_http_req_header(c->req, "Prefer");
    /* A patient-restricted token searches its patient's compartment only
     * (authorize() refused any other compartment). */
    char *pq = NULL;
    if (c->tok && c->tok->patient[0]) {
        if (strcmp(type, "Patient") != 0) {
            compartment = c->tok->patient;
        } else {
            size_t ql = query ? strlen(query) : 0;
            pq = hub_malloc(ql + strlen(c->tok->patient) + 8);
            if (pq == NULL) {
                send_internal(c);
                return;
            }
            sprintf(pq, "_id=%s%s%s", c->tok->patient, ql ? "&" : "", ql ? query : "");
            query = pq;
        }
    }
    char path[200];
    if (compartment) snprintf(path, sizeof path, "Patient/%s/%s", compartment, type);
    else snprintf(path, sizeof path, "%s", type ? type : "");
    hub_search_req sr = {.type = type,
                         .query = query,
                         .base = base_of(c),
                         .path = path,
                         .compartment = compartment,
                         .strict = prefer && strstr(prefer, "handling=strict") != NULL};
    hub_buf out;
    hub_buf_init(&out);
    int st = 200;
    hub_oo *oo = NULL;
    hub_err err;
    hub_err_clear(&err);
    hub_status rc = hub_record_search(c->f->rec, &sr, &out, &st, &oo, &err);
    hub_free(pq);
    if (rc == HUB_OK && st == 200 && c->filter_types) filter_bundle(c, &out);
    if (rc) {
        HUB_LOG_WARN("fhir", "search failed rc=%s err='%s'", hub_status_name(rc), err.msg);
        hub_buf_release(&out);
        hub_oo_free(oo);
        send_internal(c);
        return;
    }
    if (st != 200) {
        hub_buf_release(&out);
        send_oo(c, st, oo);
        hub_oo_free(oo);
        return;
    }
    if (c->out == FMT_XML || c->pretty) {
        json_error_t je;
        json_t *j = json_loadb(out.p, out.n, 0, &je);
        hub_buf_release(&out);
        if (!j) {
            send_internal(c);
            return;
        }
        send_json(c, 200, j);
        json_decref(j);
        return;
    }
    set_body(c, 200, CT_JSON, out.p, out.n);
}

/* ---- operations ----------------------------------------------------------------- */

static void do_operation(ctx *c, const char *type, const char *id, const char *name) {
    unsigned lvl = id ? HUB_OP_INSTANCE : type ? HUB_OP_TYPE : HUB_OP_SYSTEM;
    hub_http_fhir *f = c->f;
    int k = -1;
    for (int i = 0; i < f->nops; i++) {
        if (strcmp(f->ops[i].name, name) != 0 || !(f->ops[i].levels & lvl)) continue;
        if (f->ops[i].type[0] && (type == NULL || strcmp(f->ops[i].type, type) != 0))
            continue;
        k = i;
        break;
    }
    if (k < 0) {
        send_issue(c, 404, "not-supported", NULL, "no operation $%.64s %s", name,
                   lvl == HUB_OP_INSTANCE ? "on a resource of this type"
                   : lvl == HUB_OP_TYPE   ? "on this resource type"
                                          : "at the system level");
        return;
    }
    const char *m = hub_http_req_method(c->req);
    bool post = strcmp(m, "POST") == 0;
    bool get = strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0;
    if (!post && !get) {
        send_405(c, f->ops[k].affects_state ? "POST" : "GET, POST", m);
        return;
    }
    if (get && f->ops[k].affects_state) {
        send_405(c, "POST", m);
        return;
    }
    json_t *body = NULL;
    if (post && hub_http_req_body(c->req).n > 0 && !read_resource(c, &body)) return;
    hub_fhir_op_call call = {.name = name,
                             .type = type,
                             .id = id,
                             .post = post,
                             .body = body,
                             .req = c->req,
                             .base = base_of(c)};
    hub_fhir_op_result res = {.status = 200};
    f->ops[k].fn(f->ops[k].ud, &call, &res);
    json_decref(body);
    if (res.location[0]) hub_http_resp_header(c->resp, "Location", res.location);
    if (res.outcome) {
        send_oo(c, res.status >= 400 ? res.status : 500, res.outcome);
        hub_oo_free(res.outcome);
        json_decref(res.body);
        return;
    }
    if (res.body == NULL) {
        if (res.status >= 400)
            send_issue(c, res.status, "exception", NULL, "the operation failed");
        else
            hub_http_resp_set(c->resp, res.status ? res.status : 204, CT_JSON, "", 0);
        return;
    }
    send_json(c, res.status ? res.status : 200, res.body);
    json_decref(res.body);
}

hub_status hub_http_fhir_add_op(hub_http_fhir *f, const char *type, const char *name,
                                unsigned levels, bool affects_state,
                                const char *definition, hub_fhir_op_fn fn, void *ud) {
    if (f->nops == MAX_OPS) return HUB_E_LIMIT;
    if (name == NULL || fn == NULL || levels == 0) return HUB_E_ARG;
    int i = f->nops++;
    snprintf(f->ops[i].type, sizeof f->ops[i].type, "%s", type ? type : "");
    snprintf(f->ops[i].name, sizeof f->ops[i].name, "%s", name[0] == '$' ? name + 1 : name);
    snprintf(f->ops[i].definition, sizeof f->ops[i].definition, "%s",
             definition ? definition : "");
    f->ops[i].levels = levels;
    f->ops[i].affects_state = affects_state;
    f->ops[i].fn = fn;
    f->ops[i].ud = ud;
    return HUB_OK;
}

/* The path after /fhir in segments; false when it has too many or one is
 * too long (no endpoint has). */
static bool split_path(const char *path, char segs[][72], int *np) {
    int n = 0;
    for (const char *p = path; *p;) {
        while (*p == '/') p++;
        if (!*p) break;
        const char *e = strchr(p, '/');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (n == MAX_SEGS || len >= 72) return false;
        memcpy(segs[n], p, len);
        segs[n][len] = '\0';
        n++;
        p += len;
    }
    *np = n;
    return true;
}

static void dispatch(ctx *c, char segs[][72], int n) {
    const hub_http_req *req = c->req;
    const char *m = hub_http_req_method(req);
    bool get = strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0;
    bool post = strcmp(m, "POST") == 0, put = strcmp(m, "PUT") == 0;
    bool del = strcmp(m, "DELETE") == 0, patch = strcmp(m, "PATCH") == 0;

    if (n >= 1 && segs[n - 1][0] == '$' && n <= 3) {
        const char *otype = n >= 2 ? segs[0] : NULL;
        const char *oid = n == 3 ? segs[1] : NULL;
        if (otype && !hub_fhir_is_resource(c->f->defs, otype)) {
            send_issue(c, 404, "not-supported", NULL, "unknown resource type '%.64s'", otype);
            return;
        }
        if (oid && !hub__fhir_valid_id(oid, strlen(oid))) {
            send_issue(c, 400, "value", NULL, "'id' is not a valid id");
            return;
        }
        do_operation(c, otype, oid, segs[n - 1] + 1);
        return;
    }
    if (n == 0) {
        if (post) {
            do_bundle(c);
            return;
        }
        if (get && supported("search-system")) {
            do_search(c, NULL, NULL, hub_http_req_query_string(req));
            return;
        }
        send_405(c, "GET, POST", m);
        return;
    }
    if (n == 1 && strcmp(segs[0], "_search") == 0 && post && supported("search-system")) {
        search_post(c, NULL);
        return;
    }
    if (n == 1 && strcmp(segs[0], "metadata") == 0) {
        if (get) {
            do_metadata(c);
            return;
        }
        send_405(c, "GET", m);
        return;
    }
    if (n == 1 && strcmp(segs[0], "_history") == 0) {
        if (get && supported("history-system")) {
            do_history(c, NULL, NULL);
            return;
        }
        send_405(c, "GET", m);
        return;
    }
    const char *type = segs[0];
    if (!hub_fhir_is_resource(c->f->defs, type)) {
        send_issue(c, 404, "not-supported", NULL, "unknown resource type '%.64s'", type);
        return;
    }
    if (n == 1) {
        char crit[2048];
        criteria_of(c, crit, sizeof crit);
        if (post && supported("create")) {
            do_create(c, type);
            return;
        }
        if (crit[0]) {
            if (put && supported("update")) {
            do_update(c, type, NULL, crit);
            return;
        }
            if (patch && supported("patch")) {
            do_patch(c, type, NULL, crit);
            return;
        }
            if (del && supported("delete")) {
            do_delete(c, type, NULL, crit);
            return;
        }
        }
        if (get && supported("search-type")) {
            do_search(c, type, NULL, hub_http_req_query_string(req));
            return;
        }
        send_405(c, "GET, POST", m);
        return;
    }
    if (n == 2 && strcmp(segs[1], "_search") == 0) {
        if (post && supported("search-type")) {
            search_post(c, type);
            return;
        }
        send_405(c, "POST", m);
        return;
    }
    if (strcmp(segs[1], "_history") == 0) {
        if (n == 2 && get && supported("history-type")) {
            do_history(c, type, NULL);
            return;
        }
        if (n == 2) {
            send_405(c, "GET", m);
            return;
        }
        send_issue(c, 404, "not-found", NULL, "no such endpoint");
        return;
    }
    const char *id = segs[1];
    if (!hub__fhir_valid_id(id, strlen(id)) || id[0] == '$') {
        send_issue(c, id[0] == '$' ? 404 : 400, id[0] == '$' ? "not-supported" : "value",
                   NULL, id[0] == '$' ? "operations are not supported" : "'id' is not a valid id");
        return;
    }
    if (n == 2) {
        if (get && supported("read")) {
            do_read(c, type, id, 0);
            return;
        }
        if (put && supported("update")) {
            do_update(c, type, id, NULL);
            return;
        }
        if (patch && supported("patch")) {
            do_patch(c, type, id, NULL);
            return;
        }
        if (del && supported("delete")) {
            do_delete(c, type, id, NULL);
            return;
        }
        send_405(c, "GET, PUT, PATCH, DELETE", m);
        return;
    }
    if (n == 3 && strcmp(type, "Patient") == 0 && hub_fhir_is_resource(c->f->defs, segs[2])) {
        if (get && supported("search-type")) {
            do_search(c, segs[2], id, hub_http_req_query_string(req));
            return;
        }
        send_405(c, "GET", m);
        return;
    }
    if (strcmp(segs[2], "_history") != 0 || n > 4) {
        send_issue(c, 404, "not-found", NULL, "no such endpoint");
        return;
    }
    if (n == 3) {
        if (get && supported("history-instance")) {
            do_history(c, type, id);
            return;
        }
        send_405(c, "GET", m);
        return;
    }
    char *end;
    errno = 0;
    long long v = strtoll(segs[3], &end, 10);
    if (*end || errno || v < 1) {
        send_issue(c, 404, "not-found", NULL, "no such version");
        return;
    }
    if (get && supported("vread")) {
            do_read(c, type, id, v);
            return;
        }
    send_405(c, "GET", m);
}

/* ---- security: who may do what ------------------------------------------------------
 *
 * on_fhir runs, in order: the token check (guard: 401), the request rate
 * (429), what the interaction may touch (authorize: 403, and the search
 * limits: 400), the interaction itself, then its audit event. */

static bool may(const ctx *c, const char *type, unsigned perms) {
    if (c->tok == NULL) return true;
    if (type && strcmp(type, "AuditEvent") == 0) return c->tok->scopes.admin;
    return hub_scopes_allow(&c->tok->scopes, type, perms);
}

static bool refuse(ctx *c, const char *expr, const char *why) {
    send_issue(c, 403, "forbidden", expr, "%s", why);
    /* RFC 6750 3.1: the token is good, its scopes are not enough. */
    if (c->tok)
        hub_http_resp_header(c->resp, "WWW-Authenticate",
                             "Bearer realm=\"hub\", error=\"insufficient_scope\"");
    return false;
}

static const char *perm_text(unsigned perms) {
    if (perms & HUB_PERM_C) return "the token's scopes do not allow creating this type";
    if (perms & HUB_PERM_U) return "the token's scopes do not allow updating this type";
    if (perms & HUB_PERM_D) return "the token's scopes do not allow deleting this type";
    if (perms & HUB_PERM_S) return "the token's scopes do not allow searching this type";
    return "the token's scopes do not allow reading this type";
}

static bool need(ctx *c, const char *type, unsigned perms) {
    return may(c, type, perms) ? true : refuse(c, NULL, perm_text(perms));
}

/* The token's patient, or one the patient index links to it. */
static bool is_patient(ctx *c, const char *id) {
    const char *pid = c->tok->patient;
    if (strcmp(id, pid) == 0) return true;
    hub_arena a;
    hub_arena_init(&a, 1024);
    const char **ids = NULL;
    size_t n = 0;
    hub_err err;
    bool ok = false;
    if (hub_record_patient_ids(c->f->rec, pid, &a, &ids, &n, &err) == HUB_OK)
        for (size_t i = 0; i < n && !ok; i++) ok = strcmp(ids[i], id) == 0;
    hub_arena_release(&a);
    return ok;
}

/* Is type/id in the token patient's compartment? A compartment search by
 * _id answers it with the search's own definition of the compartment. */
static bool in_compartment(ctx *c, const char *type, const char *id) {
    if (strcmp(type, "Patient") == 0) return is_patient(c, id);
    char q[120], path[200];
    snprintf(q, sizeof q, "_id=%s&_count=1", id);
    snprintf(path, sizeof path, "Patient/%s/%s", c->tok->patient, type);
    hub_search_req sr = {.type = type, .query = q, .base = "", .path = path,
                         .compartment = c->tok->patient};
    hub_buf out;
    hub_buf_init(&out);
    int st = 0;
    hub_oo *oo = NULL;
    hub_err err;
    bool found = false;
    if (hub_record_search(c->f->rec, &sr, &out, &st, &oo, &err) == HUB_OK && st == 200) {
        json_t *b = json_loadb(out.p, out.n, 0, NULL);
        size_t i;
        json_t *e;
        json_array_foreach(json_object_get(b, "entry"), i, e) {
            const char *mode = json_string_value(json_object_get(json_object_get(e, "search"), "mode"));
            if (mode && strcmp(mode, "match") == 0) found = true;
        }
        json_decref(b);
    }
    hub_oo_free(oo);
    hub_buf_release(&out);
    return found;
}

/* Does the resource reference the token's patient (or is it that
 * Patient)? Writes of a patient-restricted token must stay in its
 * compartment. */
static bool refs_patient(const json_t *v, const char *want, size_t wl) {
    if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x) {
            if (strcmp(k, "reference") == 0 && json_is_string(x)) {
                const char *r = json_string_value(x);
                size_t rl = strlen(r);
                if (rl >= wl && strcmp(r + rl - wl, want) == 0 &&
                    (rl == wl || r[rl - wl - 1] == '/'))
                    return true;
            } else if (refs_patient(x, want, wl)) {
                return true;
            }
        }
    } else if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) if (refs_patient(x, want, wl)) return true;
    }
    return false;
}

static json_t *body_json(ctx *c) {
    hub_slice b = hub_http_req_body(c->req);
    const char *ct = hub_http_req_header(c->req, "Content-Type");
    int k = ct ? hub__fhir_media_format(ct, strlen(ct)) : -1;
    json_t *j = NULL;
    if (k == FMT_XML) {
        hub_oo *oo = hub_oo_new();
        if (oo) hub_fhir_xml_to_json(c->f->defs, b.p, b.n, &j, oo);
        hub_oo_free(oo);
    } else {
        j = json_loadb(b.p, b.n, 0, NULL);
    }
    return j;
}

static bool write_in_compartment(ctx *c, const char *type, const char *id) {
    json_t *j = body_json(c);
    if (j == NULL) return true; /* the interaction answers the malformed body */
    char want[100];
    snprintf(want, sizeof want, "Patient/%s", c->tok->patient);
    bool ok = strcmp(type, "Patient") == 0 ? id && is_patient(c, id)
                                           : refs_patient(j, want, strlen(want));
    json_decref(j);
    return ok ? true : refuse(c, NULL, "the token may only write its own patient's data");
}

/* A batch or transaction: every entry must be allowed, or none runs. */
static bool check_bundle(ctx *c) {
    if (c->tok->patient[0])
        return refuse(c, NULL, "a patient-restricted token cannot send a batch or transaction");
    json_t *b = body_json(c);
    if (b == NULL) return true;
    size_t i;
    json_t *e;
    bool ok = true;
    json_array_foreach(json_object_get(b, "entry"), i, e) {
        json_t *rq = json_object_get(e, "request");
        const char *m = json_string_value(json_object_get(rq, "method"));
        const char *url = json_string_value(json_object_get(rq, "url"));
        if (m == NULL || url == NULL) continue; /* the record answers it */
        while (*url == '/') url++;
        char type[64];
        size_t tl = strcspn(url, "/?");
        snprintf(type, sizeof type, "%.*s", (int)(tl < 63 ? tl : 63), url);
        bool has_id = url[tl] == '/';
        unsigned perms = strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0
                             ? (has_id ? HUB_PERM_R : HUB_PERM_S)
                         : strcmp(m, "POST") == 0   ? HUB_PERM_C
                         : strcmp(m, "DELETE") == 0 ? HUB_PERM_D
                                                    : HUB_PERM_U;
        if (url[tl] == '?' && strcmp(m, "GET") != 0) perms |= HUB_PERM_S;
        const char *t = type[0] == '$' || type[0] == '_' || !type[0] ? "*" : type;
        if (!may(c, t, perms)) {
            char expr[48];
            snprintf(expr, sizeof expr, "Bundle.entry[%zu]", i);
            ok = refuse(c, expr, perm_text(perms));
            break;
        }
    }
    json_decref(b);
    return ok;
}

/* Search parameters: the limits, and what the token may see through them
 * (chains and _has name other types; _include and _revinclude bring
 * others in, which the result filter drops). Parameter names go to the
 * audit trail, their values never. */
static bool check_search(ctx *c, const char *type, const char *q) {
    hub_http_fhir *f = c->f;
    int nparams = 0, nincl = 0;
    size_t an = 0;
    c->a_query[0] = '\0';
    for (const char *p = q ? q : ""; *p;) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        size_t nl = eq ? (size_t)(eq - p) : len;
        if (nl > 0) {
            char name[128];
            snprintf(name, sizeof name, "%.*s", (int)(nl < 127 ? nl : 127), p);
            bool result_param = strcmp(name, "_format") == 0 || strcmp(name, "_pretty") == 0 ||
                                strcmp(name, "_cursor") == 0;
            if (!result_param) nparams++;
            if (an + nl + 2 < sizeof c->a_query) {
                if (an) c->a_query[an++] = '&';
                memcpy(c->a_query + an, name, strlen(name));
                an += strlen(name);
                c->a_query[an] = '\0';
            }
            if (strncmp(name, "_include", 8) == 0 || strncmp(name, "_revinclude", 11) == 0) {
                nincl++;
                if (!may(c, "*", HUB_PERM_R)) c->filter_types = true;
            }
            if (strcmp(name, "_count") == 0 && eq) {
                long v = strtol(eq + 1, NULL, 10);
                if (v > f->max_count) {
                    send_issue(c, 400, "too-costly", "_count", "_count over %d", f->max_count);
                    return false;
                }
            }
            if (strncmp(name, "_has:", 5) == 0) {
                char ht[64];
                size_t hl = strcspn(name + 5, ":");
                snprintf(ht, sizeof ht, "%.*s", (int)(hl < 63 ? hl : 63), name + 5);
                if (!may(c, ht, HUB_PERM_S)) return refuse(c, name, perm_text(HUB_PERM_S));
            } else if (strchr(name, '.')) {
                /* subject:Patient.name: the chain searches Patient. Without
                 * the type, or further links, any type may be searched. */
                const char *dot = strchr(name, '.');
                const char *colon = memchr(name, ':', (size_t)(dot - name));
                char ct[64] = "*";
                if (colon && !strchr(dot + 1, '.'))
                    snprintf(ct, sizeof ct, "%.*s", (int)(dot - colon - 1 < 63 ? dot - colon - 1 : 63),
                             colon + 1);
                if (!may(c, ct, HUB_PERM_S)) return refuse(c, name, perm_text(HUB_PERM_S));
            }
        }
        if (amp == NULL) break;
        p = amp + 1;
    }
    if (nparams > f->max_search_params) {
        send_issue(c, 400, "too-costly", NULL, "more than %d search parameters",
                   f->max_search_params);
        return false;
    }
    if (nincl > f->max_includes) {
        send_issue(c, 400, "too-costly", "_include", "more than %d _include and _revinclude",
                   f->max_includes);
        return false;
    }
    (void)type;
    return true;
}

/* Drops the entries whose type the token may not read from a searchset. */
static void filter_bundle(ctx *c, hub_buf *out) {
    json_t *b = json_loadb(out->p, out->n, 0, NULL);
    json_t *es = json_object_get(b, "entry");
    if (!json_is_array(es)) {
        json_decref(b);
        return;
    }
    size_t dropped = 0;
    for (size_t i = json_array_size(es); i-- > 0;) {
        json_t *e = json_array_get(es, i);
        const char *rt = json_string_value(json_object_get(json_object_get(e, "resource"), "resourceType"));
        const char *mode = json_string_value(json_object_get(json_object_get(e, "search"), "mode"));
        /* Matches need search on their type, included resources read. */
        unsigned need_p = mode && strcmp(mode, "match") == 0 ? HUB_PERM_S : HUB_PERM_R;
        if (rt && !(mode && strcmp(mode, "outcome") == 0) && !may(c, rt, need_p)) {
            json_array_remove(es, i);
            dropped++;
        }
    }
    if (dropped) {
        hub_buf nb;
        hub_buf_init(&nb);
        if (hub_json_dump_buf(b, JSON_COMPACT, &nb) == HUB_OK) {
            hub_buf_release(out);
            *out = nb;
        } else {
            hub_buf_release(&nb);
            out->n = 0; /* never the unfiltered Bundle */
            hub_buf_append_cstr(out, "{\"resourceType\":\"Bundle\",\"type\":\"searchset\"}");
        }
    }
    json_decref(b);
}

static bool op_affects_state(const hub_http_fhir *f, const char *name) {
    for (int i = 0; i < f->nops; i++)
        if (strcmp(f->ops[i].name, name) == 0) return f->ops[i].affects_state;
    return false;
}

/* What the interaction may touch, for the token; also fills the audit
 * fields. false when the answer (403/400) was sent. */
/* Is the token's client the one that wrote Subscription/id first (its
 * owner, as the audit trail records the write)? */
typedef struct {
    char client[128];
    bool found;
} owner_ctx;

static hub_status owner_row(void *ud, const hub_audit_row *row) {
    owner_ctx *o = ud;
    if (o->found) return HUB_OK;
    o->found = true;
    snprintf(o->client, sizeof o->client, "%s", row->ev.client ? row->ev.client : "");
    return HUB_OK;
}

static bool subscription_owner(ctx *c, const char *id) {
    owner_ctx o = {.found = false};
    for (int kind = HUB_AUDIT_CREATE; kind <= HUB_AUDIT_UPDATE && !o.found; kind++) {
        hub_audit_filter af = {.oldest_first = true, .entity_type = "Subscription",
                               .entity_id = id, .kind = kind, .limit = 1};
        hub_err err;
        if (hub_audit_list(hub_record_store(c->f->rec), &af, owner_row, &o, NULL, &err) != HUB_OK)
            return false;
    }
    return o.found && o.client[0] && strcmp(o.client, c->tok->client) == 0;
}

/* A system search ([base]?_type=A,B&...): search rights on every type it
 * names (_type), or on every type when it names none. A patient-restricted
 * token searches its compartment instead. */
static bool system_search_allowed(ctx *c, const char *qs) {
    c->a_kind = HUB_AUDIT_SEARCH;
    if (c->tok == NULL) return true;
    if (c->tok->patient[0])
        return refuse(c, NULL, "a patient-restricted token searches its patient's compartment");
    /* Whatever _include brings in is filtered by type like any search's. */
    if (!may(c, "*", HUB_PERM_R)) c->filter_types = true;
    const char *p = qs;
    bool named = false;
    while (p && *p) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        if (len > 6 && strncmp(p, "_type=", 6) == 0) {
            named = true;
            const char *v = p + 6, *end = p + len;
            while (v < end) {
                const char *comma = memchr(v, ',', (size_t)(end - v));
                if (comma == NULL) {
                    const char *pct = strstr(v, "%2C");
                    if (pct && pct < end) comma = pct;
                }
                const char *te = comma ? comma : end;
                char t[72];
                snprintf(t, sizeof t, "%.*s", (int)(te - v), v);
                if (!need(c, t, HUB_PERM_S)) return false;
                v = te == end ? end : te + (*te == ',' ? 1 : 3);
            }
        }
        p = amp ? amp + 1 : NULL;
    }
    return named ? true : need(c, "*", HUB_PERM_S);
}

/* A POST _search's parameters: the form body's, then the URL's (heap;
 * NULL after answering 500). */
static char *form_and_query(ctx *c) {
    hub_slice b = hub_http_req_body(c->req);
    const char *qs = hub_http_req_query_string(c->req);
    char *q = hub_malloc(b.n + strlen(qs) + 2);
    if (q == NULL) {
        send_internal(c);
        return NULL;
    }
    memcpy(q, b.p, b.n);
    q[b.n] = '\0';
    if (*qs) {
        strcat(q, b.n ? "&" : "");
        strcat(q, qs);
    }
    return q;
}

static bool authorize(ctx *c, char segs[][72], int n) {
    const char *m = hub_http_req_method(c->req);
    bool get = strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0;
    bool post = strcmp(m, "POST") == 0, put = strcmp(m, "PUT") == 0;
    bool del = strcmp(m, "DELETE") == 0, patch = strcmp(m, "PATCH") == 0;
    const hub_auth_token *t = c->tok;
    const char *pid = t && t->patient[0] ? t->patient : NULL;
    const char *qs = hub_http_req_query_string(c->req);
    if (n == 0 && !post) return system_search_allowed(c, qs);
    if (n == 1 && strcmp(segs[0], "_search") == 0 && post) {
        char *q = form_and_query(c);
        if (q == NULL) return false;
        bool ok = system_search_allowed(c, q);
        hub_free(q);
        return ok;
    }
    if (n == 0) {
        c->a_kind = HUB_AUDIT_UPDATE;
        snprintf(c->a_type, sizeof c->a_type, "Bundle");
        return t ? check_bundle(c) : true;
    }
    if (n == 1 && strcmp(segs[0], "metadata") == 0) return true;
    if (segs[n - 1][0] == '$' && n <= 3) {
        const char *type = n >= 2 ? segs[0] : NULL, *id = n == 3 ? segs[1] : NULL;
        const char *name = segs[n - 1] + 1;
        c->a_kind = HUB_AUDIT_SEARCH;
        copy_cut(c->a_type, sizeof c->a_type, type ? type : "");
        copy_cut(c->a_id, sizeof c->a_id, id ? id : "");
        if (t == NULL) return true;
        bool patient_own = type && strcmp(type, "Patient") == 0 && id && pid && is_patient(c, id);
        if (pid && !patient_own)
            return refuse(c, NULL, "a patient-restricted token may only run operations on its patient");
        if (strcmp(name, "secret") == 0 && type && strcmp(type, "Subscription") == 0 && id &&
            !t->scopes.admin && !subscription_owner(c, id))
            return refuse(c, NULL, "only the client that wrote the Subscription may read its secret");
        if (strcmp(name, "everything") == 0)
            /* $everything returns every type in the compartment. */
            return need(c, "*", HUB_PERM_R | HUB_PERM_S);
        unsigned perms = post && op_affects_state(c->f, name) ? HUB_PERM_C | HUB_PERM_U
                                                              : HUB_PERM_R | HUB_PERM_S;
        return need(c, type ? type : "*", perms);
    }
    if (n == 1 && strcmp(segs[0], "_history") == 0) {
        c->a_kind = HUB_AUDIT_READ;
        if (pid) return refuse(c, NULL, "a patient-restricted token cannot read the system history");
        return need(c, "*", HUB_PERM_R);
    }
    const char *type = segs[0];
    if (!hub_fhir_is_resource(c->f->defs, type)) return true; /* the dispatcher's 404 */
    copy_cut(c->a_type, sizeof c->a_type, type);
    if (n == 1) {
        char crit[2048];
        criteria_of(c, crit, sizeof crit);
        if (post) {
            c->a_kind = HUB_AUDIT_CREATE;
            if (!need(c, type, HUB_PERM_C)) return false;
            return pid ? write_in_compartment(c, type, NULL) : true;
        }
        if (crit[0] && (put || patch || del)) {
            c->a_kind = del ? HUB_AUDIT_DELETE : HUB_AUDIT_UPDATE;
            if (pid) return refuse(c, NULL, "a patient-restricted token cannot write conditionally");
            return need(c, type, (del ? HUB_PERM_D : HUB_PERM_U) | HUB_PERM_S);
        }
        if (get) {
            c->a_kind = HUB_AUDIT_SEARCH;
            if (!need(c, type, HUB_PERM_S)) return false;
            return check_search(c, type, qs);
        }
        return true;
    }
    if (n == 2 && strcmp(segs[1], "_search") == 0) {
        c->a_kind = HUB_AUDIT_SEARCH;
        if (!need(c, type, HUB_PERM_S)) return false;
        char *q = form_and_query(c);
        if (q == NULL) return false;
        bool ok = check_search(c, type, q);
        hub_free(q);
        return ok;
    }
    if (n == 2 && strcmp(segs[1], "_history") == 0) {
        c->a_kind = HUB_AUDIT_READ;
        if (pid) return refuse(c, NULL, "a patient-restricted token cannot read a type's history");
        return need(c, type, HUB_PERM_R);
    }
    const char *id = segs[1];
    copy_cut(c->a_id, sizeof c->a_id, id);
    if (n == 3 && strcmp(type, "Patient") == 0 && hub_fhir_is_resource(c->f->defs, segs[2])) {
        c->a_kind = HUB_AUDIT_SEARCH;
        copy_cut(c->a_type, sizeof c->a_type, segs[2]);
        if (!need(c, segs[2], HUB_PERM_S)) return false;
        if (pid && !is_patient(c, id))
            return refuse(c, NULL, "the token may only search its own patient's compartment");
        return check_search(c, segs[2], qs);
    }
    if (n == 2 && (put || patch || del)) {
        c->a_kind = del ? HUB_AUDIT_DELETE : HUB_AUDIT_UPDATE;
        if (!need(c, type, del ? HUB_PERM_D : HUB_PERM_U)) return false;
        if (!pid) return true;
        if (put) return write_in_compartment(c, type, id);
        return in_compartment(c, type, id)
                   ? true
                   : refuse(c, NULL, "the token may only write its own patient's data");
    }
    c->a_kind = HUB_AUDIT_READ;
    if (!need(c, type, HUB_PERM_R)) return false;
    if (pid && !in_compartment(c, type, id))
        return refuse(c, NULL, "the token may only read its own patient's data");
    return true;
}

/* The Bearer token (401 without a good one) and the request rate (429). */
static bool guard(ctx *c, hub_auth_token *tok, bool metadata) {
    hub_http_fhir *f = c->f;
    const char *peer = hub_http_req_peer(c->req);
    c->actor.peer = peer;
    c->actor.channel = "http";
    c->actor.subject = hub_http_req_tls_subject(c->req);
    if (f->enforce && !metadata) {
        const char *h = hub_http_req_header(c->req, "Authorization");
        hub_err err;
        hub_err_clear(&err);
        const char *why = NULL;
        if (h == NULL) why = "no access token";
        else if (strncasecmp(h, "Bearer ", 7) != 0) why = "not a Bearer token";
        else if (hub_auth_check(f->auth, h + 7, tok, &err) != HUB_OK) why = err.msg;
        else if (tok->cert_subject[0] &&
                 (c->actor.subject == NULL || strcmp(c->actor.subject, tok->cert_subject) != 0))
            why = "token used without its client's certificate";
        if (why) {
            c->a_kind = HUB_AUDIT_LOGIN_FAIL;
            snprintf(c->a_query, sizeof c->a_query, "%s", why);
            send_issue(c, 401, "login", NULL, "%s",
                       h ? "the access token is not valid (expired, revoked or not ours)"
                         : "an access token is required: Authorization: Bearer ...");
            hub_http_resp_header(c->resp, "WWW-Authenticate",
                                 h ? "Bearer realm=\"hub\", error=\"invalid_token\""
                                   : "Bearer realm=\"hub\"");
            return false;
        }
        c->tok = tok;
        c->actor.client = tok->client;
    }
    /* The rate is a client's: its token's, or its address's on the
     * requests that need no token while auth is on (/metadata). With auth
     * off the hub serves local use, where one address is every client (a
     * bulk load, a test suite) and a per-address cap only gets in the way. */
    if (f->auth && (c->tok || f->enforce)) {
        /* "c:client" or "a:address" (no port); no printf on every request. */
        char key[136];
        const char *who = c->tok ? c->tok->client : peer;
        size_t n = strnlen(who, sizeof key - 3);
        const char *colon = c->tok ? NULL : memrchr(who, ':', n);
        if (colon && colon > who) n = (size_t)(colon - who);
        key[0] = c->tok ? 'c' : 'a';
        key[1] = ':';
        memcpy(key + 2, who, n);
        key[n + 2] = '\0';
        int retry = 1;
        if (!hub_auth_rate_ok(f->auth, key, &retry)) {
            send_issue(c, 429, "throttled", NULL, "too many requests; retry after %d s", retry);
            char ra[16];
            snprintf(ra, sizeof ra, "%d", retry);
            hub_http_resp_header(c->resp, "Retry-After", ra);
            return false;
        }
    }
    return true;
}

static void audit_request(ctx *c) {
    if (c->f->audit == NULL || c->a_kind < 0) return;
    int st = c->resp->status;
    bool write = c->a_kind == HUB_AUDIT_CREATE || c->a_kind == HUB_AUDIT_UPDATE ||
                 c->a_kind == HUB_AUDIT_DELETE;
    /* Successful writes are on the record already: the audit listener
     * wrote their rows in the same transaction. */
    if (write && st < 400 && st != 0) return;
    char detail[16] = "http 000";
    if (st >= 100 && st < 1000) {
        detail[5] = (char)('0' + st / 100);
        detail[6] = (char)('0' + st / 10 % 10);
        detail[7] = (char)('0' + st % 10);
    } else {
        snprintf(detail, sizeof detail, "http %d", st);
    }
    hub_audit_event ev = {.kind = (hub_audit_kind)c->a_kind,
                          .outcome = st < 400   ? 0
                                     : st == 401 || st == 403 ? 12
                                     : st >= 500 ? 8
                                                 : 4,
                          .client = c->actor.client,
                          .subject = c->actor.subject,
                          .peer = c->actor.peer,
                          .channel = "http",
                          .entity_type = c->a_type[0] ? c->a_type : NULL,
                          .entity_id = c->a_id[0] ? c->a_id : NULL,
                          .query = c->a_kind == HUB_AUDIT_LOGIN_FAIL ? NULL
                                   : c->a_query[0]                  ? c->a_query
                                                                    : NULL,
                          .detail = c->a_kind == HUB_AUDIT_LOGIN_FAIL ? c->a_query : detail};
    hub_audit_record(c->f->audit, &ev);
}

/* GET /fhir/AuditEvent and /fhir/AuditEvent/<id>: the audit table as
 * AuditEvent resources. Parameters: date (ge/gt/le/lt), agent (client
 * id), entity-type, entity (Type/id), _count, _cursor (paging by id). */
static hub_status audit_entry(void *ud, const hub_audit_row *row) {
    json_t *es = ud;
    json_t *r = hub_audit_to_fhir(row);
    if (r == NULL) return HUB_E_NOMEM;
    char url[64];
    snprintf(url, sizeof url, "AuditEvent/%" PRId64, row->id);
    json_array_append_new(es, json_pack("{s:s, s:o, s:{s:s}}", "fullUrl", url, "resource", r,
                                        "search", "mode", "match"));
    return HUB_OK;
}

static void do_audit(ctx *c, const char *id) {
    hub_http_fhir *f = c->f;
    hub_audit_filter flt = {.kind = -1, .limit = 50};
    char etype[64] = "", eid[72] = "";
    if (id) {
        char *end;
        flt.id = strtoll(id, &end, 10);
        if (*end || flt.id <= 0) {
            send_issue(c, 404, "not-found", NULL, "no AuditEvent/%.64s", id);
            return;
        }
    } else {
        const char *v;
        if ((v = hub_http_req_query(c->req, "_count"))) flt.limit = atoi(v);
        if ((v = hub_http_req_query(c->req, "_cursor"))) flt.before_id = strtoll(v, NULL, 10);
        if ((v = hub_http_req_query(c->req, "agent"))) flt.client = v;
        if ((v = hub_http_req_query(c->req, "entity-type"))) flt.entity_type = v;
        if ((v = hub_http_req_query(c->req, "entity"))) {
            const char *slash = strchr(v, '/');
            if (slash) {
                snprintf(etype, sizeof etype, "%.*s", (int)(slash - v < 63 ? slash - v : 63), v);
                snprintf(eid, sizeof eid, "%s", slash + 1);
                flt.entity_type = etype;
                flt.entity_id = eid;
            } else {
                flt.entity_id = v;
            }
        }
        if ((v = hub_http_req_query(c->req, "date"))) {
            int64_t t = hub__fhir_parse_instant(v + (isalpha((unsigned char)v[0]) ? 2 : 0));
            if (t < 0) {
                send_issue(c, 400, "value", "date", "date is not an instant");
                return;
            }
            if (strncmp(v, "lt", 2) == 0 || strncmp(v, "le", 2) == 0) flt.until_ms = t + 1;
            else flt.since_ms = t;
        }
    }
    hub_audit_flush(f->audit); /* what was asked a moment ago is on the record */
    json_t *es = json_array();
    int64_t total = 0;
    hub_err err;
    hub_status rc = hub_audit_list(hub_record_store(f->rec), &flt, audit_entry, es,
                                   id ? NULL : &total, &err);
    if (rc) {
        json_decref(es);
        HUB_LOG_WARN("fhir", "audit list failed err='%s'", err.msg);
        send_internal(c);
        return;
    }
    if (id) {
        json_t *r = json_object_get(json_array_get(es, 0), "resource");
        if (r == NULL) send_issue(c, 404, "not-found", NULL, "no AuditEvent/%.64s", id);
        else send_json(c, 200, r);
        json_decref(es);
        return;
    }
    char uuid[37];
    hub_uuid(uuid);
    json_t *links = json_array();
    json_array_append_new(links, json_pack("{s:s, s:s}", "relation", "self", "url", "AuditEvent"));
    size_t ne = json_array_size(es);
    if (ne && (int)ne == (flt.limit < 1 ? 1 : flt.limit > 1000 ? 1000 : flt.limit)) {
        const char *lid = json_string_value(
            json_object_get(json_object_get(json_array_get(es, ne - 1), "resource"), "id"));
        char next[512];
        snprintf(next, sizeof next, "%s/AuditEvent?_count=%zu&_cursor=%.64s", base_of(c), ne,
                 lid ? lid : "0");
        json_array_append_new(links, json_pack("{s:s, s:s}", "relation", "next", "url", next));
    }
    json_t *b = json_pack("{s:s, s:s, s:s, s:I, s:o, s:o}", "resourceType", "Bundle", "id", uuid,
                          "type", "searchset", "total", (json_int_t)total, "link", links, "entry",
                          es);
    if (b == NULL) {
        send_internal(c);
        return;
    }
    send_json(c, 200, b);
    json_decref(b);
}

/* The hub's own trail is served for GET /fhir/AuditEvent with only the
 * trail's parameters, and GET /fhir/AuditEvent/<digits>; everything else
 * on AuditEvent is the ordinary resource type (systems may record their
 * own AuditEvents, IHE ATNA's "Record Audit Event"), which cannot touch
 * the trail: it lives in a table of its own. */
static bool is_trail(ctx *c, const char *id) {
    const char *m = hub_http_req_method(c->req);
    if (strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0) return false;
    if (id) {
        for (const char *p = id; *p; p++)
            if (*p < '0' || *p > '9') return false;
        return true;
    }
    static const char *const OURS[] = {"date", "agent", "entity", "entity-type", "_count",
                                       "_cursor", "_format", "_pretty"};
    for (const char *p = hub_http_req_query_string(c->req); *p;) {
        size_t nl = strcspn(p, "=&");
        bool ok = nl == 0;
        for (size_t i = 0; i < sizeof OURS / sizeof OURS[0] && !ok; i++)
            ok = strlen(OURS[i]) == nl && memcmp(OURS[i], p, nl) == 0;
        if (!ok) return false;
        p += strcspn(p, "&");
        if (*p) p++;
    }
    return true;
}

static void on_fhir(void *ud, const hub_http_req *req, hub_http_resp *resp) {
    ctx c = {.f = ud, .req = req, .resp = resp, .a_kind = -1};
    if (!negotiate(&c)) return;
    const char *path = hub_http_req_path(req) + strlen(BASE_PATH);
    char segs[MAX_SEGS][72];
    int n = 0;
    bool split = split_path(path, segs, &n);
    hub_auth_token tok;
    bool metadata = split && n == 1 && strcmp(segs[0], "metadata") == 0;
    if (!guard(&c, &tok, metadata)) goto audit;
    if (hub_http_req_too_large(req)) {
        send_issue(&c, 413, "too-long", NULL, "the request body is over the limit");
        goto audit;
    }
    if (!split) {
        send_issue(&c, 404, "not-found", NULL, "no such endpoint");
        goto audit;
    }
    if (!authorize(&c, segs, n)) goto audit;
    if (c.f->audit && n >= 1 && n <= 2 && strcmp(segs[0], "AuditEvent") == 0 &&
        is_trail(&c, n == 2 ? segs[1] : NULL)) {
        c.a_kind = -1; /* reading the trail is not itself audited */
        do_audit(&c, n == 2 ? segs[1] : NULL);
        return;
    }
    dispatch(&c, segs, n);
audit:
    audit_request(&c);
}

/* ---- the CapabilityStatement ---------------------------------------------------------- */

static json_t *str_array(const char *const *v, size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(a, json_string(v[i]));
    return a;
}

static void add_search_param(void *ud, const char *code, const char *type, const char *url) {
    json_array_append_new(ud, json_pack("{s:s, s:s, s:s}", "name", code, "definition", url,
                                        "type", type));
}

static json_t *op_entry(const hub_http_fhir *f, int k) {
    char def[400];
    if (f->ops[k].definition[0])
        snprintf(def, sizeof def, "%s", f->ops[k].definition);
    else
        snprintf(def, sizeof def, "%s/OperationDefinition/%s", f->base[0] ? f->base : "",
                 f->ops[k].name);
    return json_pack("{s:s, s:s}", "name", f->ops[k].name, "definition", def);
}

static json_t *build_capabilities(const hub_http_fhir *f) {
    json_t *types = json_array();
    size_t nt = hub_fhir_resource_count(f->defs);
    for (size_t i = 0; i < nt; i++) {
        const char *t = hub_fhir_resource_name(f->defs, i);
        json_t *ia = json_array();
        for (size_t k = 0; k < N_INTERACTIONS; k++)
            if (INTERACTIONS[k].lvl == LVL_TYPE)
                json_array_append_new(ia, json_pack("{s:s}", "code", INTERACTIONS[k].code));
        char prof[160];
        snprintf(prof, sizeof prof, "http://hl7.org/fhir/StructureDefinition/%s", t);
        json_t *sps = json_array();
        hub_record_search_params(f->rec, t, add_search_param, sps);
        json_t *tops = json_array();
        for (int k = 0; k < f->nops; k++)
            if ((f->ops[k].levels & (HUB_OP_TYPE | HUB_OP_INSTANCE)) &&
                (f->ops[k].type[0] == '\0' || strcmp(f->ops[k].type, t) == 0))
                json_array_append_new(tops, op_entry(f, k));
        json_array_append_new(
            types,
            json_pack("{s:s, s:s, s:o, s:o, s:s, s:b, s:b, s:b, s:s, s:b, s:s}", "type", t,
                      "profile", prof, "interaction", ia, "searchParam", sps,
                      "versioning", "versioned-update",
                      "readHistory", 1, "updateCreate", 1, "conditionalCreate", 1,
                      "conditionalRead", "full-support", "conditionalUpdate", 1,
                      "conditionalDelete", "single"));
        if (json_array_size(tops))
            json_object_set_new(json_array_get(types, json_array_size(types) - 1),
                                "operation", tops);
        else
            json_decref(tops);
    }
    json_t *sops = json_array();
    for (int k = 0; k < f->nops; k++)
        if (f->ops[k].levels & HUB_OP_SYSTEM) json_array_append_new(sops, op_entry(f, k));
    json_t *sys = json_array();
    for (size_t k = 0; k < N_INTERACTIONS; k++)
        if (INTERACTIONS[k].lvl == LVL_SYSTEM)
            json_array_append_new(sys, json_pack("{s:s}", "code", INTERACTIONS[k].code));
    char now[32];
    hub_time_iso(hub_now_ms(), now);
    now[10] = '\0'; /* a date */
    char doc[200];
    snprintf(doc, sizeof doc,
             "Bundles of up to %d entries; history pages of up to %d versions",
             f->max_bundle_entries, HISTORY_MAX_COUNT);
    json_t *impl = json_pack("{s:s}", "description", "hub FHIR R4 REST API");
    if (f->base[0]) json_object_set_new(impl, "url", json_string(f->base));
    json_t *cap = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:{s:s, s:s}, s:o, s:s, s:o, s:o,"
        " s:[{s:s, s:s, s:o, s:o}]}",
        "resourceType", "CapabilityStatement", "status", "active", "date", now,
        "publisher", "hub", "kind", "instance", "software", "name", "hub", "version",
        HUB_VERSION, "implementation", impl, "fhirVersion",
        hub_fhir_defs_version(f->defs), "format",
        str_array(FORMATS, sizeof FORMATS / sizeof FORMATS[0]), "patchFormat",
        str_array(PATCH_FORMATS, sizeof PATCH_FORMATS / sizeof PATCH_FORMATS[0]), "rest",
        "mode", "server", "documentation", doc, "resource", types, "interaction", sys);
    json_t *rest0 = json_array_get(json_object_get(cap, "rest"), 0);
    if (rest0 && json_array_size(sops))
        json_object_set_new(rest0, "operation", sops);
    else
        json_decref(sops);
    return cap;
}

/* Patient/$everything (GET, or POST with a Parameters body): the record's
 * Bundle, parsed to be sent in the client's format. */
static const char *op_param(const hub_fhir_op_call *call, const char *name, char *buf,
                            size_t cap) {
    if (!call->post || !call->body) return hub_http_req_query(call->req, name);
    size_t i;
    const json_t *p;
    json_array_foreach(json_object_get(call->body, "parameter"), i, p) {
        if (strcmp(json_string_value(json_object_get(p, "name")) ?: "", name) != 0) continue;
        const char *k;
        const json_t *v;
        json_object_foreach((json_t *)p, k, v) {
            if (strncmp(k, "value", 5) != 0) continue;
            if (json_is_string(v)) snprintf(buf, cap, "%s", json_string_value(v));
            else if (json_is_integer(v)) snprintf(buf, cap, "%lld", (long long)json_integer_value(v));
            else continue;
            return buf;
        }
    }
    return hub_http_req_query(call->req, name);
}

static void op_everything(void *ud, const hub_fhir_op_call *call, hub_fhir_op_result *res) {
    hub_http_fhir *f = ud;
    char since[64], types[1024], count[32];
    const char *cnt = op_param(call, "_count", count, sizeof count);
    hub_everything_req er = {.id = call->id,
                             .since = op_param(call, "_since", since, sizeof since),
                             .types = op_param(call, "_type", types, sizeof types),
                             .count = cnt ? atoi(cnt) : 0,
                             .cursor = hub_http_req_query(call->req, "_cursor"),
                             .base = call->base};
    if (cnt && (er.count < 0 || !*cnt || strspn(cnt, "0123456789") != strlen(cnt))) {
        res->outcome = hub_oo_new();
        if (res->outcome)
            hub_oo_add(res->outcome, HUB_OO_ERROR, "value", "_count", "_count must be a number >= 0");
        res->status = 400;
        return;
    }
    hub_buf out;
    hub_buf_init(&out);
    int st = 200;
    hub_oo *oo = NULL;
    hub_err err;
    hub_err_clear(&err);
    hub_status rc = hub_record_everything(f->rec, &er, &out, &st, &oo, &err);
    if (rc) {
        HUB_LOG_WARN("fhir", "$everything failed rc=%s err='%s'", hub_status_name(rc), err.msg);
        res->status = 500;
    } else if (st != 200) {
        res->status = st;
        res->outcome = oo;
        oo = NULL;
    } else {
        json_error_t je;
        res->body = json_loadb(out.p, out.n, 0, &je);
        if (!res->body) res->status = 500;
    }
    hub_oo_free(oo);
    hub_buf_release(&out);
}

hub_status hub_http_add_fhir_routes(hub_http_server *s, const hub_http_fhir_cfg *c,
                                    hub_http_fhir **out, hub_err *err) {
    hub_http_fhir *f = hub_calloc(1, sizeof *f);
    if (f == NULL) return hub_err_set(err, HUB_E_NOMEM, "fhir", "out of memory");
    f->rec = c->record;
    f->defs = c->defs;
    f->max_bundle_entries = c->max_bundle_entries;
    f->auth = c->auth;
    f->enforce = c->enforce && c->auth;
    f->audit = c->audit;
    f->max_search_params = c->max_search_params > 0 ? c->max_search_params : 64;
    f->max_includes = c->max_includes > 0 ? c->max_includes : 16;
    f->max_count = c->max_count > 0 ? c->max_count : 1000;
    snprintf(f->base, sizeof f->base, "%s", c->base_url ? c->base_url : "");
    size_t bl = strlen(f->base);
    while (bl && f->base[bl - 1] == '/') f->base[--bl] = '\0';
    pthread_mutex_init(&f->cap_mu, NULL);
    if (hub_http_route_raw(s, NULL, BASE_PATH, on_fhir, f) != HUB_OK ||
        hub_http_route_raw(s, NULL, BASE_PATH "/", on_fhir, f) != HUB_OK) {
        hub_http_fhir_free(f);
        return hub_err_set(err, HUB_E_LIMIT, "fhir", "too many routes");
    }
    if (f->rec && hub_record_sps(f->rec))
        hub_http_fhir_add_op(f, "Patient", "everything", HUB_OP_INSTANCE, false,
                             "http://hl7.org/fhir/OperationDefinition/Patient-everything",
                             op_everything, f);
    *out = f;
    return HUB_OK;
}

void hub_http_fhir_free(hub_http_fhir *f) {
    if (f == NULL) return;
    json_decref(f->cap);
    hub_free(f->cap_text);
    pthread_mutex_destroy(&f->cap_mu);
    hub_free(f);
}

const char *hub_http_fhir_capabilities(hub_http_fhir *f) {
    return cap_ready(f) ? f->cap_text : NULL;
}
