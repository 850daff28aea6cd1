/* The token service: POST /auth/token (SMART Backend Services), our access
 * tokens, their check on every request, /fhir/.well-known/smart-configuration,
 * and the per-client request rate.
 *
 * An access token is "h1.<payload>.<mac>": the payload (base64url) is
 * client, patient, expiry and scopes separated by 0x1f; the mac is
 * HMAC-SHA256 under a key kept in the store. Checking it costs one HMAC
 * over ~100 bytes; a per-thread cache of the last token makes a
 * keep-alive client's next request a string compare. */
#include "hub/auth.h"
#include "hub/http.h"

#include <ctype.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ASSERTION_TYPE "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#define RATE_SLOTS 1024
#define REVOKE_CHECK_MS 1000

typedef struct {
    char key[64];
    double tokens;
    int64_t last_ns;
} rate_slot;

struct hub_auth {
    hub_auth_cfg cfg;
    char token_url[256];
    unsigned char key[32];
    pthread_mutex_t rate_mu;
    rate_slot *slots;
    hub_metric *m_granted, *m_refused, *m_limited;
};

hub_audit *hub_auth_audit(hub_auth *a) { return a ? a->cfg.audit : NULL; }

hub_status hub_auth_new(const hub_auth_cfg *c, hub_auth **out, hub_err *err) {
    hub_auth *a = hub_calloc(1, sizeof *a);
    if (a == NULL) return hub_err_set(err, HUB_E_NOMEM, "auth", "out of memory");
    a->cfg = *c;
    if (a->cfg.token_ttl_s <= 0) a->cfg.token_ttl_s = 300;
    if (a->cfg.assertion_max_s <= 0) a->cfg.assertion_max_s = 300;
    if (a->cfg.burst <= 0) a->cfg.burst = a->cfg.rate > 0 ? (int)(a->cfg.rate * 2) + 1 : 1;
    snprintf(a->token_url, sizeof a->token_url, "%s", c->token_url ? c->token_url : "");
    hub_status rc = hub_auth_key_get(c->store, a->key, err);
    if (rc) {
        hub_free(a);
        return rc;
    }
    a->slots = hub_calloc(RATE_SLOTS, sizeof *a->slots);
    if (a->slots == NULL) {
        OPENSSL_cleanse(a->key, sizeof a->key);
        hub_free(a);
        return hub_err_set(err, HUB_E_NOMEM, "auth", "out of memory");
    }
    pthread_mutex_init(&a->rate_mu, NULL);
    a->m_granted = hub_metric_get(HUB_METRIC_COUNTER, "hub_auth_tokens_total",
                                  "result=\"granted\"", "Token requests by result.");
    a->m_refused = hub_metric_get(HUB_METRIC_COUNTER, "hub_auth_tokens_total",
                                  "result=\"refused\"", "Token requests by result.");
    a->m_limited = hub_metric_get(HUB_METRIC_COUNTER, "hub_http_rate_limited_total", NULL,
                                  "Requests refused with 429.");
    *out = a;
    return HUB_OK;
}

void hub_auth_free(hub_auth *a) {
    if (a == NULL) return;
    OPENSSL_cleanse(a->key, sizeof a->key);
    pthread_mutex_destroy(&a->rate_mu);
    hub_free(a->slots);
    hub_free(a);
}

/* ---- access tokens ------------------------------------------------------------- */

static void mac_of(const hub_auth *a, const char *p, size_t n, char out[44]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mn = 0;
    HMAC(EVP_sha256(), a->key, sizeof a->key, (const unsigned char *)p, n, md, &mn);
    hub_b64url_encode(md, mn, out);
}

hub_status hub_auth_issue(hub_auth *a, const char *client, const char *patient, const char *scope,
                          int64_t exp_ms, char *out, size_t cap, hub_err *err) {
    char payload[1200];
    int pn = snprintf(payload, sizeof payload, "%s\x1f%s\x1f%" PRId64 "\x1f%s", client,
                      patient ? patient : "", exp_ms, scope ? scope : "");
    if (pn < 0 || (size_t)pn >= sizeof payload)
        return hub_err_set(err, HUB_E_LIMIT, "token", "scopes too long for a token");
    char b64[1700];
    size_t bn = hub_b64url_encode((const unsigned char *)payload, (size_t)pn, b64);
    if (bn + 3 + 44 + 2 > cap) return hub_err_set(err, HUB_E_LIMIT, "token", "buffer too small");
    memcpy(out, "h1.", 3);
    memcpy(out + 3, b64, bn);
    char mac[48];
    mac_of(a, out, bn + 3, mac);
    out[bn + 3] = '.';
    memcpy(out + bn + 4, mac, strlen(mac) + 1);
    return HUB_OK;
}

typedef struct {
    char tok[1024];
    hub_auth_token t;
    int64_t checked_ms;
    const hub_auth *owner;
} tok_cache;
/* Thread-local storage, not heap: nothing to free when the thread ends. */
static _Thread_local tok_cache tcache;

typedef struct {
    bool revoked, found;
    char cert_subject[160];
} rv;

static hub_status client_state(void *ud, const hub_auth_client *c) {
    rv *r = ud;
    r->found = true;
    r->revoked = c->revoked;
    snprintf(r->cert_subject, sizeof r->cert_subject, "%s", c->cert_subject ? c->cert_subject : "");
    return HUB_OK;
}

hub_status hub_auth_check(hub_auth *a, const char *token, hub_auth_token *out, hub_err *err) {
    int64_t now = hub_now_ms();
    size_t tn = strlen(token);
    tok_cache *tc = &tcache;
    if (tc->owner == a && tn < sizeof tc->tok && memcmp(tc->tok, token, tn + 1) == 0 &&
        now < tc->t.exp_ms && now - tc->checked_ms < REVOKE_CHECK_MS) {
        memcpy(out, &tc->t, sizeof *out);
        return HUB_OK;
    }
    if (tn < 8 || tn >= 1024 || memcmp(token, "h1.", 3) != 0)
        return hub_err_set(err, HUB_E_INVALID, "token", "not a token of this server");
    const char *dot = strrchr(token, '.');
    if (dot == token + 2) return hub_err_set(err, HUB_E_INVALID, "token", "malformed token");
    char mac[48];
    mac_of(a, token, (size_t)(dot - token), mac);
    size_t ml = strlen(mac);
    if (strlen(dot + 1) != ml || CRYPTO_memcmp(mac, dot + 1, ml) != 0)
        return hub_err_set(err, HUB_E_INVALID, "token", "signature does not match");
    unsigned char pl[800];
    size_t pn;
    size_t b64n = (size_t)(dot - token - 3);
    if (b64n > 1000 || hub_b64url_decode(token + 3, b64n, pl, &pn) != HUB_OK)
        return hub_err_set(err, HUB_E_INVALID, "token", "malformed token");
    pl[pn] = '\0';
    char *f[4];
    char *p = (char *)pl;
    for (int i = 0; i < 4; i++) {
        f[i] = p;
        char *sep = i < 3 ? strchr(p, '\x1f') : NULL;
        if (i < 3 && sep == NULL) return hub_err_set(err, HUB_E_INVALID, "token", "malformed token");
        if (sep) {
            *sep = '\0';
            p = sep + 1;
        }
    }
    memset(out, 0, sizeof *out);
    size_t lc = strlen(f[0]), lp = strlen(f[1]);
    if (lc >= sizeof out->client || lp >= sizeof out->patient)
        return hub_err_set(err, HUB_E_INVALID, "token", "malformed token");
    memcpy(out->client, f[0], lc + 1);
    memcpy(out->patient, f[1], lp + 1);
    out->exp_ms = strtoll(f[2], NULL, 10);
    if (now >= out->exp_ms) return hub_err_set(err, HUB_E_INVALID, "token", "token expired");
    if (hub_scopes_parse(f[3], false, &out->scopes, err) != HUB_OK)
        return hub_err_set(err, HUB_E_INVALID, "token", "malformed scopes");
    /* A revoked client's tokens stop working within a second. */
    rv state = {0};
    hub_err e2;
    hub_status rc = hub_auth_client_get(a->cfg.store, out->client, client_state, &state, &e2);
    if (rc && rc != HUB_E_NOTFOUND) return hub_err_set(err, HUB_E_STORE, "token", "%s", e2.msg);
    if (!state.found || state.revoked)
        return hub_err_set(err, HUB_E_INVALID, "token", "client revoked");
    memcpy(out->cert_subject, state.cert_subject, sizeof out->cert_subject);
    memcpy(tc->tok, token, tn + 1);
    tc->t = *out;
    tc->checked_ms = now;
    tc->owner = a;
    return HUB_OK;
}

/* ---- rate ---------------------------------------------------------------------------- */

bool hub_auth_rate_ok(hub_auth *a, const char *key, int *retry_after_s) {
    if (a == NULL || a->cfg.rate <= 0) return true;
    uint32_t h = 2166136261u;
    for (const char *p = key; *p; p++) h = (h ^ (unsigned char)*p) * 16777619u;
    int64_t now = hub_mono_ns();
    pthread_mutex_lock(&a->rate_mu);
    rate_slot *s = NULL;
    /* Four probes; a full neighbourhood evicts the one idle longest (its
     * bucket was full again by then anyway, most likely). */
    rate_slot *oldest = NULL;
    for (int i = 0; i < 4; i++) {
        rate_slot *c = &a->slots[(h + (uint32_t)i) % RATE_SLOTS];
        if (strncmp(c->key, key, sizeof c->key) == 0 && c->key[0]) {
            s = c;
            break;
        }
        if (oldest == NULL || c->last_ns < oldest->last_ns) oldest = c;
    }
    if (s == NULL) {
        s = oldest;
        snprintf(s->key, sizeof s->key, "%s", key);
        s->tokens = a->cfg.burst;
        s->last_ns = now;
    }
    s->tokens += (double)(now - s->last_ns) / 1e9 * a->cfg.rate;
    if (s->tokens > a->cfg.burst) s->tokens = a->cfg.burst;
    s->last_ns = now;
    bool ok = s->tokens >= 1.0;
    if (ok) s->tokens -= 1.0;
    else if (retry_after_s) *retry_after_s = (int)ceil((1.0 - s->tokens) / a->cfg.rate);
    pthread_mutex_unlock(&a->rate_mu);
    if (!ok) hub_metric_add(a->m_limited, 1);
    if (!ok && retry_after_s && *retry_after_s < 1) *retry_after_s = 1;
    return ok;
}

/* ---- the token endpoint ------------------------------------------------------------- */

/* A form value, percent-decoded into out; false when absent or too long. */
static bool form_get(hub_slice body, const char *key, char *out, size_t cap) {
    size_t kl = strlen(key);
    const char *p = body.p, *end = body.p + body.n;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *e = amp ? amp : end;
        if ((size_t)(e - p) > kl && memcmp(p, key, kl) == 0 && p[kl] == '=') {
            size_t o = 0;
            for (const char *q = p + kl + 1; q < e; q++) {
                if (o + 1 >= cap) return false;
                if (*q == '+') out[o++] = ' ';
                else if (*q == '%' && e - q >= 3 && isxdigit((unsigned char)q[1]) &&
                         isxdigit((unsigned char)q[2])) {
                    char hx[3] = {q[1], q[2], 0};
                    out[o++] = (char)strtol(hx, NULL, 16);
                    q += 2;
                } else out[o++] = *q;
            }
            out[o] = '\0';
            return true;
        }
        p = amp ? amp + 1 : end;
    }
    return false;
}

typedef struct {
    hub_store_job job;
    const char *client, *jti;
    int64_t exp_ms;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    hub_status rc;
} jti_job;

static hub_status jti_run(hub_store_tx *tx, hub_store_job *sj, hub_err *err) {
    jti_job *j = (jti_job *)sj;
    return hub_auth_jti_use_tx(tx, j->client, j->jti, j->exp_ms, err);
}

static void jti_done(hub_store_job *sj, hub_status rc, const hub_err *err) {
    (void)err;
    jti_job *j = (jti_job *)sj;
    pthread_mutex_lock(&j->mu);
    j->rc = rc;
    j->done = true;
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

static hub_status jti_use(hub_auth *a, const char *client, const char *jti, int64_t exp_ms) {
    jti_job j;
    memset(&j, 0, sizeof j);
    j.client = client;
    j.jti = jti;
    j.exp_ms = exp_ms;
    j.job.run = jti_run;
    j.job.done = jti_done;
    pthread_mutex_init(&j.mu, NULL);
    pthread_cond_init(&j.cv, NULL);
    hub_err err;
    hub_status rc = hub_store_submit(a->cfg.store, &j.job, &err);
    if (!rc) {
        pthread_mutex_lock(&j.mu);
        while (!j.done) pthread_cond_wait(&j.cv, &j.mu);
        pthread_mutex_unlock(&j.mu);
        rc = j.rc;
    }
    pthread_mutex_destroy(&j.mu);
    pthread_cond_destroy(&j.cv);
    return rc;
}

typedef struct {
    bool found, revoked;
    char *jwks, *scope, *patient;
    char cert_subject[160];
} client_copy;

static hub_status copy_client(void *ud, const hub_auth_client *c) {
    client_copy *cc = ud;
    cc->found = true;
    cc->revoked = c->revoked;
    cc->jwks = hub_strdup(c->jwks);
    cc->scope = hub_strdup(c->scope);
    cc->patient = hub_strdup(c->patient ? c->patient : "");
    snprintf(cc->cert_subject, sizeof cc->cert_subject, "%s",
             c->cert_subject ? c->cert_subject : "");
    return cc->jwks && cc->scope && cc->patient ? HUB_OK : HUB_E_NOMEM;
}

static void oauth_error(hub_http_resp *resp, int status, const char *code, const char *desc) {
    hub_buf b;
    hub_buf_init(&b);
    hub_buf_printf(&b, "{\"error\":\"%s\",\"error_description\":\"%s\"}", code, desc);
    hub_http_resp_set(resp, status, "application/json", b.p ? b.p : "", b.n);
    hub_buf_release(&b);
    hub_http_resp_header(resp, "Cache-Control", "no-store");
    if (status == 401) hub_http_resp_header(resp, "WWW-Authenticate", "Bearer realm=\"hub\"");
}

static void token_url_of(hub_auth *a, const hub_http_req *req, char *out, size_t cap) {
    if (a->token_url[0]) {
        snprintf(out, cap, "%s", a->token_url);
        return;
    }
    const char *host = hub_http_req_header(req, "Host");
    snprintf(out, cap, "%s://%s/auth/token", hub_http_req_tls(req) ? "https" : "http",
             host && strlen(host) < 200 ? host : "localhost");
}

static bool aud_ok(const json_t *aud, const char *url) {
    if (json_is_string(aud)) return strcmp(json_string_value(aud), url) == 0;
    size_t i;
    json_t *v;
    json_array_foreach(aud, i, v) if (json_is_string(v) && strcmp(json_string_value(v), url) == 0) return true;
    return false;
}

static void on_token(void *ud, const hub_http_req *req, hub_http_resp *resp) {
    hub_auth *a = ud;
    const char *peer = hub_http_req_peer(req);
    hub_audit_event ev = {.kind = HUB_AUDIT_TOKEN, .outcome = 12, .peer = peer, .channel = "http",
                          .subject = hub_http_req_tls_subject(req)};
    char ip[64];
    snprintf(ip, sizeof ip, "%s", peer);
    char *colon = strrchr(ip, ':');
    if (colon) *colon = '\0';
    int retry;
    if (!hub_auth_rate_ok(a, ip, &retry)) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", retry);
        oauth_error(resp, 429, "slow_down", "too many requests");
        hub_http_resp_header(resp, "Retry-After", ra);
        return;
    }
    if (strcmp(hub_http_req_method(req), "POST") != 0) {
        oauth_error(resp, 405, "invalid_request", "the token endpoint takes POST");
        hub_http_resp_header(resp, "Allow", "POST");
        return;
    }
    if (hub_http_req_too_large(req)) {
        oauth_error(resp, 413, "invalid_request", "request body over the limit");
        return;
    }
    hub_slice body = hub_http_req_body(req);
    char *assertion = hub_malloc(HUB_MAX_JWT + 1);
    char grant[64], atype[128], scope[1024];
    client_copy cc = {0};
    hub_jwt jwt;
    memset(&jwt, 0, sizeof jwt);
    const char *iss = NULL;
    int status = 400;
    const char *code = "invalid_request", *desc = NULL;
    if (assertion == NULL) {
        status = 500;
        code = "server_error";
        desc = "out of memory";
        goto fail;
    }
    if (!form_get(body, "grant_type", grant, sizeof grant)) {
        desc = "grant_type is missing";
        goto fail;
    }
    if (strcmp(grant, "client_credentials") != 0) {
        code = "unsupported_grant_type";
        desc = "grant_type must be client_credentials";
        goto fail;
    }
    if (!form_get(body, "client_assertion_type", atype, sizeof atype) ||
        strcmp(atype, ASSERTION_TYPE) != 0) {
        desc = "client_assertion_type must be " ASSERTION_TYPE;
        goto fail;
    }
    if (!form_get(body, "client_assertion", assertion, HUB_MAX_JWT + 1)) {
        desc = "client_assertion is missing or too long";
        goto fail;
    }
    if (!form_get(body, "scope", scope, sizeof scope)) {
        code = "invalid_scope";
        desc = "scope is missing";
        goto fail;
    }
    hub_err err;
    if (hub_jwt_parse(assertion, strlen(assertion), &jwt, &err) != HUB_OK) {
        code = "invalid_client";
        status = 401;
        desc = "client_assertion is not a JWT";
        goto fail;
    }
    iss = json_string_value(json_object_get(jwt.payload, "iss"));
    const char *sub = json_string_value(json_object_get(jwt.payload, "sub"));
    /* Client ids are 1-64 of [A-Za-z0-9._-] (hub clients add): anything
     * else is refused before it reaches a log line or the audit trail. */
    bool name_ok = iss && *iss && strlen(iss) <= 64;
    for (const char *p = iss; name_ok && *p; p++)
        name_ok = isalnum((unsigned char)*p) || *p == '.' || *p == '_' || *p == '-';
    if (!name_ok || sub == NULL || strcmp(iss, sub) != 0) {
        code = "invalid_client";
        status = 401;
        desc = "iss and sub must both be the client_id";
        iss = NULL;
        goto fail;
    }
    ev.client = iss;
    hub_status rc = hub_auth_client_get(a->cfg.store, iss, copy_client, &cc, &err);
    if (rc || !cc.found || cc.revoked) {
        code = "invalid_client";
        status = rc && rc != HUB_E_NOTFOUND ? 500 : 401;
        desc = cc.revoked ? "client revoked" : "unknown client";
        goto fail;
    }
    if (hub_jwt_verify(&jwt, cc.jwks, strlen(cc.jwks), &err) != HUB_OK) {
        code = "invalid_client";
        status = 401;
        desc = jwt.alg == HUB_JWT_OTHER ? "alg must be RS384 or ES384"
                                        : "client_assertion signature does not verify";
        goto fail;
    }
    const char *subject = hub_http_req_tls_subject(req);
    if (cc.cert_subject[0] && (subject == NULL || strcmp(subject, cc.cert_subject) != 0)) {
        code = "invalid_client";
        status = 401;
        desc = "the client must connect with its client certificate";
        goto fail;
    }
    char url[300];
    token_url_of(a, req, url, sizeof url);
    if (!aud_ok(json_object_get(jwt.payload, "aud"), url)) {
        code = "invalid_client";
        status = 401;
        desc = "aud must be this token endpoint";
        goto fail;
    }
    json_t *jexp = json_object_get(jwt.payload, "exp");
    int64_t now = hub_now_ms();
    if (!json_is_number(jexp)) {
        code = "invalid_client";
        status = 401;
        desc = "exp is missing";
        goto fail;
    }
    int64_t exp_ms = (int64_t)(json_number_value(jexp) * 1000.0);
    if (exp_ms <= now) {
        code = "invalid_client";
        status = 401;
        desc = "client_assertion expired";
        goto fail;
    }
    if (exp_ms > now + (int64_t)a->cfg.assertion_max_s * 1000 + 5000) {
        code = "invalid_client";
        status = 401;
        desc = "exp is too far in the future";
        goto fail;
    }
    const char *jti = json_string_value(json_object_get(jwt.payload, "jti"));
    if (jti == NULL || !*jti || strlen(jti) > 255) {
        code = "invalid_client";
        status = 401;
        desc = "jti is missing";
        goto fail;
    }
    hub_scopes req_s, allowed, granted;
    if (hub_scopes_parse(scope, false, &req_s, &err) != HUB_OK ||
        hub_scopes_parse(cc.scope, false, &allowed, &err) != HUB_OK) {
        code = "invalid_scope";
        desc = "scope is malformed";
        goto fail;
    }
    char gtext[1024];
    if (hub_scopes_grant(&req_s, &allowed, &granted, gtext, sizeof gtext) == 0) {
        code = "invalid_scope";
        desc = "none of the scopes asked for is allowed to this client";
        goto fail;
    }
    /* The jti last: a refused request does not use it up. */
    rc = jti_use(a, iss, jti, exp_ms);
    if (rc == HUB_E_DUP) {
        code = "invalid_grant";
        desc = "jti already used";
        goto fail;
    }
    if (rc) {
        status = 500;
        code = "server_error";
        desc = "the store failed";
        goto fail;
    }
    char tok[2048];
    int64_t texp = now + (int64_t)a->cfg.token_ttl_s * 1000;
    if (hub_auth_issue(a, iss, cc.patient, gtext, texp, tok, sizeof tok, &err) != HUB_OK) {
        code = "invalid_scope";
        desc = "too many scopes";
        goto fail;
    }
    json_t *r = json_pack("{s:s, s:s, s:i, s:s}", "access_token", tok, "token_type", "bearer",
                          "expires_in", a->cfg.token_ttl_s, "scope", gtext);
    if (r && cc.patient[0]) json_object_set_new(r, "patient", json_string(cc.patient));
    char *text = r ? json_dumps(r, JSON_COMPACT) : NULL;
    json_decref(r);
    OPENSSL_cleanse(tok, sizeof tok);
    if (text == NULL) {
        status = 500;
        code = "server_error";
        desc = "out of memory";
        goto fail;
    }
    hub_http_resp_set(resp, 200, "application/json", text, strlen(text));
    OPENSSL_cleanse(text, strlen(text));
    free(text);
    hub_http_resp_header(resp, "Cache-Control", "no-store");
    hub_http_resp_header(resp, "Pragma", "no-cache");
    hub_metric_add(a->m_granted, 1);
    ev.outcome = 0;
    ev.detail = "granted";
    HUB_LOG_INFO("auth", "token granted client=%s peer=%s", iss, peer);
    hub_audit_record(a->cfg.audit, &ev);
    goto out;
fail:
    hub_metric_add(a->m_refused, 1);
    oauth_error(resp, status, code, desc ? desc : "refused");
    ev.detail = desc;
    ev.outcome = status >= 500 ? 8 : 12;
    HUB_LOG_INFO("auth", "token refused client=%s peer=%s reason='%s'", iss ? iss : "-", peer,
                 desc ? desc : "?");
    hub_audit_record(a->cfg.audit, &ev);
out:
    hub_jwt_release(&jwt);
    if (assertion) {
        OPENSSL_cleanse(assertion, HUB_MAX_JWT + 1);
        hub_free(assertion);
    }
    hub_free(cc.jwks);
    hub_free(cc.scope);
    hub_free(cc.patient);
}

static void on_smart_config(void *ud, const hub_http_req *req, hub_http_resp *resp) {
    hub_auth *a = ud;
    char url[300];
    token_url_of(a, req, url, sizeof url);
    json_t *j = json_pack(
        "{s:s, s:[s], s:[s, s], s:[s], s:[s, s, s, s, s, s, s], s:[s, s, s]}", "token_endpoint",
        url, "token_endpoint_auth_methods_supported", "private_key_jwt",
        "token_endpoint_auth_signing_alg_values_supported", "RS384", "ES384",
        "grant_types_supported", "client_credentials", "scopes_supported", "system/*.cruds",
        "system/*.rs", "system/*.read", "system/*.write", "patient/*.rs", "patient/*.read",
        "admin", "capabilities", "client-confidential-asymmetric", "permission-v1",
        "permission-v2");
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (text == NULL) {
        hub_http_resp_error(resp, 500, "out of memory");
        return;
    }
    hub_http_resp_set(resp, 200, "application/json", text, strlen(text));
    free(text);
}

hub_status hub_auth_add_routes(hub_auth *a, hub_http_server *s, hub_err *err) {
    if (hub_http_route_raw(s, NULL, "/auth/token", on_token, a) != HUB_OK ||
        hub_http_route(s, "GET", "/fhir/.well-known/smart-configuration", on_smart_config, a) !=
            HUB_OK)
        return hub_err_set(err, HUB_E_LIMIT, "auth", "too many routes");
    return HUB_OK;
}
