/* JWT (compact JWS) parsing and signature checks against a JWKS, with
 * OpenSSL's EVP interface. Only RS384 and ES384 are accepted: SMART
 * Backend Services names exactly these two, and "none" or HMAC algorithms
 * must never reach a verifier that holds public keys. */
#include "hub/auth.h"

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <string.h>

static inline int b64v(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
}

hub_status hub_b64url_decode(const char *in, size_t n, unsigned char *out, size_t *outn) {
    while (n && in[n - 1] == '=') n--;
    if (n % 4 == 1) return HUB_E_PARSE;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64v((unsigned char)in[i]);
        if (v < 0) return HUB_E_PARSE;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    *outn = o;
    return HUB_OK;
}

size_t hub_b64url_encode(const unsigned char *in, size_t n, char *out) {
    static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = A[v >> 18];
        out[o++] = A[(v >> 12) & 63];
        out[o++] = A[(v >> 6) & 63];
        out[o++] = A[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = A[v >> 18];
        out[o++] = A[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = A[v >> 18];
        out[o++] = A[(v >> 12) & 63];
        out[o++] = A[(v >> 6) & 63];
    }
    out[o] = '\0';
    return o;
}

/* A base64url part decoded into a fresh heap buffer (NUL added). */
static unsigned char *part(const char *p, size_t n, size_t *outn) {
    unsigned char *b = hub_malloc(n * 3 / 4 + 4);
    if (b == NULL) return NULL;
    if (hub_b64url_decode(p, n, b, outn) != HUB_OK) {
        hub_free(b);
        return NULL;
    }
    b[*outn] = '\0';
    return b;
}

void hub_jwt_release(hub_jwt *j) {
    json_decref(j->payload);
    hub_free(j->sig);
    j->payload = NULL;
    j->sig = NULL;
}

hub_status hub_jwt_parse(const char *s, size_t n, hub_jwt *out, hub_err *err) {
    memset(out, 0, sizeof *out);
    if (n > HUB_MAX_JWT)
        return hub_err_set(err, HUB_E_LIMIT, "jwt", "assertion over %d bytes", HUB_MAX_JWT);
    const char *d1 = memchr(s, '.', n);
    const char *d2 = d1 ? memchr(d1 + 1, '.', (size_t)(s + n - d1 - 1)) : NULL;
    if (d2 == NULL || memchr(d2 + 1, '.', (size_t)(s + n - d2 - 1)))
        return hub_err_set(err, HUB_E_PARSE, "jwt", "not three dot-separated parts");
    size_t hn, pn;
    unsigned char *h = part(s, (size_t)(d1 - s), &hn);
    if (h == NULL) return hub_err_set(err, HUB_E_PARSE, "jwt.header", "header is not base64url");
    json_t *hj = json_loadb((const char *)h, hn, JSON_REJECT_DUPLICATES, NULL);
    hub_free(h);
    if (!json_is_object(hj)) {
        json_decref(hj);
        return hub_err_set(err, HUB_E_PARSE, "jwt.header", "header is not a JSON object");
    }
    const char *alg = json_string_value(json_object_get(hj, "alg"));
    const char *kid = json_string_value(json_object_get(hj, "kid"));
    out->alg = alg == NULL                   ? HUB_JWT_OTHER
               : strcmp(alg, "RS384") == 0 ? HUB_JWT_RS384
               : strcmp(alg, "ES384") == 0 ? HUB_JWT_ES384
                                           : HUB_JWT_OTHER;
    bool kid_ok = kid == NULL || strlen(kid) < sizeof out->kid;
    if (kid && kid_ok) snprintf(out->kid, sizeof out->kid, "%s", kid);
    /* A "crit" header names extensions we do not understand: refuse. */
    bool crit = json_object_get(hj, "crit") != NULL;
    json_decref(hj);
    if (!kid_ok) return hub_err_set(err, HUB_E_PARSE, "jwt.header", "kid too long");
    if (crit) return hub_err_set(err, HUB_E_PARSE, "jwt.header", "crit is not supported");
    unsigned char *p = part(d1 + 1, (size_t)(d2 - d1 - 1), &pn);
    if (p == NULL) return hub_err_set(err, HUB_E_PARSE, "jwt.payload", "payload is not base64url");
    out->payload = json_loadb((const char *)p, pn, JSON_REJECT_DUPLICATES, NULL);
    hub_free(p);
    if (!json_is_object(out->payload)) {
        hub_jwt_release(out);
        return hub_err_set(err, HUB_E_PARSE, "jwt.payload", "payload is not a JSON object");
    }
    out->sig = part(d2 + 1, (size_t)(s + n - d2 - 1), &out->sig_len);
    if (out->sig == NULL || out->sig_len == 0) {
        hub_jwt_release(out);
        return hub_err_set(err, HUB_E_PARSE, "jwt.signature", "signature is not base64url");
    }
    out->signing_input = s;
    out->signing_len = (size_t)(d2 - s);
    return HUB_OK;
}

/* ---- keys -------------------------------------------------------------------- */

static BIGNUM *bn_of(const json_t *k, const char *name) {
    const char *v = json_string_value(json_object_get(k, name));
    if (v == NULL) return NULL;
    size_t n = strlen(v), bn;
    if (n > 2048) return NULL;
    unsigned char *b = hub_malloc(n * 3 / 4 + 4);
    if (b == NULL) return NULL;
    BIGNUM *r = NULL;
    if (hub_b64url_decode(v, n, b, &bn) == HUB_OK && bn > 0) r = BN_bin2bn(b, (int)bn, NULL);
    hub_free(b);
    return r;
}

static EVP_PKEY *from_params(const char *type, OSSL_PARAM_BLD *bld) {
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY *pk = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    if (params && ctx && EVP_PKEY_fromdata_init(ctx) > 0)
        if (EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) <= 0) pk = NULL;
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pk;
}

static EVP_PKEY *rsa_key(const json_t *k) {
    BIGNUM *n = bn_of(k, "n"), *e = bn_of(k, "e");
    EVP_PKEY *pk = NULL;
    if (n && e && BN_num_bits(n) >= 2048 && BN_num_bits(n) <= 8192) {
        OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
        if (bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) &&
            OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e))
            pk = from_params("RSA", bld);
        OSSL_PARAM_BLD_free(bld);
    }
    BN_free(n);
    BN_free(e);
    return pk;
}

static EVP_PKEY *ec_key(const json_t *k) {
    const char *crv = json_string_value(json_object_get(k, "crv"));
    if (crv == NULL || strcmp(crv, "P-384") != 0) return NULL;
    const char *x = json_string_value(json_object_get(k, "x"));
    const char *y = json_string_value(json_object_get(k, "y"));
    if (!x || !y || strlen(x) > 64 || strlen(y) > 64) return NULL;
    unsigned char pt[1 + 48 + 48 + 8], xb[56], yb[56];
    size_t xn, yn;
    if (hub_b64url_decode(x, strlen(x), xb, &xn) || hub_b64url_decode(y, strlen(y), yb, &yn) ||
        xn != 48 || yn != 48)
        return NULL;
    pt[0] = 0x04; /* uncompressed point */
    memcpy(pt + 1, xb, 48);
    memcpy(pt + 49, yb, 48);
    EVP_PKEY *pk = NULL;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    if (bld && OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "secp384r1", 0) &&
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt, 97))
        pk = from_params("EC", bld);
    OSSL_PARAM_BLD_free(bld);
    return pk;
}

/* ES384 signatures are R || S (48 bytes each); OpenSSL wants DER. */
static unsigned char *es_der(const unsigned char *sig, size_t n, size_t *dn) {
    if (n != 96) return NULL;
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, 48, NULL), *s = BN_bin2bn(sig + 48, 48, NULL);
    if (es == NULL || r == NULL || s == NULL || ECDSA_SIG_set0(es, r, s) != 1) {
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(es);
        return NULL;
    }
    unsigned char *der = NULL;
    int len = i2d_ECDSA_SIG(es, &der);
    ECDSA_SIG_free(es);
    if (len <= 0) return NULL;
    *dn = (size_t)len;
    return der;
}

static bool verify_with(const hub_jwt *j, EVP_PKEY *pk) {
    const unsigned char *sig = j->sig;
    size_t sn = j->sig_len;
    unsigned char *der = NULL;
    if (j->alg == HUB_JWT_ES384) {
        der = es_der(j->sig, j->sig_len, &sn);
        if (der == NULL) return false;
        sig = der;
    }
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    bool ok = md && EVP_DigestVerifyInit(md, &pctx, EVP_sha384(), NULL, pk) == 1;
    if (ok && j->alg == HUB_JWT_RS384)
        ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) > 0;
    ok = ok && EVP_DigestVerify(md, sig, sn, (const unsigned char *)j->signing_input,
                                j->signing_len) == 1;
    EVP_MD_CTX_free(md);
    OPENSSL_free(der);
    return ok;
}

hub_status hub_jwt_verify(const hub_jwt *j, const char *jwks, size_t jwks_len, hub_err *err) {
    if (j->alg == HUB_JWT_OTHER)
        return hub_err_set(err, HUB_E_INVALID, "jwt.header",
                           "alg must be RS384 or ES384");
    json_t *ks = json_loadb(jwks, jwks_len, 0, NULL);
    json_t *keys = json_object_get(ks, "keys");
    if (!json_is_array(keys)) {
        json_decref(ks);
        return hub_err_set(err, HUB_E_PARSE, "jwks", "the client's JWKS has no keys array");
    }
    const char *want = j->alg == HUB_JWT_RS384 ? "RSA" : "EC";
    bool tried = false, ok = false;
    size_t i;
    json_t *k;
    json_array_foreach(keys, i, k) {
        const char *kty = json_string_value(json_object_get(k, "kty"));
        const char *kid = json_string_value(json_object_get(k, "kid"));
        const char *alg = json_string_value(json_object_get(k, "alg"));
        const char *use = json_string_value(json_object_get(k, "use"));
        if (kty == NULL || strcmp(kty, want) != 0) continue;
        if (j->kid[0] && (kid == NULL || strcmp(kid, j->kid) != 0)) continue;
        if (alg && strcmp(alg, j->alg == HUB_JWT_RS384 ? "RS384" : "ES384") != 0) continue;
        if (use && strcmp(use, "sig") != 0) continue;
        EVP_PKEY *pk = j->alg == HUB_JWT_RS384 ? rsa_key(k) : ec_key(k);
        if (pk == NULL) continue;
        tried = true;
        ok = verify_with(j, pk);
        EVP_PKEY_free(pk);
        if (ok) break;
    }
    json_decref(ks);
    if (ok) return HUB_OK;
    return hub_err_set(err, HUB_E_INVALID, "jwt.signature",
                       tried ? "signature does not verify" : "no usable key in the client's JWKS");
}

hub_status hub_jwks_check(const char *jwks, size_t n, size_t *nkeys, hub_err *err) {
    json_error_t je;
    json_t *ks = json_loadb(jwks, n, JSON_REJECT_DUPLICATES, &je);
    json_t *keys = json_object_get(ks, "keys");
    *nkeys = 0;
    if (!json_is_array(keys) || json_array_size(keys) == 0) {
        json_decref(ks);
        return hub_err_set(err, HUB_E_PARSE, "jwks", "not a JWKS: no \"keys\" array with keys");
    }
    size_t i;
    json_t *k;
    hub_status rc = HUB_OK;
    json_array_foreach(keys, i, k) {
        const char *kty = json_string_value(json_object_get(k, "kty"));
        if (json_object_get(k, "d") || json_object_get(k, "p")) {
            rc = hub_err_set(err, HUB_E_INVALID, "jwks",
                             "key %zu is a private key: register public keys only", i + 1);
            break;
        }
        EVP_PKEY *pk = kty && strcmp(kty, "RSA") == 0 ? rsa_key(k)
                       : kty && strcmp(kty, "EC") == 0 ? ec_key(k)
                                                       : NULL;
        if (pk == NULL) {
            rc = hub_err_set(err, HUB_E_INVALID, "jwks",
                             "key %zu is neither RSA (2048 bits or more) nor EC P-384", i + 1);
            break;
        }
        EVP_PKEY_free(pk);
        (*nkeys)++;
    }
    json_decref(ks);
    return rc;
}
