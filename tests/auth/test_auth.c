/* auth: base64url, JWT parsing and RS384/ES384 verification (keys made
 * here with OpenSSL, signatures made here), scopes v1/v2, access tokens,
 * clients and jti in the store, the audit row's AuditEvent and syslog
 * forms. */
#include "hub/auth.h"
#include "hub_test.h"
#include "store_test.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

/* ---- base64url -------------------------------------------------------------- */

Test(auth_b64, round_trip_every_length) {
    unsigned char in[64], back[96];
    char enc[100];
    for (size_t i = 0; i < sizeof in; i++) in[i] = (unsigned char)(i * 37 + 1);
    for (size_t n = 0; n <= sizeof in; n++) {
        size_t en = hub_b64url_encode(in, n, enc);
        cr_assert_eq(strchr(enc, '='), NULL);
        cr_assert_eq(strchr(enc, '+'), NULL);
        size_t bn;
        cr_assert_eq(hub_b64url_decode(enc, en, back, &bn), HUB_OK);
        cr_assert_eq(bn, n);
        cr_assert_eq(memcmp(in, back, n), 0);
    }
}

Test(auth_b64, bad_input) {
    unsigned char out[16];
    size_t n;
    cr_assert_eq(hub_b64url_decode("ab+c", 4, out, &n), HUB_E_PARSE); /* '+' is base64, not url */
    cr_assert_eq(hub_b64url_decode("abcde", 5, out, &n), HUB_E_PARSE); /* impossible length */
    cr_assert_eq(hub_b64url_decode("YQ==", 4, out, &n), HUB_OK);       /* padding tolerated */
    cr_assert_eq(n, 1);
    cr_assert_eq(out[0], 'a');
}

/* ---- keys and signatures made here -------------------------------------------------- */

static void b64(const unsigned char *p, size_t n, char *out) { hub_b64url_encode(p, n, out); }

static char *bn_b64(const EVP_PKEY *pk, const char *name) {
    BIGNUM *bn = NULL;
    cr_assert(EVP_PKEY_get_bn_param(pk, name, &bn));
    unsigned char buf[1024];
    int n = BN_bn2bin(bn, buf);
    BN_free(bn);
    char *out = hub_malloc((size_t)n * 2 + 8);
    b64(buf, (size_t)n, out);
    return out;
}

/* A JWKS holding pk's public part, as text (hub_free). */
static char *jwks_of(EVP_PKEY *pk, const char *kid) {
    char *out = hub_malloc(4096);
    if (EVP_PKEY_is_a(pk, "RSA")) {
        char *n = bn_b64(pk, OSSL_PKEY_PARAM_RSA_N), *e = bn_b64(pk, OSSL_PKEY_PARAM_RSA_E);
        snprintf(out, 4096, "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"%s\",\"alg\":\"RS384\",\"n\":\"%s\",\"e\":\"%s\"}]}",
                 kid, n, e);
        hub_free(n);
        hub_free(e);
    } else {
        unsigned char pt[200];
        size_t pn = 0;
        cr_assert(EVP_PKEY_get_octet_string_param(pk, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof pt, &pn));
        cr_assert_eq(pn, 97);
        char x[80], y[80];
        b64(pt + 1, 48, x);
        b64(pt + 49, 48, y);
        snprintf(out, 4096,
                 "{\"keys\":[{\"kty\":\"EC\",\"kid\":\"%s\",\"crv\":\"P-384\",\"x\":\"%s\",\"y\":\"%s\"}]}",
                 kid, x, y);
    }
    return out;
}

/* header.payload.signature signed with pk (RS384 or ES384 by key type). */
static char *sign(EVP_PKEY *pk, const char *header, const char *payload) {
    char *out = hub_malloc(8192);
    size_t o = hub_b64url_encode((const unsigned char *)header, strlen(header), out);
    out[o++] = '.';
    o += hub_b64url_encode((const unsigned char *)payload, strlen(payload), out + o);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    cr_assert_eq(EVP_DigestSignInit(md, NULL, EVP_sha384(), NULL, pk), 1);
    unsigned char sig[1024];
    size_t sn = sizeof sig;
    cr_assert_eq(EVP_DigestSign(md, sig, &sn, (unsigned char *)out, o), 1);
    EVP_MD_CTX_free(md);
    if (EVP_PKEY_is_a(pk, "EC")) {
        /* DER to the JWS form R || S. */
        const unsigned char *p = sig;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)sn);
        unsigned char rs[96];
        BN_bn2binpad(ECDSA_SIG_get0_r(es), rs, 48);
        BN_bn2binpad(ECDSA_SIG_get0_s(es), rs + 48, 48);
        ECDSA_SIG_free(es);
        memcpy(sig, rs, 96);
        sn = 96;
    }
    out[o++] = '.';
    hub_b64url_encode(sig, sn, out + o);
    return out;
}

static EVP_PKEY *rsa(void) { return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048); }
static EVP_PKEY *ec(void) { return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384"); }

static const char CLAIMS[] = "{\"iss\":\"c1\",\"sub\":\"c1\",\"aud\":\"https://h/auth/token\","
                             "\"exp\":4102444800,\"jti\":\"j1\"}";

static void verify_case(EVP_PKEY *pk, const char *alg) {
    char *jwks = jwks_of(pk, "k1");
    char hdr[80];
    snprintf(hdr, sizeof hdr, "{\"alg\":\"%s\",\"kid\":\"k1\",\"typ\":\"JWT\"}", alg);
    char *tok = sign(pk, hdr, CLAIMS);
    hub_jwt j;
    hub_err err;
    cr_assert_eq(hub_jwt_parse(tok, strlen(tok), &j, &err), HUB_OK, "%s", err.msg);
    cr_assert_str_eq(json_string_value(json_object_get(j.payload, "jti")), "j1");
    cr_assert_eq(hub_jwt_verify(&j, jwks, strlen(jwks), &err), HUB_OK, "%s", err.msg);
    hub_jwt_release(&j);
    /* One changed byte of the payload: no longer verifies. */
    char *dot = strchr(tok, '.');
    dot[3] = dot[3] == 'A' ? 'B' : 'A';
    if (hub_jwt_parse(tok, strlen(tok), &j, &err) == HUB_OK) {
        cr_assert_eq(hub_jwt_verify(&j, jwks, strlen(jwks), &err), HUB_E_INVALID);
        hub_jwt_release(&j);
    }
    size_t nk;
    cr_assert_eq(hub_jwks_check(jwks, strlen(jwks), &nk, &err), HUB_OK, "%s", err.msg);
    cr_assert_eq(nk, 1);
    hub_free(tok);
    hub_free(jwks);
}

Test(auth_jwt, rs384_verifies) {
    EVP_PKEY *pk = rsa();
    verify_case(pk, "RS384");
    EVP_PKEY_free(pk);
}

Test(auth_jwt, es384_verifies) {
    EVP_PKEY *pk = ec();
    verify_case(pk, "ES384");
    EVP_PKEY_free(pk);
}

Test(auth_jwt, other_key_or_kid_or_alg_refused) {
    EVP_PKEY *a = ec(), *b = ec();
    char *jwks_b = jwks_of(b, "k1");
    char *tok = sign(a, "{\"alg\":\"ES384\",\"kid\":\"k1\"}", CLAIMS);
    hub_jwt j;
    hub_err err;
    cr_assert_eq(hub_jwt_parse(tok, strlen(tok), &j, &err), HUB_OK);
    cr_assert_eq(hub_jwt_verify(&j, jwks_b, strlen(jwks_b), &err), HUB_E_INVALID);
    cr_assert_str_eq(err.msg, "signature does not verify");
    hub_jwt_release(&j);
    hub_free(tok);
    /* The right key under another kid: not used. */
    char *jwks_a = jwks_of(a, "other");
    tok = sign(a, "{\"alg\":\"ES384\",\"kid\":\"k1\"}", CLAIMS);
    cr_assert_eq(hub_jwt_parse(tok, strlen(tok), &j, &err), HUB_OK);
    cr_assert_eq(hub_jwt_verify(&j, jwks_a, strlen(jwks_a), &err), HUB_E_INVALID);
    cr_assert_str_eq(err.msg, "no usable key in the client's JWKS");
    hub_jwt_release(&j);
    hub_free(tok);
    /* alg none / HS256: never verified against public keys. */
    tok = sign(a, "{\"alg\":\"HS256\",\"kid\":\"other\"}", CLAIMS);
    cr_assert_eq(hub_jwt_parse(tok, strlen(tok), &j, &err), HUB_OK);
    cr_assert_eq(j.alg, HUB_JWT_OTHER);
    cr_assert_eq(hub_jwt_verify(&j, jwks_a, strlen(jwks_a), &err), HUB_E_INVALID);
    hub_jwt_release(&j);
    hub_free(tok);
    hub_free(jwks_a);
    hub_free(jwks_b);
    EVP_PKEY_free(a);
    EVP_PKEY_free(b);
}

Test(auth_jwt, malformed) {
    hub_jwt j;
    hub_err err;
    cr_assert_eq(hub_jwt_parse("abc", 3, &j, &err), HUB_E_PARSE);
    cr_assert_str_eq(err.msg, "not three dot-separated parts");
    cr_assert_eq(hub_jwt_parse("a.b.c.d", 7, &j, &err), HUB_E_PARSE);
    cr_assert_eq(hub_jwt_parse("!!.e30.YQ", 9, &j, &err), HUB_E_PARSE);
    cr_assert_str_eq(err.where, "jwt.header");
    /* header {} ok, payload "[]" (not an object) */
    char t[64];
    snprintf(t, sizeof t, "e30.W10.YQ");
    cr_assert_eq(hub_jwt_parse(t, strlen(t), &j, &err), HUB_E_PARSE);
    cr_assert_str_eq(err.where, "jwt.payload");
    cr_assert_eq(hub_jwt_parse("e30.e30.", 8, &j, &err), HUB_E_PARSE);
    cr_assert_str_eq(err.where, "jwt.signature");
    /* crit headers are refused */
    cr_assert_eq(hub_jwt_parse("eyJjcml0IjpbXX0.e30.YQ", 22, &j, &err), HUB_E_PARSE);
    char *big = hub_malloc(HUB_MAX_JWT + 2);
    memset(big, 'a', HUB_MAX_JWT + 1);
    cr_assert_eq(hub_jwt_parse(big, HUB_MAX_JWT + 1, &j, &err), HUB_E_LIMIT);
    hub_free(big);
}

Test(auth_jwt, jwks_refuses_private_and_weak_keys) {
    size_t n;
    hub_err err;
    const char *priv = "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"a\",\"y\":\"b\",\"d\":\"c\"}]}";
    cr_assert_eq(hub_jwks_check(priv, strlen(priv), &n, &err), HUB_E_INVALID);
    cr_assert(strstr(err.msg, "private") != NULL);
    const char *p256 = "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"a\",\"y\":\"b\"}]}";
    cr_assert_eq(hub_jwks_check(p256, strlen(p256), &n, &err), HUB_E_INVALID);
    cr_assert_eq(hub_jwks_check("{}", 2, &n, &err), HUB_E_PARSE);
    EVP_PKEY *small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    char *j = jwks_of(small, "s");
    cr_assert_eq(hub_jwks_check(j, strlen(j), &n, &err), HUB_E_INVALID);
    hub_free(j);
    EVP_PKEY_free(small);
}

/* ---- scopes ------------------------------------------------------------------- */

Test(auth_scope, v1_and_v2_forms) {
    hub_scopes s;
    hub_err err;
    cr_assert_eq(hub_scopes_parse("system/Observation.read system/Patient.rs "
                                  "system/Encounter.cud patient/*.read openid launch",
                                  false, &s, &err),
                 HUB_OK);
    cr_assert_eq(s.n, 4);
    cr_assert(hub_scopes_allow(&s, "Observation", HUB_PERM_R));
    cr_assert(hub_scopes_allow(&s, "Observation", HUB_PERM_S));
    cr_assert_not(hub_scopes_allow(&s, "Observation", HUB_PERM_C));
    cr_assert(hub_scopes_allow(&s, "Patient", HUB_PERM_R | HUB_PERM_S));
    cr_assert_not(hub_scopes_allow(&s, "Patient", HUB_PERM_U));
    cr_assert(hub_scopes_allow(&s, "Encounter", HUB_PERM_C | HUB_PERM_U | HUB_PERM_D));
    cr_assert(hub_scopes_allow(&s, "Encounter", HUB_PERM_R)); /* from patient/ *.read */
    cr_assert(hub_scopes_allow(&s, "Condition", HUB_PERM_R));
    cr_assert_not(hub_scopes_allow(&s, "Condition", HUB_PERM_D));
    cr_assert_not(s.admin);
    cr_assert_eq(hub_scopes_parse("system/*.cruds admin", true, &s, &err), HUB_OK);
    cr_assert(hub_scopes_allow(&s, "Anything", HUB_PERM_ALL));
    cr_assert(s.admin);
    cr_assert_eq(hub_scopes_parse("system/*.write", true, &s, &err), HUB_OK);
    cr_assert(hub_scopes_allow(&s, "X", HUB_PERM_C | HUB_PERM_U | HUB_PERM_D));
    cr_assert_not(hub_scopes_allow(&s, "X", HUB_PERM_R));
    cr_assert_eq(hub_scopes_parse("system/*.*", true, &s, &err), HUB_OK);
    cr_assert(hub_scopes_allow(&s, "X", HUB_PERM_ALL));
}

Test(auth_scope, malformed_and_narrowed_scopes_grant_nothing) {
    hub_scopes s;
    hub_err err;
    /* out of order, repeated, unknown letters, v2 ?-narrowing, bad context */
    const char *bad[] = {"system/Observation.rc", "system/Observation.rr", "system/Observation.x",
                         "system/Observation.rs?category=lab", "admin/Observation.read",
                         "system/.read", "system/Obs-ervation.read", "system/Observation"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(hub_scopes_parse(bad[i], false, &s, &err), HUB_OK);
        cr_assert_eq(s.n, 0, "%s", bad[i]);
        cr_assert_eq(hub_scopes_parse(bad[i], true, &s, &err), HUB_E_PARSE, "%s", bad[i]);
    }
    char many[4096] = "";
    for (int i = 0; i < HUB_MAX_SCOPES + 1; i++) strcat(many, "system/Patient.r ");
    cr_assert_eq(hub_scopes_parse(many, false, &s, &err), HUB_E_LIMIT);
}

Test(auth_scope, grant_is_the_intersection) {
    hub_scopes req, allowed, g;
    hub_err err;
    hub_scopes_parse("system/Observation.cruds system/Patient.read system/Encounter.rs admin", false,
                     &req, &err);
    hub_scopes_parse("system/Observation.rs system/*.read", false, &allowed, &err);
    char text[512];
    size_t n = hub_scopes_grant(&req, &allowed, &g, text, sizeof text);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(text, "system/Observation.rs system/Patient.read system/Encounter.rs");
    cr_assert_not(g.admin);
    cr_assert_not(hub_scopes_allow(&g, "Observation", HUB_PERM_C));
    /* patient/ scopes are not granted by system/ ones */
    hub_scopes_parse("patient/Observation.rs", false, &req, &err);
    cr_assert_eq(hub_scopes_grant(&req, &allowed, &g, text, sizeof text), 0);
    cr_assert_str_eq(text, "");
}

/* ---- store: clients, jti, the token key, access tokens, audit rows ---------------------- */


static char dir[256];
static hub_store *st;

static void up(void) { st = hub_test_store_open(dir); }

static void down(void) { hub_test_store_close(st, dir); }

static hub_status put_c1(hub_store_tx *tx, void *arg, hub_err *err) {
    hub_auth_client c = {.name = "c1", .jwks = "{\"keys\":[]}", .scope = "system/*.rs",
                         .patient = arg};
    return hub_auth_client_put_tx(tx, &c, err);
}
static hub_status revoke_c1(hub_store_tx *tx, void *arg, hub_err *err) {
    return hub_auth_client_revoke_tx(tx, arg, err);
}
static hub_status use_jti(hub_store_tx *tx, void *arg, hub_err *err) {
    return hub_auth_jti_use_tx(tx, "c1", arg, hub_now_ms() + 60000, err);
}

typedef struct {
    int n;
    bool revoked;
    char patient[32];
} seen;
static hub_status see(void *ud, const hub_auth_client *c) {
    seen *s = ud;
    s->n++;
    s->revoked = c->revoked;
    snprintf(s->patient, sizeof s->patient, "%s", c->patient);
    return HUB_OK;
}

Test(auth_store, clients_jti_and_revocation, .init = up, .fini = down) {
    cr_assert_eq(hub_test_in_job(st, put_c1, "p1"), HUB_OK);
    seen s = {0};
    hub_err err;
    cr_assert_eq(hub_auth_client_get(st, "c1", see, &s, &err), HUB_OK);
    cr_assert_eq(s.n, 1);
    cr_assert_str_eq(s.patient, "p1");
    cr_assert_eq(hub_auth_client_get(st, "nope", see, &s, &err), HUB_E_NOTFOUND);
    cr_assert_eq(hub_test_in_job(st, use_jti, "j1"), HUB_OK);
    cr_assert_eq(hub_test_in_job(st, use_jti, "j1"), HUB_E_DUP);
    cr_assert_eq(hub_test_in_job(st, use_jti, "j2"), HUB_OK);
    cr_assert_eq(hub_test_in_job(st, revoke_c1, "c1"), HUB_OK);
    cr_assert_eq(hub_test_in_job(st, revoke_c1, "zz"), HUB_E_NOTFOUND);
    memset(&s, 0, sizeof s);
    cr_assert_eq(hub_auth_client_list(st, see, &s, &err), HUB_OK);
    cr_assert_eq(s.n, 1);
    cr_assert(s.revoked);
}

Test(auth_token, issue_check_tamper_expire_revoke, .init = up, .fini = down) {
    cr_assert_eq(hub_test_in_job(st, put_c1, ""), HUB_OK);
    hub_auth *a;
    hub_err err;
    hub_auth_cfg cfg = {.store = st};
    cr_assert_eq(hub_auth_new(&cfg, &a, &err), HUB_OK, "%s", err.msg);
    char tok[2048];
    cr_assert_eq(hub_auth_issue(a, "c1", "p9", "system/Observation.rs admin", hub_now_ms() + 60000,
                                tok, sizeof tok, &err),
                 HUB_OK);
    hub_auth_token t;
    cr_assert_eq(hub_auth_check(a, tok, &t, &err), HUB_OK, "%s", err.msg);
    cr_assert_str_eq(t.client, "c1");
    cr_assert_str_eq(t.patient, "p9");
    cr_assert(t.scopes.admin);
    cr_assert(hub_scopes_allow(&t.scopes, "Observation", HUB_PERM_S));
    /* The cached path gives the same answer. */
    cr_assert_eq(hub_auth_check(a, tok, &t, &err), HUB_OK);
    /* Tampered: a scope byte changed, or the mac changed. */
    char bad[2048];
    snprintf(bad, sizeof bad, "%s", tok);
    bad[10] = bad[10] == 'A' ? 'B' : 'A';
    cr_assert_eq(hub_auth_check(a, bad, &t, &err), HUB_E_INVALID);
    snprintf(bad, sizeof bad, "%s", tok);
    bad[strlen(bad) - 2] = bad[strlen(bad) - 2] == 'A' ? 'B' : 'A';
    cr_assert_eq(hub_auth_check(a, bad, &t, &err), HUB_E_INVALID);
    cr_assert_eq(hub_auth_check(a, "h1.", &t, &err), HUB_E_INVALID);
    cr_assert_eq(hub_auth_check(a, "eyJhbGciOi.x.y", &t, &err), HUB_E_INVALID);
    /* Expired. */
    cr_assert_eq(hub_auth_issue(a, "c1", "", "system/*.rs", hub_now_ms() - 1, tok, sizeof tok, &err),
                 HUB_OK);
    cr_assert_eq(hub_auth_check(a, tok, &t, &err), HUB_E_INVALID);
    cr_assert_str_eq(err.msg, "token expired");
    /* The key survives a restart: a second service on the same store
     * accepts the first one's tokens. */
    cr_assert_eq(hub_auth_issue(a, "c1", "", "system/*.rs", hub_now_ms() + 60000, tok, sizeof tok,
                                &err),
                 HUB_OK);
    hub_auth *b;
    cr_assert_eq(hub_auth_new(&cfg, &b, &err), HUB_OK);
    cr_assert_eq(hub_auth_check(b, tok, &t, &err), HUB_OK);
    /* Revoked: refused (the check re-reads the client after a second at
     * most; another service instance has no cache yet). */
    cr_assert_eq(hub_test_in_job(st, revoke_c1, "c1"), HUB_OK);
    hub_auth *c;
    cr_assert_eq(hub_auth_new(&cfg, &c, &err), HUB_OK);
    cr_assert_eq(hub_auth_check(c, tok, &t, &err), HUB_E_INVALID);
    cr_assert_str_eq(err.msg, "client revoked");
    hub_auth_free(a);
    hub_auth_free(b);
    hub_auth_free(c);
}

Test(auth_rate, token_bucket, .init = up, .fini = down) {
    hub_auth *a;
    hub_err err;
    hub_auth_cfg cfg = {.store = st, .rate = 2, .burst = 3};
    cr_assert_eq(hub_auth_new(&cfg, &a, &err), HUB_OK);
    int retry = 0;
    for (int i = 0; i < 3; i++) cr_assert(hub_auth_rate_ok(a, "x", &retry));
    cr_assert_not(hub_auth_rate_ok(a, "x", &retry));
    cr_assert_geq(retry, 1);
    cr_assert(hub_auth_rate_ok(a, "y", &retry)); /* per client */
    hub_auth_free(a);
}

typedef struct {
    int n;
    int64_t last;
    char kinds[16];
} rows;
static hub_status row_fn(void *ud, const hub_audit_row *r) {
    rows *x = ud;
    x->kinds[x->n++] = (char)('0' + r->ev.kind);
    x->last = r->id;
    return HUB_OK;
}

Test(auth_audit, queued_rows_are_written_and_listed, .init = up, .fini = down) {
    hub_audit *a;
    hub_err err;
    hub_audit_cfg cfg = {.store = st, .flush_ms = 50};
    cr_assert_eq(hub_audit_new(&cfg, &a, &err), HUB_OK);
    for (int i = 0; i < 3; i++) {
        hub_audit_event ev = {.kind = (hub_audit_kind)i, .client = "c1", .peer = "1.2.3.4:5",
                              .entity_type = "Patient", .entity_id = "p1"};
        hub_audit_record(a, &ev);
    }
    hub_audit_flush(a);
    rows r = {0};
    int64_t total = 0;
    hub_audit_filter f = {.kind = -1, .limit = 10, .client = "c1"};
    cr_assert_eq(hub_audit_list(st, &f, row_fn, &r, &total, &err), HUB_OK);
    cr_assert_eq(r.n, 3);
    cr_assert_eq(total, 3);
    cr_assert_str_eq(r.kinds, "210"); /* newest first */
    rows r2 = {0};
    hub_audit_filter g = {.oldest_first = true, .after_id = 1, .kind = -1, .limit = 10};
    cr_assert_eq(hub_audit_list(st, &g, row_fn, &r2, NULL, &err), HUB_OK);
    cr_assert_str_eq(r2.kinds, "12");
    hub_audit_free(a);
}

/* Reads and searches of one party over one batch make one row: every read
 * stays findable by its id, the row says how many and over which period;
 * other parties, outcomes and kinds get rows of their own. */
typedef struct {
    int n;
    int64_t count[10];
    char entities[10][200];
    char id[10][72];
    int kind[10];
    int64_t first[10], last[10];
} grows;
static hub_status grow_fn(void *ud, const hub_audit_row *r) {
    grows *x = ud;
    cr_assert_lt(x->n, 10);
    x->count[x->n] = r->count;
    snprintf(x->entities[x->n], sizeof x->entities[0], "%s", r->entities ? r->entities : "");
    snprintf(x->id[x->n], sizeof x->id[0], "%s", r->ev.entity_id ? r->ev.entity_id : "");
    x->kind[x->n] = r->ev.kind;
    x->first[x->n] = r->ev.at_ms;
    x->last[x->n] = r->last_ms;
    x->n++;
    return HUB_OK;
}

static void rec(hub_audit *a, hub_audit_kind k, const char *client, const char *id, int outcome,
                int64_t at) {
    hub_audit_event ev = {.kind = k, .client = client, .peer = "10.1.1.1:4000", .channel = "http",
                          .entity_type = "Patient", .entity_id = id, .outcome = outcome,
                          .at_ms = at, .query = k == HUB_AUDIT_SEARCH ? "name" : NULL};
    hub_audit_record(a, &ev);
}

Test(auth_audit, reads_of_one_party_are_grouped, .init = up, .fini = down) {
    hub_audit *a;
    hub_err err;
    hub_audit_cfg cfg = {.store = st, .flush_ms = 60000};
    cr_assert_eq(hub_audit_new(&cfg, &a, &err), HUB_OK);
    int64_t t0 = 1700000000000;
    for (int i = 0; i < 5; i++) rec(a, HUB_AUDIT_READ, "c1", "p1", 0, t0 + i);
    rec(a, HUB_AUDIT_READ, "c1", "p2", 0, t0 + 10);
    rec(a, HUB_AUDIT_READ, "c1", "p3", 4, t0 + 11);        /* another outcome */
    rec(a, HUB_AUDIT_READ, "c2", "p1", 0, t0 + 12);        /* another client */
    rec(a, HUB_AUDIT_READ, "c1", "p 4", 0, t0 + 13);       /* not an id: a row of its own */
    for (int i = 0; i < 3; i++) rec(a, HUB_AUDIT_SEARCH, "c1", NULL, 0, t0 + 20 + i);
    rec(a, HUB_AUDIT_LOGIN_FAIL, NULL, NULL, 12, t0 + 30); /* refusals too */
    rec(a, HUB_AUDIT_LOGIN_FAIL, NULL, NULL, 12, t0 + 31);
    hub_audit_event tok = {.kind = HUB_AUDIT_TOKEN, .client = "c1", .at_ms = t0 + 40};
    hub_audit_record(a, &tok); /* never grouped */
    hub_audit_record(a, &tok);
    hub_audit_flush(a);
    grows r = {0};
    int64_t total = 0;
    hub_audit_filter f = {.oldest_first = true, .kind = -1, .limit = 100};
    cr_assert_eq(hub_audit_list(st, &f, grow_fn, &r, &total, &err), HUB_OK);
    cr_assert_eq(r.n, 8);
    /* In the order of their first events. */
    cr_assert_eq(r.count[0], 6);
    cr_assert_str_eq(r.entities[0], "p1*5 p2");
    cr_assert_str_eq(r.id[0], "");
    cr_assert_eq(r.first[0], t0);
    cr_assert_eq(r.last[0], t0 + 10);
    cr_assert_eq(r.count[1], 1);
    cr_assert_str_eq(r.id[1], "p3");
    cr_assert_str_eq(r.entities[1], "");
    cr_assert_str_eq(r.id[2], "p1"); /* c2's */
    cr_assert_str_eq(r.id[3], "p 4");
    cr_assert_eq(r.kind[4], HUB_AUDIT_SEARCH);
    cr_assert_eq(r.count[4], 3);
    cr_assert_eq(r.last[4], t0 + 22);
    cr_assert_eq(r.kind[5], HUB_AUDIT_LOGIN_FAIL);
    cr_assert_eq(r.count[5], 2);
    cr_assert_eq(r.kind[6], HUB_AUDIT_TOKEN);
    cr_assert_eq(r.kind[7], HUB_AUDIT_TOKEN);
    /* Every id is found, in a group or not, and only where it is. */
    grows e = {0};
    hub_audit_filter fe = {.entity_type = "Patient", .entity_id = "p2", .kind = -1, .limit = 10};
    cr_assert_eq(hub_audit_list(st, &fe, grow_fn, &e, &total, &err), HUB_OK);
    cr_assert_eq(e.n, 1);
    cr_assert_eq(total, 1);
    cr_assert_str_eq(e.entities[0], "p1*5 p2");
    grows e1 = {0};
    fe.entity_id = "p1";
    cr_assert_eq(hub_audit_list(st, &fe, grow_fn, &e1, &total, &err), HUB_OK);
    cr_assert_eq(e1.n, 2);
    grows e0 = {0};
    fe.entity_id = "p";
    cr_assert_eq(hub_audit_list(st, &fe, grow_fn, &e0, &total, &err), HUB_OK);
    cr_assert_eq(e0.n, 0);
    /* A date range finds a group by any part of its period. */
    grows d = {0};
    hub_audit_filter fd = {.since_ms = t0 + 9, .until_ms = t0 + 10, .client = "c1", .kind = 0,
                           .limit = 10};
    cr_assert_eq(hub_audit_list(st, &fd, grow_fn, &d, NULL, &err), HUB_OK);
    cr_assert_eq(d.n, 1);
    cr_assert_eq(d.count[0], 6);
    hub_audit_free(a);
}

Test(auth_audit, a_group_as_auditevent_and_syslog) {
    hub_audit_row row = {.id = 7,
                         .ev = {.kind = HUB_AUDIT_READ,
                                .at_ms = 1700000000000,
                                .client = "c1",
                                .entity_type = "Patient"},
                         .count = 4,
                         .last_ms = 1700000000150,
                         .entities = "a1*3 b2"};
    json_t *j = hub_audit_to_fhir(&row);
    json_t *ents = json_object_get(j, "entity");
    cr_assert_eq(json_array_size(ents), 2);
    json_t *e0 = json_array_get(ents, 0), *e1 = json_array_get(ents, 1);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(e0, "what"), "reference")),
                     "Patient/a1");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(e0, "detail"), 0),
                                                       "valueString")),
                     "3");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(e1, "what"), "reference")),
                     "Patient/b2");
    cr_assert_null(json_object_get(e1, "detail"));
    json_t *per = json_object_get(j, "period");
    cr_assert_str_eq(json_string_value(json_object_get(per, "start")), "2023-11-14T22:13:20.000Z");
    cr_assert_str_eq(json_string_value(json_object_get(per, "end")), "2023-11-14T22:13:20.150Z");
    json_decref(j);
    hub_buf b;
    hub_buf_init(&b);
    cr_assert_eq(hub_audit_syslog_line(&row, "h", "hub", &b), HUB_OK);
    cr_assert(strstr(b.p, " count=\"4\"] ") != NULL, "%s", b.p);
    hub_buf_release(&b);
}

Test(auth_audit, fhir_and_syslog_forms_carry_no_contents) {
    hub_audit_row row = {.id = 42,
                         .ev = {.kind = HUB_AUDIT_SEARCH,
                                .outcome = 12,
                                .at_ms = 1700000000000,
                                .client = "c\"1]",
                                .peer = "10.0.0.1:5555",
                                .entity_type = "Observation",
                                .query = "code&patient",
                                .detail = "http 403"}};
    json_t *j = hub_audit_to_fhir(&row);
    cr_assert_str_eq(json_string_value(json_object_get(j, "resourceType")), "AuditEvent");
    cr_assert_str_eq(json_string_value(json_object_get(j, "id")), "42");
    cr_assert_str_eq(json_string_value(json_object_get(j, "outcome")), "12");
    cr_assert_str_eq(json_string_value(json_object_get(j, "action")), "E");
    json_t *ag = json_array_get(json_object_get(j, "agent"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(ag, "network"), "address")),
                     "10.0.0.1");
    json_t *ent = json_array_get(json_object_get(j, "entity"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(ent, "query")), "Y29kZSZwYXRpZW50");
    json_decref(j);
    hub_buf b;
    hub_buf_init(&b);
    cr_assert_eq(hub_audit_syslog_line(&row, "h", "hub", &b), HUB_OK);
    cr_assert(strncmp(b.p, "<84>1 2023-11-14T22:13:20.000Z h hub - AuditEvent [hub@32473 id=\"42\"", 66) == 0,
              "%s", b.p);
    cr_assert(strstr(b.p, "client=\"c\\\"1\\]\"") != NULL, "%s", b.p);
    cr_assert(strstr(b.p, "] {\"resourceType\":\"AuditEvent\"") != NULL);
    hub_buf_release(&b);
}
