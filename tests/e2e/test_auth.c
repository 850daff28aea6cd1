/* Security end to end over real sockets against a spawned `hub serve --auth`:
 * SMART Backend Services token requests with client assertions made by a
 * real JWT library (npm jose, tests/e2e/node/smart_client.mjs), 401/403,
 * the scope matrix (every scope form x every interaction), what searches
 * reveal, patient-restricted tokens, the audit trail at /fhir/AuditEvent
 * and over syslog (UDP and TCP), and the limits (rate, body, search,
 * connections per client, slow clients). */
#include "fhir_test.h"
#include "hub_test.h"
#include "mllp_test.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define NODE_DIR HUB_SOURCE_DIR "/tests/e2e/node"

static const char *node_bin(void) {
    static const char *const cands[] = {"/usr/bin/node", "/usr/local/bin/node", NULL};
    for (int i = 0; cands[i]; i++)
        if (access(cands[i], X_OK) == 0) return cands[i];
    return NULL;
}

static void need_jose(void) {
    if (node_bin() == NULL) cr_skip("node is not installed: the SMART client tests need it");
    if (access(NODE_DIR "/node_modules/jose/package.json", R_OK) != 0)
        cr_skip("npm jose is not installed (npm ci in tests/e2e/node)");
}

/* A key pair for a client in a fresh directory (kept in `dir`). */
static void make_keys(const char *alg, char dir[256]) {
    hub_test_tmpdir(dir);
    const char *argv[] = {node_bin(), NODE_DIR "/smart_client.mjs", "keys", alg, dir, NULL};
    hub_buf out, err;
    hub_buf_init(&out);
    hub_buf_init(&err);
    cr_assert_eq(hub_test_run(argv, NULL, &out, &err), 0, "%s", err.p ? err.p : "");
    hub_buf_release(&out);
    hub_buf_release(&err);
}

static int run_hub(const char *const *args, hub_buf *out) {
    hub_buf err;
    hub_buf_init(out);
    hub_buf_init(&err);
    int rc = hub_test_run(args, NULL, out, &err);
    hub_buf_append(out, err.p, err.n);
    hub_buf_append(out, "", 1);
    out->n--;
    hub_buf_release(&err);
    return rc;
}

/* `hub clients add` against the running hub's data directory. */
static void add_client(hub_test_hub *h, const char *name, const char *keydir, const char *scope,
                       const char *patient) {
    char jwks[300];
    snprintf(jwks, sizeof jwks, "%s/jwks.json", keydir);
    const char *argv[] = {HUB_BIN, "clients", "add",     name,    "--jwks",  jwks, "--scope",
                          scope,   "--data",  h->dir,    patient ? "--patient" : NULL, patient,
                          NULL};
    hub_buf out;
    cr_assert_eq(run_hub(argv, &out), 0, "%s", out.p);
    hub_buf_release(&out);
}

/* A client assertion from jose. exp_s: seconds from now. */
static char *assertion(const char *keydir, const char *client, const char *aud, const char *jti,
                       int exp_s, const char *iss) {
    char exp[16];
    snprintf(exp, sizeof exp, "%d", exp_s);
    char jid[64];
    static int seq;
    if (jti == NULL) {
        snprintf(jid, sizeof jid, "jti-%d-%d-%lld", getpid(), ++seq, (long long)hub_now_ms());
        jti = jid;
    }
    const char *argv[] = {node_bin(), NODE_DIR "/smart_client.mjs", "assert", keydir, client,
                          aud,        jti,  exp,     iss ? iss : client,   NULL};
    hub_buf out, err;
    hub_buf_init(&out);
    hub_buf_init(&err);
    cr_assert_eq(hub_test_run(argv, NULL, &out, &err), 0, "%s", err.p ? err.p : "");
    hub_buf_release(&err);
    hub_buf_append(&out, "", 1);
    return out.p;
}

static char aud_buf[128];
static const char *aud_of(hub_test_hub *h) {
    snprintf(aud_buf, sizeof aud_buf, "http://127.0.0.1:%d/auth/token", h->http_port);
    return aud_buf;
}

/* POST /auth/token; returns the status, body in resp. */
static int token_request(hub_test_hub *h, const char *jwt, const char *scope, const char *grant,
                         hub_buf *resp) {
    hub_buf body;
    hub_buf_init(&body);
    hub_buf_printf(&body,
                   "grant_type=%s&client_assertion_type=urn%%3Aietf%%3Aparams%%3Aoauth%%3A"
                   "client-assertion-type%%3Ajwt-bearer&client_assertion=%s&scope=",
                   grant ? grant : "client_credentials", jwt);
    for (const char *p = scope; *p; p++) {
        if (*p == ' ') hub_buf_append_cstr(&body, "+");
        else if (*p == '/') hub_buf_append_cstr(&body, "%2F");
        else if (*p == '*') hub_buf_append_cstr(&body, "%2A");
        else hub_buf_append(&body, p, 1);
    }
    hub_buf_init(resp);
    int st = hub_test_http(h->http_port, "POST", "/auth/token", "application/x-www-form-urlencoded",
                           body.p, body.n, resp, NULL);
    hub_buf_append(resp, "", 1);
    resp->n--;
    hub_buf_release(&body);
    return st;
}

/* A granted access token (heap). */
static char *token(hub_test_hub *h, const char *keydir, const char *client, const char *scope) {
    char *jwt = assertion(keydir, client, aud_of(h), NULL, 240, NULL);
    hub_buf r;
    int st = token_request(h, jwt, scope, NULL, &r);
    cr_assert_eq(st, 200, "token: %d %s", st, r.p);
    json_t *j = json_loads(r.p, 0, NULL);
    char *t = hub_strdup(json_string_value(json_object_get(j, "access_token")));
    json_decref(j);
    hub_buf_release(&r);
    hub_free(jwt);
    return t;
}

/* One FHIR request with a token (NULL: none). */
static int req(hub_test_hub *h, const char *method, const char *path, const char *tok,
               const char *ctype, const char *body, hub_buf *resp, hub_buf *hdrs) {
    char hd[2048] = "";
    size_t n = 0;
    if (tok) n += (size_t)snprintf(hd + n, sizeof hd - n, "Authorization: Bearer %s\r\n", tok);
    if (ctype) snprintf(hd + n, sizeof hd - n, "Content-Type: %s\r\n", ctype);
    if (resp) hub_buf_init(resp);
    int st = hub_test_http_raw(h->http_port, method, path, hd, body, body ? strlen(body) : 0, resp,
                               hdrs);
    if (resp) {
        hub_buf_append(resp, "", 1);
        resp->n--;
    }
    return st;
}

static char *create(hub_test_hub *h, const char *tok, const char *type, const char *json) {
    char path[128];
    snprintf(path, sizeof path, "/fhir/%s", type);
    hub_buf r;
    int st = req(h, "POST", path, tok, "application/fhir+json", json, &r, NULL);
    cr_assert_eq(st, 201, "create %s: %d %s", type, st, r.p);
    json_t *j = json_loads(r.p, 0, NULL);
    char *id = hub_strdup(json_string_value(json_object_get(j, "id")));
    json_decref(j);
    hub_buf_release(&r);
    return id;
}

static hub_test_hub H;
static char K_RS[256], K_ES[256];

static void start(const char *const *more) {
    need_jose();
    const char *extra[24] = {"--auth", NULL};
    int n = 1;
    for (int i = 0; more && more[i]; i++) extra[n++] = more[i];
    extra[n] = NULL;
    memset(&H, 0, sizeof H);
    hub_test_start(&H, extra);
    make_keys("RS384", K_RS);
    add_client(&H, "admin", K_RS, "system/*.cruds admin", NULL);
}

static void stop(void) {
    hub_test_stop(&H);
    if (K_RS[0]) hub_test_rmtree(K_RS);
    if (K_ES[0]) hub_test_rmtree(K_ES);
    K_RS[0] = K_ES[0] = '\0';
}

static void up(void) { start(NULL); }

/* ---- tokens ------------------------------------------------------------------------ */

Test(e2e_auth, rs384_and_es384_tokens_open_the_api, .init = up, .fini = stop) {
    hub_buf r, r2, hd;
    hub_buf_init(&hd);
    /* No token: 401 with a challenge; metadata and the SMART document are open. */
    cr_assert_eq(req(&H, "GET", "/fhir/Patient", NULL, NULL, NULL, &r, &hd), 401);
    cr_assert(strcasestr(hd.p, "WWW-Authenticate: Bearer realm=\"hub\"") != NULL, "%s", hd.p);
    cr_assert(strstr(r.p, "OperationOutcome") != NULL);
    hub_buf_release(&r);
    hub_buf_release(&hd);
    cr_assert_eq(req(&H, "GET", "/fhir/metadata", NULL, NULL, NULL, NULL, NULL), 200);
    cr_assert_eq(req(&H, "GET", "/fhir/.well-known/smart-configuration", NULL, NULL, NULL, &r, NULL),
                 200);
    json_t *sc = json_loads(r.p, 0, NULL);
    cr_assert_str_eq(json_string_value(json_object_get(sc, "token_endpoint")), aud_of(&H));
    cr_assert(strstr(r.p, "\"ES384\"") && strstr(r.p, "client-confidential-asymmetric"));
    json_decref(sc);
    hub_buf_release(&r);
    /* A bad token: 401 invalid_token. */
    hub_buf_init(&hd);
    cr_assert_eq(req(&H, "GET", "/fhir/Patient", "h1.Zm9v.YmFy", NULL, NULL, NULL, &hd), 401);
    cr_assert(strstr(hd.p, "error=\"invalid_token\"") != NULL, "%s", hd.p);
    hub_buf_release(&hd);

    char *t = token(&H, K_RS, "admin", "system/*.cruds");
    cr_assert_eq(req(&H, "GET", "/fhir/Patient", t, NULL, NULL, NULL, NULL), 200);
    hub_free(t);
    make_keys("ES384", K_ES);
    add_client(&H, "es", K_ES, "system/Patient.read", NULL);
    char *jwt = assertion(K_ES, "es", aud_of(&H), NULL, 240, NULL);
    cr_assert_eq(token_request(&H, jwt, "system/Patient.read system/Observation.read", NULL, &r), 200,
                 "%s", r.p);
    json_t *j = json_loads(r.p, 0, NULL);
    cr_assert_str_eq(json_string_value(json_object_get(j, "scope")), "system/Patient.read");
    cr_assert_str_eq(json_string_value(json_object_get(j, "token_type")), "bearer");
    cr_assert_eq(json_integer_value(json_object_get(j, "expires_in")), 300);
    const char *es_tok = json_string_value(json_object_get(j, "access_token"));
    cr_assert_eq(req(&H, "GET", "/fhir/Patient", es_tok, NULL, NULL, NULL, NULL), 200);
    /* Not enough scope: 403, an OperationOutcome and the RFC 6750 challenge. */
    hub_buf_init(&hd);
    cr_assert_eq(req(&H, "GET", "/fhir/Observation", es_tok, NULL, NULL, &r2, &hd), 403);
    cr_assert(strstr(r2.p, "\"OperationOutcome\"") && strstr(r2.p, "\"forbidden\""), "%s", r2.p);
    cr_assert(strcasestr(hd.p, "WWW-Authenticate: Bearer realm=\"hub\", "
                               "error=\"insufficient_scope\"") != NULL, "%s", hd.p);
    hub_buf_release(&hd);
    hub_buf_release(&r2);
    json_decref(j);
    hub_buf_release(&r);
    hub_free(jwt);
}

Test(e2e_auth, token_requests_refused, .init = up, .fini = stop) {
    hub_buf r;
    const char *aud = aud_of(&H);
    /* replayed jti */
    char *jwt = assertion(K_RS, "admin", aud, "once", 240, NULL);
    cr_assert_eq(token_request(&H, jwt, "system/*.rs", NULL, &r), 200, "%s", r.p);
    hub_buf_release(&r);
    cr_assert_eq(token_request(&H, jwt, "system/*.rs", NULL, &r), 400);
    cr_assert(strstr(r.p, "\"invalid_grant\"") && strstr(r.p, "jti already used"), "%s", r.p);
    hub_buf_release(&r);
    hub_free(jwt);
    struct {
        const char *aud, *client, *iss, *grant, *scope;
        int exp, status;
        const char *error;
    } cases[] = {
        {"http://elsewhere/auth/token", "admin", NULL, NULL, "system/*.rs", 240, 401, "aud must be"},
        {NULL, "admin", NULL, NULL, "system/*.rs", -30, 401, "expired"},
        {NULL, "admin", NULL, NULL, "system/*.rs", 3600, 401, "too far"},
        {NULL, "nobody", NULL, NULL, "system/*.rs", 240, 401, "unknown client"},
        {NULL, "admin", "someone-else", NULL, "system/*.rs", 240, 401, "iss and sub"},
        {NULL, "admin", NULL, "password", "system/*.rs", 240, 400, "unsupported_grant_type"},
        {NULL, "admin", NULL, NULL, "patient/Observation.rs", 240, 400, "invalid_scope"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        jwt = assertion(K_RS, cases[i].client, cases[i].aud ? cases[i].aud : aud, NULL, cases[i].exp,
                        cases[i].iss);
        int st = token_request(&H, jwt, cases[i].scope, cases[i].grant, &r);
        cr_assert_eq(st, cases[i].status, "case %zu: %d %s", i, st, r.p);
        cr_assert(strstr(r.p, cases[i].error) != NULL, "case %zu: %s", i, r.p);
        cr_assert(strstr(r.p, "access_token") == NULL);
        hub_buf_release(&r);
        hub_free(jwt);
    }
    /* Signed by a key the client did not register. */
    make_keys("ES384", K_ES);
    jwt = assertion(K_ES, "admin", aud, NULL, 240, NULL);
    cr_assert_eq(token_request(&H, jwt, "system/*.rs", NULL, &r), 401);
    cr_assert(strstr(r.p, "invalid_client"), "%s", r.p);
    hub_buf_release(&r);
    hub_free(jwt);
    /* Not a form at all. */
    cr_assert_eq(hub_test_http(H.http_port, "POST", "/auth/token", "application/json", "{}", 2, NULL,
                               NULL),
                 400);
    cr_assert_eq(hub_test_http(H.http_port, "GET", "/auth/token", NULL, NULL, 0, NULL, NULL), 405);
}

Test(e2e_auth, running_hub_sees_new_and_revoked_clients, .init = up, .fini = stop) {
    make_keys("ES384", K_ES);
    char *jwt = assertion(K_ES, "late", aud_of(&H), NULL, 240, NULL);
    hub_buf r;
    cr_assert_eq(token_request(&H, jwt, "system/Patient.rs", NULL, &r), 401);
    hub_buf_release(&r);
    hub_free(jwt);
    add_client(&H, "late", K_ES, "system/Patient.rs", NULL);
    char *t = token(&H, K_ES, "late", "system/Patient.rs");
    cr_assert_eq(req(&H, "GET", "/fhir/Patient", t, NULL, NULL, NULL, NULL), 200);
    const char *argv[] = {HUB_BIN, "clients", "revoke", "late", "--data", H.dir, NULL};
    hub_buf out;
    cr_assert_eq(run_hub(argv, &out), 0, "%s", out.p);
    hub_buf_release(&out);
    const char *list[] = {HUB_BIN, "clients", "list", "--data", H.dir, NULL};
    cr_assert_eq(run_hub(list, &out), 0, "%s", out.p);
    cr_assert(strstr(out.p, "late") && strstr(out.p, "revoked"), "%s", out.p);
    cr_assert(strstr(out.p, "\"kty\"") == NULL, "the list shows no key material");
    hub_buf_release(&out);
    /* Its token stops working within the revocation check interval. */
    usleep(1200 * 1000);
    cr_assert_eq(req(&H, "GET", "/fhir/Patient", t, NULL, NULL, NULL, NULL), 401);
    jwt = assertion(K_ES, "late", aud_of(&H), NULL, 240, NULL);
    cr_assert_eq(token_request(&H, jwt, "system/Patient.rs", NULL, &r), 401);
    cr_assert(strstr(r.p, "revoked"), "%s", r.p);
    hub_buf_release(&r);
    hub_free(jwt);
    hub_free(t);
    /* Bad registrations are refused with a reason, nothing stored. */
    const char *bad[] = {HUB_BIN, "clients", "add", "bad name", "--jwks", "/nonexistent", "--scope",
                         "system/*.rs", "--data", H.dir, NULL};
    cr_assert_eq(run_hub(bad, &out), 2);
    hub_buf_release(&out);
}

/* ---- the scope matrix ----------------------------------------------------------------- */

/* Every scope form against every interaction on Observation (the type the
 * scope names), plus the same interactions on Patient (a type it does not
 * name, except for the wildcard forms). */
Test(e2e_auth, scope_matrix, .init = up, .fini = stop) {
    char *admin = token(&H, K_RS, "admin", "system/*.cruds");
    char *pat = create(&H, admin, "Patient", "{\"resourceType\":\"Patient\",\"active\":true}");
    char obs_json[512];
    snprintf(obs_json, sizeof obs_json,
             "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"x\"},"
             "\"subject\":{\"reference\":\"Patient/%s\"}}",
             pat);
    char *obs = create(&H, admin, "Observation", obs_json);
    struct {
        const char *scope;
        unsigned perms; /* c r u d s */
        bool wildcard;
    } forms[] = {
        {"system/Observation.read", 2 | 16, false},  {"system/Observation.write", 1 | 4 | 8, false},
        {"system/Observation.*", 31, false},         {"system/Observation.rs", 2 | 16, false},
        {"system/Observation.r", 2, false},          {"system/Observation.s", 16, false},
        {"system/Observation.c", 1, false},          {"system/Observation.cud", 1 | 4 | 8, false},
        {"system/Observation.cruds", 31, false},     {"system/*.read", 2 | 16, true},
        {"system/*.rs", 2 | 16, true},               {"system/*.cruds", 31, true},
        {"system/*.write", 1 | 4 | 8, true},
    };
    add_client(&H, "m", K_RS,
               "system/Observation.* system/Observation.cruds system/*.cruds", NULL);
    for (size_t f = 0; f < sizeof forms / sizeof forms[0]; f++) {
        char *t = token(&H, K_RS, "m", forms[f].scope);
        for (int on_patient = 0; on_patient < 2; on_patient++) {
            const char *type = on_patient ? "Patient" : "Observation";
            const char *id = on_patient ? pat : obs;
            unsigned p = on_patient && !forms[f].wildcard ? 0 : forms[f].perms;
            char path[256], body[512];
            struct {
                const char *name, *method;
                char path[256];
                const char *ctype;
                const char *body;
                unsigned need;
            } it[10];
            int n = 0;
#define IT(nm, m, need_, ct, b, ...)                                                               \
    do {                                                                                           \
        it[n].name = nm;                                                                           \
        it[n].method = m;                                                                          \
        snprintf(it[n].path, sizeof it[n].path, __VA_ARGS__);                                      \
        it[n].ctype = ct;                                                                          \
        it[n].body = b;                                                                            \
        it[n].need = need_;                                                                        \
        n++;                                                                                       \
    } while (0)
            snprintf(body, sizeof body,
                     on_patient ? "{\"resourceType\":\"Patient\",\"id\":\"%s\",\"active\":false}"
                                : "{\"resourceType\":\"Observation\",\"id\":\"%s\",\"status\":"
                                  "\"amended\",\"code\":{\"text\":\"x\"}}",
                     id);
            IT("read", "GET", 2, NULL, NULL, "/fhir/%s/%s", type, id);
            IT("vread", "GET", 2, NULL, NULL, "/fhir/%s/%s/_history/1", type, id);
            IT("history-instance", "GET", 2, NULL, NULL, "/fhir/%s/%s/_history", type, id);
            IT("history-type", "GET", 2, NULL, NULL, "/fhir/%s/_history", type);
            IT("search", "GET", 16, NULL, NULL, "/fhir/%s?_id=%s", type, id);
            IT("search-post", "POST", 16, "application/x-www-form-urlencoded", "_count=1",
               "/fhir/%s/_search", type);
            IT("create", "POST", 1, "application/fhir+json",
               on_patient ? "{\"resourceType\":\"Patient\"}"
                          : "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"y\"}}",
               "/fhir/%s", type);
            IT("update", "PUT", 4, "application/fhir+json", body, "/fhir/%s/%s", type, id);
            IT("patch", "PATCH", 4, "application/json-patch+json",
               "[{\"op\":\"test\",\"path\":\"/id\",\"value\":\"nomatch\"}]", "/fhir/%s/%s", type, id);
            IT("delete", "DELETE", 8, NULL, NULL, "/fhir/%s/nonexistent-%zu", type, f);
            for (int i = 0; i < n; i++) {
                hub_buf r;
                int st = req(&H, it[i].method, it[i].path, t, it[i].ctype, it[i].body, &r, NULL);
                bool allowed = (p & it[i].need) == it[i].need;
                if (allowed)
                    cr_assert(st != 403 && st != 401 && st < 500, "%s %s %s: %d %s", forms[f].scope,
                              type, it[i].name, st, r.p);
                else
                    cr_assert_eq(st, 403, "%s %s %s: %d %s", forms[f].scope, type, it[i].name, st,
                                 r.p);
                hub_buf_release(&r);
            }
            /* transaction: an entry the scope does not allow refuses the whole Bundle */
            snprintf(path, sizeof path,
                     "{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":[{\"request\":"
                     "{\"method\":\"GET\",\"url\":\"%s/%s\"}}]}",
                     type, id);
            hub_buf r;
            int st = req(&H, "POST", "/fhir", t, "application/fhir+json", path, &r, NULL);
            if (p & 2) cr_assert_eq(st, 200, "%s %s transaction: %d %s", forms[f].scope, type, st, r.p);
            else cr_assert_eq(st, 403, "%s %s transaction: %d %s", forms[f].scope, type, st, r.p);
            hub_buf_release(&r);
            /* system history needs a wildcard read */
            st = req(&H, "GET", "/fhir/_history", t, NULL, NULL, NULL, NULL);
            cr_assert_eq(st, forms[f].wildcard && (forms[f].perms & 2) ? 200 : 403, "%s history: %d",
                         forms[f].scope, st);
        }
        hub_free(t);
    }
    hub_free(obs);
    hub_free(pat);
    hub_free(admin);
}

/* ---- what searches reveal --------------------------------------------------------------- */

Test(e2e_auth, includes_chains_and_has_respect_scopes, .init = up, .fini = stop) {
    char *admin = token(&H, K_RS, "admin", "system/*.cruds");
    char *pat = create(&H, admin, "Patient",
                       "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Secretname\"}]}");
    char oj[400];
    snprintf(oj, sizeof oj,
             "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"x\"},"
             "\"subject\":{\"reference\":\"Patient/%s\"}}",
             pat);
    hub_free(create(&H, admin, "Observation", oj));
    add_client(&H, "obs", K_RS, "system/Observation.rs", NULL);
    char *t = token(&H, K_RS, "obs", "system/Observation.rs");
    hub_buf r;
    /* The admin sees the Patient come in with _include ... */
    cr_assert_eq(req(&H, "GET", "/fhir/Observation?_include=Observation:subject", admin, NULL, NULL,
                     &r, NULL),
                 200);
    cr_assert(strstr(r.p, "Secretname") != NULL, "%s", r.p);
    hub_buf_release(&r);
    /* ... the Observation-only token does not. */
    cr_assert_eq(req(&H, "GET", "/fhir/Observation?_include=Observation:subject", t, NULL, NULL, &r,
                     NULL),
                 200);
    cr_assert(strstr(r.p, "Secretname") == NULL, "%s", r.p);
    cr_assert(strstr(r.p, "\"Observation\"") != NULL, "%s", r.p);
    hub_buf_release(&r);
    char path[200];
    snprintf(path, sizeof path, "/fhir/Patient?_id=%s&_revinclude=Observation:subject", pat);
    cr_assert_eq(req(&H, "GET", path, t, NULL, NULL, NULL, NULL), 403); /* no Patient scope */
    /* A chain into Patient, or a _has from it, searches Patient. */
    cr_assert_eq(req(&H, "GET", "/fhir/Observation?subject:Patient.name=Secretname", t, NULL, NULL,
                     &r, NULL),
                 403);
    cr_assert(strstr(r.p, "Secretname") == NULL);
    hub_buf_release(&r);
    cr_assert_eq(req(&H, "GET", "/fhir/Observation?subject.name=Secretname", t, NULL, NULL, NULL, NULL),
                 403);
    cr_assert_eq(req(&H, "GET", "/fhir/Observation?subject:Patient.name=Secretname", admin, NULL,
                     NULL, NULL, NULL),
                 200);
    add_client(&H, "pat", K_RS, "system/Patient.rs", NULL);
    char *tp = token(&H, K_RS, "pat", "system/Patient.rs");
    cr_assert_eq(req(&H, "GET", "/fhir/Patient?_has:Observation:subject:code=x", tp, NULL, NULL, NULL,
                     NULL),
                 403);
    /* $everything needs every type. */
    snprintf(path, sizeof path, "/fhir/Patient/%s/$everything", pat);
    int st = req(&H, "GET", path, tp, NULL, NULL, NULL, NULL);
    cr_assert_eq(st, 403, "%d", st);
    hub_free(tp);
    hub_free(t);
    hub_free(pat);
    hub_free(admin);
}

/* ---- patient-restricted tokens ------------------------------------------------------------ */

Test(e2e_auth, patient_restricted_token_sees_its_patient_only, .init = up, .fini = stop) {
    char *admin = token(&H, K_RS, "admin", "system/*.cruds");
    char *p1 = create(&H, admin, "Patient", "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"One\"}]}");
    char *p2 = create(&H, admin, "Patient", "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Two\"}]}");
    char oj[400];
    snprintf(oj, sizeof oj,
             "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"one\"},"
             "\"subject\":{\"reference\":\"Patient/%s\"}}",
             p1);
    char *o1 = create(&H, admin, "Observation", oj);
    snprintf(oj, sizeof oj,
             "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"two\"},"
             "\"subject\":{\"reference\":\"Patient/%s\"}}",
             p2);
    char *o2 = create(&H, admin, "Observation", oj);
    add_client(&H, "app", K_RS, "patient/*.cruds", p1);
    char *jwt = assertion(K_RS, "app", aud_of(&H), NULL, 240, NULL);
    hub_buf r;
    cr_assert_eq(token_request(&H, jwt, "patient/*.cruds", NULL, &r), 200, "%s", r.p);
    json_t *j = json_loads(r.p, 0, NULL);
    cr_assert_str_eq(json_string_value(json_object_get(j, "patient")), p1);
    char *t = hub_strdup(json_string_value(json_object_get(j, "access_token")));
    json_decref(j);
    hub_buf_release(&r);
    hub_free(jwt);
    char path[200];
    snprintf(path, sizeof path, "/fhir/Patient/%s", p1);
    cr_assert_eq(req(&H, "GET", path, t, NULL, NULL, NULL, NULL), 200);
    snprintf(path, sizeof path, "/fhir/Patient/%s", p2);
    cr_assert_eq(req(&H, "GET", path, t, NULL, NULL, NULL, NULL), 403);
    snprintf(path, sizeof path, "/fhir/Observation/%s", o1);
    cr_assert_eq(req(&H, "GET", path, t, NULL, NULL, NULL, NULL), 200);
    snprintf(path, sizeof path, "/fhir/Observation/%s", o2);
    cr_assert_eq(req(&H, "GET", path, t, NULL, NULL, &r, NULL), 403);
    cr_assert(strstr(r.p, "two") == NULL);
    hub_buf_release(&r);
    /* Searches are its compartment: one Observation, one Patient. */
    cr_assert_eq(req(&H, "GET", "/fhir/Observation", t, NULL, NULL, &r, NULL), 200);
    cr_assert(strstr(r.p, o1) && !strstr(r.p, o2), "%s", r.p);
    hub_buf_release(&r);
    cr_assert_eq(req(&H, "GET", "/fhir/Patient", t, NULL, NULL, &r, NULL), 200);
    cr_assert(strstr(r.p, "One") && !strstr(r.p, "Two"), "%s", r.p);
    hub_buf_release(&r);
    snprintf(path, sizeof path, "/fhir/Patient/%s/Observation", p2);
    cr_assert_eq(req(&H, "GET", path, t, NULL, NULL, NULL, NULL), 403);
    cr_assert_eq(req(&H, "GET", "/fhir/_history", t, NULL, NULL, NULL, NULL), 403);
    /* Writes: only into its own compartment. */
    snprintf(oj, sizeof oj,
             "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"w\"},"
             "\"subject\":{\"reference\":\"Patient/%s\"}}",
             p2);
    cr_assert_eq(req(&H, "POST", "/fhir/Observation", t, "application/fhir+json", oj, NULL, NULL), 403);
    snprintf(oj, sizeof oj,
             "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"w\"},"
             "\"subject\":{\"reference\":\"Patient/%s\"}}",
             p1);
    cr_assert_eq(req(&H, "POST", "/fhir/Observation", t, "application/fhir+json", oj, NULL, NULL), 201);
    snprintf(path, sizeof path, "/fhir/Observation/%s", o2);
    cr_assert_eq(req(&H, "DELETE", path, t, NULL, NULL, NULL, NULL), 403);
    cr_assert_eq(req(&H, "POST", "/fhir", t, "application/fhir+json",
                     "{\"resourceType\":\"Bundle\",\"type\":\"batch\",\"entry\":[]}", NULL, NULL),
                 403);
    hub_free(t);
    hub_free(o1);
    hub_free(o2);
    hub_free(p1);
    hub_free(p2);
    hub_free(admin);
}

/* ---- the audit trail ----------------------------------------------------------------------- */

Test(e2e_auth, audit_trail_at_fhir_auditevent, .init = up, .fini = stop) {
    char *admin = token(&H, K_RS, "admin", "system/*.cruds admin");
    char *pat = create(&H, admin, "Patient",
                       "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Auditname\"}]}");
    char path[200];
    snprintf(path, sizeof path, "/fhir/Patient/%s", pat);
    cr_assert_eq(req(&H, "GET", path, admin, NULL, NULL, NULL, NULL), 200);
    cr_assert_eq(req(&H, "GET", "/fhir/Patient?name=Auditname", admin, NULL, NULL, NULL, NULL), 200);
    cr_assert_eq(req(&H, "DELETE", path, admin, NULL, NULL, NULL, NULL), 204);
    cr_assert_eq(req(&H, "GET", "/fhir/Patient", NULL, NULL, NULL, NULL, NULL), 401);
    char *jwt = assertion(K_RS, "admin", "http://wrong/auth/token", NULL, 240, NULL);
    hub_buf r;
    token_request(&H, jwt, "system/*.rs", NULL, &r);
    hub_buf_release(&r);
    hub_free(jwt);
    /* Without the admin scope: 403. */
    char *plain = token(&H, K_RS, "admin", "system/*.cruds");
    cr_assert_eq(req(&H, "GET", "/fhir/AuditEvent", plain, NULL, NULL, NULL, NULL), 403);
    cr_assert_eq(req(&H, "GET", "/fhir/AuditEvent?_count=200", admin, NULL, NULL, &r, NULL), 200);
    cr_assert(strstr(r.p, "Auditname") == NULL, "no contents in the trail");
    cr_assert(strstr(r.p, "Secret") == NULL);
    json_t *b = json_loads(r.p, 0, NULL);
    cr_assert_not_null(b, "%s", r.p);
    cr_assert_str_eq(json_string_value(json_object_get(b, "type")), "searchset");
    size_t i;
    json_t *e;
    int seen_read = 0, seen_search = 0, seen_create = 0, seen_delete = 0, seen_token = 0,
        seen_refused_token = 0, seen_401 = 0;
    char ref[128];
    snprintf(ref, sizeof ref, "Patient/%s", pat);
    json_array_foreach(json_object_get(b, "entry"), i, e) {
        json_t *ae = json_object_get(e, "resource");
        const char *sub = json_string_value(
            json_object_get(json_array_get(json_object_get(ae, "subtype"), 0), "code"));
        const char *type = json_string_value(json_object_get(json_object_get(ae, "type"), "code"));
        const char *outcome = json_string_value(json_object_get(ae, "outcome"));
        json_t *ent = json_array_get(json_object_get(ae, "entity"), 0);
        const char *what = json_string_value(json_object_get(json_object_get(ent, "what"), "reference"));
        const char *who = json_string_value(json_object_get(
            json_object_get(json_object_get(json_array_get(json_object_get(ae, "agent"), 0), "who"),
                            "identifier"),
            "value"));
        cr_assert_not_null(json_object_get(ae, "recorded"));
        cr_assert_not_null(json_object_get(ae, "source"));
        if (sub && !strcmp(sub, "read") && what && !strcmp(what, ref)) seen_read++;
        if (sub && !strcmp(sub, "search-type") && json_object_get(ent, "query")) seen_search++;
        if (sub && !strcmp(sub, "create") && what && !strcmp(what, ref) && who &&
            !strcmp(who, "admin"))
            seen_create++;
        if (sub && !strcmp(sub, "delete") && what && !strcmp(what, ref)) seen_delete++;
        if (type && !strcmp(type, "110114") && outcome && !strcmp(outcome, "0")) seen_token++;
        if (type && !strcmp(type, "110114") && outcome && !strcmp(outcome, "12") && who) seen_refused_token++;
        if (type && !strcmp(type, "110114") && outcome && !strcmp(outcome, "12") && !who) seen_401++;
    }
    cr_assert_eq(seen_read, 1, "%s", r.p);
    cr_assert_geq(seen_search, 1);
    cr_assert_eq(seen_create, 1, "%s", r.p);
    cr_assert_eq(seen_delete, 1, "%s", r.p);
    cr_assert_geq(seen_token, 2);
    cr_assert_geq(seen_refused_token, 1);
    cr_assert_geq(seen_401, 1);
    json_decref(b);
    hub_buf_release(&r);
    /* Filters: by entity and by agent, and one by id. */
    char q[200];
    snprintf(q, sizeof q, "/fhir/AuditEvent?entity=Patient/%s", pat);
    cr_assert_eq(req(&H, "GET", q, admin, NULL, NULL, &r, NULL), 200);
    b = json_loads(r.p, 0, NULL);
    cr_assert_geq(json_integer_value(json_object_get(b, "total")), 3);
    const char *id1 = json_string_value(
        json_object_get(json_object_get(json_array_get(json_object_get(b, "entry"), 0), "resource"), "id"));
    snprintf(q, sizeof q, "/fhir/AuditEvent/%s", id1);
    json_decref(b);
    hub_buf_release(&r);
    cr_assert_eq(req(&H, "GET", q, admin, NULL, NULL, &r, NULL), 200);
    cr_assert(strstr(r.p, "\"AuditEvent\""));
    hub_buf_release(&r);
    /* A DELETE is of the ordinary AuditEvent type: the trail stays. */
    req(&H, "DELETE", q, admin, NULL, NULL, NULL, NULL);
    cr_assert_eq(req(&H, "GET", q, admin, NULL, NULL, NULL, NULL), 200);
    cr_assert_eq(req(&H, "GET", "/fhir/AuditEvent/999999", admin, NULL, NULL, NULL, NULL), 404);
    hub_free(plain);
    hub_free(pat);
    hub_free(admin);
}

/* How many reads of `ref` the trail's rows hold (a grouped row counts each
 * read of it in its entity's "count" detail). */
static int64_t reads_of(const char *body, const char *ref, int *rows) {
    json_t *b = json_loads(body, 0, NULL);
    cr_assert_not_null(b, "%s", body);
    int64_t n = 0;
    size_t i, k;
    json_t *e, *ent;
    *rows = 0;
    json_array_foreach(json_object_get(b, "entry"), i, e) {
        json_t *ae = json_object_get(e, "resource");
        const char *sub = json_string_value(
            json_object_get(json_array_get(json_object_get(ae, "subtype"), 0), "code"));
        if (sub == NULL || strcmp(sub, "read") != 0) continue;
        (*rows)++;
        json_array_foreach(json_object_get(ae, "entity"), k, ent) {
            const char *what =
                json_string_value(json_object_get(json_object_get(ent, "what"), "reference"));
            if (what == NULL || strcmp(what, ref) != 0) continue;
            const char *c = json_string_value(
                json_object_get(json_array_get(json_object_get(ent, "detail"), 0), "valueString"));
            n += c ? atoll(c) : 1;
        }
    }
    json_decref(b);
    return n;
}

/* Reads are grouped per party and batch; each one is still on the record,
 * found by the id it read. */
Test(e2e_auth, every_read_is_on_the_record_when_grouped, .init = up, .fini = stop) {
    char *admin = token(&H, K_RS, "admin", "system/*.cruds admin");
    char *reader = token(&H, K_RS, "admin", "system/Patient.rs");
    char *p1 = create(&H, admin, "Patient", "{\"resourceType\":\"Patient\",\"gender\":\"male\"}");
    char *p2 = create(&H, admin, "Patient", "{\"resourceType\":\"Patient\",\"gender\":\"female\"}");
    char path[200], ref1[100], ref2[100], q[200];
    snprintf(ref1, sizeof ref1, "Patient/%s", p1);
    snprintf(ref2, sizeof ref2, "Patient/%s", p2);
    for (int i = 0; i < 7; i++) {
        snprintf(path, sizeof path, "/fhir/Patient/%s", i == 3 ? p2 : p1);
        cr_assert_eq(req(&H, "GET", path, reader, NULL, NULL, NULL, NULL), 200);
    }
    snprintf(path, sizeof path, "/fhir/Patient/%s-gone", p1);
    cr_assert_eq(req(&H, "GET", path, reader, NULL, NULL, NULL, NULL), 404);
    hub_buf r;
    int rows;
    snprintf(q, sizeof q, "/fhir/AuditEvent?entity=%s&_count=100", ref1);
    cr_assert_eq(req(&H, "GET", q, admin, NULL, NULL, &r, NULL), 200);
    cr_assert_eq(reads_of(r.p, ref1, &rows), 6, "%s", r.p);
    cr_assert_leq(rows, 6);
    cr_assert(strstr(r.p, "\"127.0.0.1\""), "%s", r.p);
    hub_buf_release(&r);
    snprintf(q, sizeof q, "/fhir/AuditEvent?entity=%s&_count=100", ref2);
    cr_assert_eq(req(&H, "GET", q, admin, NULL, NULL, &r, NULL), 200);
    cr_assert_eq(reads_of(r.p, ref2, &rows), 1, "%s", r.p);
    hub_buf_release(&r);
    /* The failed read is a row of its own outcome. */
    snprintf(q, sizeof q, "/fhir/AuditEvent?entity=%s-gone", ref1);
    cr_assert_eq(req(&H, "GET", q, admin, NULL, NULL, &r, NULL), 200);
    cr_assert(strstr(r.p, "\"outcome\":\"4\""), "%s", r.p);
    cr_assert(strstr(r.p, "\"outcome\":\"0\"") == NULL, "%s", r.p);
    hub_buf_release(&r);
    /* The client's reads are all there under its name. */
    cr_assert_eq(req(&H, "GET", "/fhir/AuditEvent?agent=admin&_count=1000", admin, NULL, NULL, &r,
                     NULL),
                 200);
    cr_assert_eq(reads_of(r.p, ref1, &rows), 6, "%s", r.p);
    hub_buf_release(&r);
    hub_free(p1);
    hub_free(p2);
    hub_free(reader);
    hub_free(admin);
}

/* An MLLP connection from an address the channel does not allow is closed
 * at once, and on the trail (batched, as a login failure: who and from
 * where, never a message). */
Test(e2e_auth, mllp_refused_by_the_allow_list_is_audited, .fini = stop) {
    char cfgdir[256], cfgp[300];
    hub_test_tmpdir(cfgdir);
    snprintf(cfgp, sizeof cfgp, "%s/hub.json", cfgdir);
    FILE *f = fopen(cfgp, "w");
    cr_assert_not_null(f);
    fputs("{\"channels\": [{\"name\": \"locked\", \"port\": 0, \"allow\": [\"10.9.9.0/24\"]}]}", f);
    fclose(f);
    const char *more[] = {"--config", cfgp, NULL};
    start(more);
    for (int i = 0; i < 3; i++) {
        int fd = hub_test_dial(H.mllp_port);
        hub_test_send_frame(fd, "MSH|^~\\&|LAB|FAC|HUB|HUB|20261125||ADT^A01^ADT_A01|REF-1|P|2.5.1\r"
                                "PID|1||M78^^^FAC^MR||SECRETNAME^JO\r");
        hub_buf ack;
        hub_buf_init(&ack);
        cr_assert_neq(hub_test_read_frame(fd, &ack, 5000), 0, "no ACK for a refused peer");
        hub_buf_release(&ack);
        close(fd);
    }
    char *admin = token(&H, K_RS, "admin", "system/*.cruds admin");
    hub_buf r;
    cr_assert_eq(req(&H, "GET", "/fhir/AuditEvent?_count=100", admin, NULL, NULL, &r, NULL), 200);
    json_t *b = json_loads(r.p, 0, NULL);
    cr_assert_not_null(b, "%s", r.p);
    int64_t refused = 0;
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(b, "entry"), i, e) {
        json_t *ae = json_object_get(e, "resource");
        json_t *ag = json_array_get(json_object_get(ae, "agent"), 0);
        const char *desc = json_string_value(json_object_get(ae, "outcomeDesc"));
        const char *ch = json_string_value(json_object_get(ag, "name"));
        const char *ip =
            json_string_value(json_object_get(json_object_get(ag, "network"), "address"));
        const char *oc = json_string_value(json_object_get(ae, "outcome"));
        if (desc == NULL || strcmp(desc, "address not allowed") != 0) continue;
        cr_assert_str_eq(ch, "locked");
        cr_assert_str_eq(ip, "127.0.0.1");
        cr_assert_str_eq(oc, "12");
        refused += ft_audit_events(ae);
    }
    cr_assert_eq(refused, 3, "%s", r.p);
    cr_assert(strstr(r.p, "SECRETNAME") == NULL);
    cr_assert(strstr(r.p, "REF-1") == NULL);
    json_decref(b);
    hub_buf_release(&r);
    hub_free(admin);
    hub_test_rmtree(cfgdir);
}

/* A rest-hook Subscription the tests write and read the secret of. */
#define SUB_X                                                                               \
    "{\"resourceType\":\"Subscription\",\"status\":\"requested\",\"reason\":\"t\","           \
    "\"criteria\":\"Observation?code=x\",\"channel\":{\"type\":\"rest-hook\","               \
    "\"endpoint\":\"https://127.0.0.1:9/hook\",\"payload\":\"application/fhir+json\"}}"

/* Secrets never reach the log, whatever its level: client assertions,
 * access tokens, a Subscription's secret, the JWKS's keys. */
Test(e2e_auth, secrets_are_never_logged, .fini = stop) {
    const char *more[] = {"--log-level", "trace", NULL};
    start(more);
    char *jwt = assertion(K_RS, "admin", aud_of(&H), NULL, 240, NULL);
    hub_buf r;
    cr_assert_eq(token_request(&H, jwt, "system/*.cruds admin", NULL, &r), 200, "%s", r.p);
    json_t *j = json_loads(r.p, 0, NULL);
    char *tok = hub_strdup(json_string_value(json_object_get(j, "access_token")));
    json_decref(j);
    hub_buf_release(&r);
    /* A replayed assertion (refused) and a bad token (401) log too. */
    cr_assert_eq(token_request(&H, jwt, "system/*.cruds", NULL, &r), 400, "%s", r.p);
    hub_buf_release(&r);
    char bad[600];
    snprintf(bad, sizeof bad, "%sX", tok);
    cr_assert_eq(req(&H, "GET", "/fhir/Patient", bad, NULL, NULL, NULL, NULL), 401);
    char *sub = create(&H, tok, "Subscription",
                       SUB_X);
    char path[160];
    snprintf(path, sizeof path, "/fhir/Subscription/%s/$secret", sub);
    cr_assert_eq(req(&H, "GET", path, tok, NULL, NULL, &r, NULL), 200, "%s", r.p);
    j = json_loads(r.p, 0, NULL);
    const char *secret = NULL;
    json_t *pa;
    size_t i;
    json_array_foreach(json_object_get(j, "parameter"), i, pa)
        if (json_string_value(json_object_get(pa, "valueString"))) secret =
            json_string_value(json_object_get(pa, "valueString"));
    cr_assert_not_null(secret, "%s", r.p);
    hub_buf lg;
    hub_buf_init(&lg);
    FILE *f = fopen(H.log, "r");
    cr_assert_not_null(f, "%s", H.log);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) hub_buf_append(&lg, buf, n);
    fclose(f);
    hub_buf_append(&lg, "", 1);
    cr_assert_gt(lg.n, 100, "an empty log proves nothing");
    cr_assert(strstr(lg.p, "token granted"), "%s", lg.p);
    /* Each secret whole, and a part long enough to be one. */
    const char *tokdot = strrchr(tok, '.');
    const char *jwtdot = strrchr(jwt, '.');
    cr_assert(strstr(lg.p, tok) == NULL, "access token in the log");
    cr_assert(tokdot && strstr(lg.p, tokdot + 1) == NULL, "token signature in the log");
    cr_assert(strstr(lg.p, jwt) == NULL, "client assertion in the log");
    cr_assert(jwtdot && strstr(lg.p, jwtdot + 1) == NULL, "assertion signature in the log");
    cr_assert(strstr(lg.p, secret) == NULL, "subscription secret in the log");
    char jwks[300];
    snprintf(jwks, sizeof jwks, "%s/jwks.json", K_RS);
    f = fopen(jwks, "r");
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    j = json_loads(buf, 0, NULL);
    const char *mod = json_string_value(json_object_get(json_array_get(json_object_get(j, "keys"), 0), "n"));
    char part[41];
    snprintf(part, sizeof part, "%s", mod ? mod : "missing");
    cr_assert(strstr(lg.p, part) == NULL, "a JWKS key in the log");
    json_decref(j);
    hub_buf_release(&lg);
    hub_buf_release(&r);
    hub_free(sub);
    hub_free(tok);
    hub_free(jwt);
}

/* A batch of grouped reads, once committed (within the batching window,
 * 200 ms), survives a kill -9 like any commit; what a crash can lose is
 * only the events queued since. */
Test(e2e_auth, grouped_reads_survive_a_crash) {
    hub_test_hub h = {0};
    hub_test_start(&h, NULL); /* local use: no tokens, audit on */
    char *p = create(&h, NULL, "Patient", "{\"resourceType\":\"Patient\",\"gender\":\"other\"}");
    char path[160], ref[120], q[200];
    snprintf(path, sizeof path, "/fhir/Patient/%s", p);
    snprintf(ref, sizeof ref, "Patient/%s", p);
    for (int i = 0; i < 5; i++) cr_assert_eq(req(&h, "GET", path, NULL, NULL, NULL, NULL, NULL), 200);
    usleep(1000 * 1000); /* several batch intervals */
    cr_assert_eq(hub_test_signal_wait(&h, 9), 128 + 9);
    hub_test_restart(&h, NULL);
    snprintf(q, sizeof q, "/fhir/AuditEvent?entity=%s&_count=100", ref);
    hub_buf r;
    int rows;
    cr_assert_eq(req(&h, "GET", q, NULL, NULL, NULL, &r, NULL), 200);
    cr_assert_eq(reads_of(r.p, ref, &rows), 5, "%s", r.p);
    hub_buf_release(&r);
    hub_free(p);
    hub_test_stop(&h);
}

Test(e2e_auth, mllp_messages_are_audited, .init = up, .fini = stop) {
    int fd = hub_test_dial(H.mllp_port);
    hub_test_send_frame(fd, "MSH|^~\\&|LAB|FAC|HUB|HUB|20261125||ADT^A01^ADT_A01|AUD-1|P|2.5.1\r"
                            "EVN|A01|20261125\rPID|1||M77^^^FAC^MR||DOE^JANE||19800101|F\rPV1|1|I\r");
    hub_buf ack;
    hub_buf_init(&ack);
    cr_assert_eq(hub_test_read_frame(fd, &ack, 10000), 0);
    close(fd);
    hub_buf_release(&ack);
    char *admin = token(&H, K_RS, "admin", "system/*.cruds admin");
    hub_buf r;
    cr_assert_eq(req(&H, "GET", "/fhir/AuditEvent?entity-type=Message", admin, NULL, NULL, &r, NULL),
                 200);
    cr_assert(strstr(r.p, "\"110107\"") && strstr(r.p, "LAB^FAC"), "%s", r.p);
    cr_assert(strstr(r.p, "DOE") == NULL);
    hub_buf_release(&r);
    /* The Patient the message made is audited as a create by the channel. */
    cr_assert_eq(req(&H, "GET", "/fhir/AuditEvent?entity-type=Patient", admin, NULL, NULL, &r, NULL),
                 200);
    cr_assert(strstr(r.p, "\"create\""), "%s", r.p);
    hub_buf_release(&r);
    /* The journal (whole messages) needs the admin scope too. */
    cr_assert_eq(req(&H, "GET", "/api/messages", NULL, NULL, NULL, NULL, NULL), 401);
    char *plain = token(&H, K_RS, "admin", "system/*.cruds");
    cr_assert_eq(req(&H, "GET", "/api/messages", plain, NULL, NULL, NULL, NULL), 403);
    cr_assert_eq(req(&H, "GET", "/api/messages", admin, NULL, NULL, &r, NULL), 200);
    cr_assert(strstr(r.p, "AUD-1"), "%s", r.p);
    hub_buf_release(&r);
    hub_free(plain);
    hub_free(admin);
}

/* ---- syslog ----------------------------------------------------------------------------------- */

static int listen_on(int type, int *port) {
    int fd = socket(AF_INET, type, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t l = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &l);
    *port = ntohs(a.sin_port);
    if (type == SOCK_STREAM) listen(fd, 4);
    return fd;
}

static void read_until(int fd, hub_buf *b, const char *want, int ms) {
    int64_t end = hub_now_ms() + ms;
    char tmp[65536];
    while (hub_now_ms() < end && (b->p == NULL || !memmem(b->p, b->n, want, strlen(want)))) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 200) <= 0) continue;
        ssize_t n = recv(fd, tmp, sizeof tmp, 0);
        if (n <= 0) break;
        hub_buf_append(b, tmp, (size_t)n);
    }
    hub_buf_append(b, "", 1);
    b->n--;
}

Test(e2e_auth_syslog, udp_and_tcp) {
    for (int tcp = 0; tcp < 2; tcp++) {
        int port;
        int lfd = listen_on(tcp ? SOCK_STREAM : SOCK_DGRAM, &port);
        char dest[64];
        snprintf(dest, sizeof dest, "%s://127.0.0.1:%d", tcp ? "tcp" : "udp", port);
        const char *more[] = {"--audit-syslog", dest, NULL};
        start(more);
        char *t = token(&H, K_RS, "admin", "system/*.cruds");
        cr_assert_eq(req(&H, "GET", "/fhir/Patient/nosuch", t, NULL, NULL, NULL, NULL), 404);
        int fd = lfd;
        if (tcp) {
            struct pollfd p = {lfd, POLLIN, 0};
            cr_assert_eq(poll(&p, 1, 5000), 1, "no syslog connection");
            fd = accept(lfd, NULL, NULL);
        }
        hub_buf b;
        hub_buf_init(&b);
        read_until(fd, &b, "nosuch", 5000);
        cr_assert(strstr(b.p, "kind=\"read\"") && strstr(b.p, "entity=\"Patient/nosuch\""), "%s",
                  b.p ? b.p : "(nothing)");
        cr_assert(strstr(b.p, "<85>1 ") || strstr(b.p, "<84>1 "), "%s", b.p);
        cr_assert(strstr(b.p, " AuditEvent [hub@32473 ") != NULL);
        if (tcp) cr_assert(b.p[0] >= '1' && b.p[0] <= '9', "octet counting: %.20s", b.p);
        cr_assert(strstr(b.p, t) == NULL, "no token in the trail");
        hub_buf_release(&b);
        if (tcp) close(fd);
        close(lfd);
        hub_free(t);
        stop();
    }
}

/* ---- limits ----------------------------------------------------------------------------------- */

Test(e2e_auth_limits, rate_body_search_connections_slow_clients) {
    const char *more[] = {"--set", "http.rate_limit=5",      "--set", "http.rate_burst=5",
                          "--set", "http.max_body=4096",      "--set", "fhir.max_search_params=3",
                          "--set", "fhir.max_includes=1",     "--set", "fhir.max_count=50",
                          "--set", "http.max_per_client=4",   "--set", "http.timeout=2",
                          NULL};
    start(more);
    char *t = token(&H, K_RS, "admin", "system/*.cruds");
    /* Search limits first (the bucket holds 5). */
    cr_assert_eq(req(&H, "GET", "/fhir/Patient?_count=51", t, NULL, NULL, NULL, NULL), 400);
    cr_assert_eq(req(&H, "GET", "/fhir/Patient?a=1&b=2&c=3&d=4", t, NULL, NULL, NULL, NULL), 400);
    cr_assert_eq(req(&H, "GET",
                     "/fhir/Observation?_include=Observation:subject&_revinclude=Provenance:target",
                     t, NULL, NULL, NULL, NULL),
                 400);
    char *big = hub_malloc(5000);
    memset(big, ' ', 4999);
    big[4999] = '\0';
    big[0] = '{';
    big[4998] = '}';
    cr_assert_eq(req(&H, "POST", "/fhir/Patient", t, "application/fhir+json", big, NULL, NULL), 413);
    hub_free(big);
    /* Rate: the sixth request in a burst is a 429 with Retry-After. */
    int st = 0;
    hub_buf hd;
    hub_buf_init(&hd);
    hub_buf rb;
    hub_buf_init(&rb);
    for (int i = 0; i < 10 && st != 429; i++) {
        hd.n = 0;
        hub_buf_release(&rb);
        st = req(&H, "GET", "/fhir/Patient?_count=1", t, NULL, NULL, &rb, &hd);
    }
    cr_assert_eq(st, 429);
    hub_buf_append(&hd, "", 1);
    cr_assert(strcasestr(hd.p, "Retry-After: ") != NULL, "%s", hd.p);
    cr_assert(strstr(rb.p, "\"OperationOutcome\"") && strstr(rb.p, "\"throttled\""), "%s", rb.p);
    hub_buf_release(&rb);
    hub_buf_release(&hd);
    /* Connections per client address: the fifth is closed at once. */
    int fds[5];
    for (int i = 0; i < 4; i++) fds[i] = hub_test_dial(H.http_port);
    usleep(200 * 1000);
    fds[4] = hub_test_dial(H.http_port);
    struct pollfd p = {fds[4], POLLIN, 0};
    cr_assert_eq(poll(&p, 1, 3000), 1, "the connection over the limit stays open");
    char c;
    cr_assert_leq(read(fds[4], &c, 1), 0);
    for (int i = 0; i < 5; i++) close(fds[i]);
    /* A slow client (half a request line, then nothing) is cut off after
     * http.timeout. */
    usleep(300 * 1000);
    int fd = hub_test_dial(H.http_port);
    cr_assert_eq(write(fd, "GET /fhir/Pat", 13), 13);
    int64_t t0 = hub_now_ms();
    p = (struct pollfd){fd, POLLIN, 0};
    cr_assert_eq(poll(&p, 1, 10000), 1, "slow client never cut off");
    cr_assert_leq(read(fd, &c, 1), 0);
    int64_t waited = hub_now_ms() - t0;
    cr_assert(waited >= 1500 && waited < 8000, "cut off after %lld ms", (long long)waited);
    close(fd);
    hub_free(t);
    stop();
}

/* ---- TLS: tokens on by default, versions ------------------------------------------------------- */

Test(e2e_auth_tls, auth_on_with_tls_and_old_versions_refused) {
    need_jose();
    char d[256];
    hub_test_tmpdir(d);
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
             "-keyout key.pem -out cert.pem -days 2 -subj /CN=localhost "
             "-addext subjectAltName=DNS:localhost >/dev/null 2>&1",
             d);
    cr_assert_eq(system(cmd), 0);
    char cert[300], key[300];
    snprintf(cert, sizeof cert, "%s/cert.pem", d);
    snprintf(key, sizeof key, "%s/key.pem", d);
    hub_test_hub h = {0};
    const char *extra[] = {"--tls-cert", cert, "--tls-key", key, NULL};
    hub_test_start(&h, extra);
    /* No token over HTTPS: 401 (auth is on because TLS is). */
    snprintf(cmd, sizeof cmd,
             "test \"$(curl -s -o /dev/null -w '%%{http_code}' --cacert %s --resolve "
             "localhost:%d:127.0.0.1 https://localhost:%d/fhir/Patient)\" = 401",
             cert, h.http_port, h.http_port);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    snprintf(cmd, sizeof cmd,
             "echo | timeout 10 openssl s_client -connect 127.0.0.1:%d -tls1_2 >/dev/null 2>&1",
             h.http_port);
    cr_assert_eq(system(cmd), 0);
    snprintf(cmd, sizeof cmd,
             "echo | timeout 10 openssl s_client -connect 127.0.0.1:%d -tls1_3 >/dev/null 2>&1",
             h.http_port);
    cr_assert_eq(system(cmd), 0);
    snprintf(cmd, sizeof cmd,
             "echo | timeout 10 openssl s_client -connect 127.0.0.1:%d -tls1_1 "
             "-cipher DEFAULT@SECLEVEL=0 >/dev/null 2>&1",
             h.http_port);
    cr_assert_neq(system(cmd), 0);
    /* --no-auth turns it off even with TLS (local testing). */
    hub_test_stop(&h);
    memset(&h, 0, sizeof h);
    const char *extra2[] = {"--tls-cert", cert, "--tls-key", key, "--no-auth", NULL};
    hub_test_start(&h, extra2);
    snprintf(cmd, sizeof cmd,
             "test \"$(curl -s -o /dev/null -w '%%{http_code}' --cacert %s --resolve "
             "localhost:%d:127.0.0.1 https://localhost:%d/fhir/Patient)\" = 200",
             cert, h.http_port, h.http_port);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    hub_test_stop(&h);
    hub_test_rmtree(d);
}

/* System search ([base]?_type=...): search rights on every type it names,
 * or on every type when it names none; included resources of other types
 * are dropped. */
Test(e2e_auth, system_search_needs_the_types_it_names, .init = up, .fini = stop) {
    char *admin = token(&H, K_RS, "admin", "system/*.cruds");
    char *pat = create(&H, admin, "Patient", "{\"resourceType\":\"Patient\",\"active\":true}");
    char obs_json[512];
    snprintf(obs_json, sizeof obs_json,
             "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"x\"},"
             "\"subject\":{\"reference\":\"Patient/%s\"}}",
             pat);
    char *obs = create(&H, admin, "Observation", obs_json);
    add_client(&H, "sys", K_RS, "system/Observation.rs", NULL);
    char *t = token(&H, K_RS, "sys", "system/Observation.rs");
    hub_buf r;
    cr_assert_eq(req(&H, "GET", "/fhir?_type=Observation", t, NULL, NULL, &r, NULL), 200, "%s",
                 r.p);
    cr_assert(strstr(r.p, obs), "%s", r.p);
    hub_buf_release(&r);
    cr_assert_eq(req(&H, "GET", "/fhir?_type=Observation,Patient", t, NULL, NULL, NULL, NULL), 403);
    cr_assert_eq(req(&H, "GET", "/fhir?_type=Patient", t, NULL, NULL, NULL, NULL), 403);
    cr_assert_eq(req(&H, "GET", "/fhir", t, NULL, NULL, NULL, NULL), 403, "every type: needs *");
    cr_assert_eq(req(&H, "POST", "/fhir/_search", t, "application/x-www-form-urlencoded", "_count=5",
                     NULL, NULL),
                 403);
    cr_assert_eq(req(&H, "POST", "/fhir/_search", t, "application/x-www-form-urlencoded",
                     "_type=Observation", NULL, NULL),
                 200);
    /* The Patient an Observation includes is not the token's to read. */
    cr_assert_eq(req(&H, "GET", "/fhir?_type=Observation&_include=Observation:subject", t, NULL,
                     NULL, &r, NULL),
                 200, "%s", r.p);
    cr_assert(strstr(r.p, "\"resourceType\":\"Patient\"") == NULL, "%s", r.p);
    hub_buf_release(&r);
    cr_assert_eq(req(&H, "GET", "/fhir?_type=Observation,Patient", admin, NULL, NULL, NULL, NULL),
                 200);
    hub_free(t);
    hub_free(admin);
    hub_free(pat);
    hub_free(obs);
}

/* A Subscription's signing secret is its owner's (the client that wrote
 * it) to read; another client with the same scopes gets 403. */
Test(e2e_auth, subscription_secret_is_the_owners, .init = up, .fini = stop) {
    add_client(&H, "own", K_RS, "system/Subscription.cruds", NULL);
    add_client(&H, "other", K_RS, "system/Subscription.cruds", NULL);
    /* Another client's token and Subscription first: the owner is the one
     * that wrote this one, not the trail's first party. */
    char *b = token(&H, K_RS, "other", "system/Subscription.cruds");
    hub_free(create(&H, b, "Subscription",
                    "{\"resourceType\":\"Subscription\",\"status\":\"requested\",\"reason\":\"o\","
                    "\"criteria\":\"Observation?code=y\",\"channel\":{\"type\":\"rest-hook\","
                    "\"endpoint\":\"https://127.0.0.1:9/hook\",\"payload\":\"application/fhir+json\"}}"));
    char *a = token(&H, K_RS, "own", "system/Subscription.cruds");
    char *sub = create(&H, a, "Subscription",
                       SUB_X);
    char path[160];
    snprintf(path, sizeof path, "/fhir/Subscription/%s/$secret", sub);
    hub_buf r;
    cr_assert_eq(req(&H, "GET", path, a, NULL, NULL, &r, NULL), 200, "%s", r.p);
    cr_assert(strstr(r.p, "\"secret\""), "%s", r.p);
    hub_buf_release(&r);
    cr_assert_eq(req(&H, "GET", path, b, NULL, NULL, &r, NULL), 403, "%s", r.p);
    cr_assert(strstr(r.p, "OperationOutcome"), "%s", r.p);
    hub_buf_release(&r);
    cr_assert_eq(req(&H, "GET", path, NULL, NULL, NULL, NULL, NULL), 401);
    hub_free(a);
    hub_free(b);
    hub_free(sub);
}

/* ---- a client bound to its TLS client certificate -------------------------------------- */

/* curl over HTTPS with a client certificate: the status; the body in out. */
static int curl_tls(int port, const char *method, const char *path, const char *cert,
                    const char *key, const char *bearer, const char *const *form, hub_buf *out) {
    const char *d = mt_tls_dir();
    char ca[300], resolve[64], url[256], auth[700];
    snprintf(ca, sizeof ca, "%s/ca.pem", d);
    snprintf(resolve, sizeof resolve, "localhost:%d:127.0.0.1", port);
    snprintf(url, sizeof url, "https://localhost:%d%s", port, path);
    const char *argv[40];
    int n = 0;
    const char *pre[] = {"/usr/bin/curl", "-s",       "-w",   "\n%{http_code}", "--cacert", ca,
                         "--resolve",     resolve,    "--cert", cert,          "--key",    key,
                         "-X",            method,     NULL};
    for (int i = 0; pre[i]; i++) argv[n++] = pre[i];
    if (bearer) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", bearer);
        argv[n++] = "-H";
        argv[n++] = auth;
    }
    for (int i = 0; form && form[i] && n < 36; i++) {
        argv[n++] = "--data-urlencode";
        argv[n++] = form[i];
    }
    argv[n++] = url;
    argv[n] = NULL;
    return hub_test_curl(argv, out);
}

static int tls_token(int port, const char *cert, const char *key, const char *client,
                     hub_buf *out) {
    char aud[128], as[4096];
    snprintf(aud, sizeof aud, "https://localhost:%d/auth/token", port);
    char *jwt = assertion(K_RS, client, aud, NULL, 240, NULL);
    snprintf(as, sizeof as, "client_assertion=%s", jwt);
    const char *form[] = {"grant_type=client_credentials",
                          "client_assertion_type=urn:ietf:params:oauth:client-assertion-type:"
                          "jwt-bearer",
                          as, "scope=system/Patient.rs", NULL};
    int st = curl_tls(port, "POST", "/auth/token", cert, key, NULL, form, out);
    hub_free(jwt);
    return st;
}

Test(e2e_auth, a_client_bound_to_its_certificate, .fini = stop) {
    const char *d = mt_tls_dir();
    cr_assert_not_null(d, "could not make test certificates with openssl");
    char srv[300], srvkey[300], ca[300], cli[300], clikey[300];
    snprintf(srv, sizeof srv, "%s/server.pem", d);
    snprintf(srvkey, sizeof srvkey, "%s/server.key", d);
    snprintf(ca, sizeof ca, "%s/ca.pem", d);
    snprintf(cli, sizeof cli, "%s/client.pem", d);
    snprintf(clikey, sizeof clikey, "%s/client.key", d);
    const char *more[] = {"--tls-cert", srv, "--tls-key", srvkey, "--tls-client-ca", ca, NULL};
    start(more); /* tokens are on: TLS is */
    char jwks[300];
    snprintf(jwks, sizeof jwks, "%s/jwks.json", K_RS);
    const char *argv[] = {HUB_BIN, "clients", "add", "bound", "--jwks", jwks, "--scope",
                          "system/Patient.rs", "--cert-subject", "CN=hub-test-client,O=Hub Test",
                          "--data", H.dir, NULL};
    hub_buf out;
    cr_assert_eq(run_hub(argv, &out), 0, "%s", out.p);
    hub_buf_release(&out);
    const char *list[] = {HUB_BIN, "clients", "list", "--data", H.dir, NULL};
    cr_assert_eq(run_hub(list, &out), 0, "%s", out.p);
    cr_assert(strstr(out.p, "cert='CN=hub-test-client,O=Hub Test'"), "%s", out.p);
    hub_buf_release(&out);
    /* With its certificate: a token, and the token works. */
    hub_buf r;
    cr_assert_eq(tls_token(H.http_port, cli, clikey, "bound", &r), 200, "%s", r.p);
    json_t *j = json_loads(r.p, 0, NULL);
    char *tok = hub_strdup(json_string_value(json_object_get(j, "access_token")));
    json_decref(j);
    hub_buf_release(&r);
    cr_assert_eq(curl_tls(H.http_port, "GET", "/fhir/Patient", cli, clikey, tok, NULL, &r), 200,
                 "%s", r.p);
    hub_buf_release(&r);
    /* Another certificate of the same CA (the server's, CN=localhost):
     * neither a token nor the use of one. */
    cr_assert_eq(tls_token(H.http_port, srv, srvkey, "bound", &r), 401, "%s", r.p);
    cr_assert(strstr(r.p, "its client certificate"), "%s", r.p);
    hub_buf_release(&r);
    cr_assert_eq(curl_tls(H.http_port, "GET", "/fhir/Patient", srv, srvkey, tok, NULL, &r), 401,
                 "%s", r.p);
    hub_buf_release(&r);
    /* An unbound client is not held to a subject. */
    cr_assert_eq(tls_token(H.http_port, srv, srvkey, "admin", &r), 200, "%s", r.p);
    hub_buf_release(&r);
    hub_free(tok);
}

/* A store an older hub wrote (auth tables of schema 1: no certificate
 * bindings) is listed, not refused: the listing opens it for writing, so
 * this version's tables are added first. */
Test(e2e_auth, clients_list_upgrades_an_older_store) {
    char dir[256];
    hub_test_tmpdir(dir);
    const char *list[] = {HUB_BIN, "clients", "list", "--data", dir, NULL};
    hub_buf out;
    cr_assert_eq(run_hub(list, &out), 0, "%s", out.p);
    hub_buf_release(&out);
    char db_path[300];
    snprintf(db_path, sizeof db_path, "%s/hub.db", dir);
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open(db_path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db,
                              "DROP TABLE auth_client_cert;"
                              "UPDATE meta SET value='1' WHERE key='schema.auth';",
                              NULL, NULL, NULL),
                 SQLITE_OK, "%s", sqlite3_errmsg(db));
    sqlite3_close(db);
    cr_assert_eq(run_hub(list, &out), 0, "%s", out.p);
    hub_buf_release(&out);
    hub_test_rmtree(dir);
}
