/* libFuzzer target for the token endpoint's parsers of outside input: the
 * input is "JWT\nJWKS" (no newline: the whole input is the JWT and a fixed
 * JWKS is used). Runs hub_jwt_parse, hub_jwt_verify, hub_jwks_check, the
 * scope parser and base64url on it. Invariants: a parsed JWT has an object
 * payload and a non-empty signature; nothing verifies against a fuzzed
 * JWKS unless parse succeeded; base64url round-trips. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hub/auth.h"

#define CHECK(c)           \
    do {                   \
        if (!(c)) abort(); \
    } while (0)

static const char FIXED_JWKS[] =
    "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-384\",\"kid\":\"k1\","
    "\"x\":\"fJNhC3iu62ozs0T40RzCfurhO60wiiaHaOjoCWW_Rk6zPYSXLDJhWQ24LfrVhCs3\","
    "\"y\":\"5R8JKDQ8_8QjDZSmvmqhNeRaTe-lHo5UMevd-mO1DoMwzE0sUiWFsvxfq-gh5jDD\"}]}";

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) {
    const char *s = (const char *)d;
    const char *nl = memchr(s, '\n', n);
    size_t jn = nl ? (size_t)(nl - s) : n;
    const char *jwks = nl ? nl + 1 : FIXED_JWKS;
    size_t kn = nl ? n - jn - 1 : sizeof FIXED_JWKS - 1;
    hub_jwt j;
    hub_err err;
    if (hub_jwt_parse(s, jn, &j, &err) == HUB_OK) {
        CHECK(json_is_object(j.payload));
        CHECK(j.sig != NULL && j.sig_len > 0);
        CHECK(j.signing_len < jn);
        hub_status rc = hub_jwt_verify(&j, jwks, kn, &err);
        CHECK(rc == HUB_OK || rc == HUB_E_INVALID || rc == HUB_E_PARSE);
        hub_jwt_release(&j);
    }
    size_t nk;
    hub_status rc = hub_jwks_check(jwks, kn, &nk, &err);
    CHECK(rc == HUB_OK || rc == HUB_E_INVALID || rc == HUB_E_PARSE);
    /* Scopes and base64url on the same bytes (NUL-terminated copy). */
    char *t = malloc(jn + 1);
    if (t == NULL) return 0;
    memcpy(t, s, jn);
    t[jn] = '\0';
    hub_scopes sc, g;
    if (hub_scopes_parse(t, false, &sc, &err) == HUB_OK) {
        char text[2048];
        hub_scopes_grant(&sc, &sc, &g, text, sizeof text);
        CHECK(g.n <= sc.n);
        for (size_t i = 0; i < sc.n; i++) CHECK(hub_scopes_allow(&sc, sc.s[i].type, sc.s[i].perms));
    }
    unsigned char *b = malloc(jn * 3 / 4 + 4);
    char *e = malloc(jn * 2 + 8);
    size_t bn;
    if (b && e && hub_b64url_decode(t, jn, b, &bn) == HUB_OK) {
        size_t en = hub_b64url_encode(b, bn, e);
        unsigned char *b2 = malloc(bn + 4);
        size_t bn2;
        CHECK(b2 && hub_b64url_decode(e, en, b2, &bn2) == HUB_OK && bn2 == bn &&
              memcmp(b, b2, bn) == 0);
        free(b2);
    }
    free(b);
    free(e);
    free(t);
    return 0;
}
