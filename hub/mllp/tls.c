/* The TLS layer (OpenSSL 3) and the plain-socket layer behind one read/write
 * interface, so the event loop and the client do not care which is in use. */
#include "internal.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* TLS 1.2 suites: forward secrecy and AEAD only. TLS 1.3 suites are
 * OpenSSL's defaults, all of them modern. */
static const char TLS12_CIPHERS[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

hub_status hub__tls_err(hub_err *err, const char *where, const char *what) {
    unsigned long e = ERR_get_error();
    char buf[120] = "";
    if (e) ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    return hub_err_set(err, HUB_E_TLS, where, "%s%s%s", what, buf[0] ? ": " : "",
                       buf);
}

static hub_status common_ctx(SSL_CTX *ctx, hub_err *err) {
    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION))
        return hub__tls_err(err, "tls", "cannot set the minimum protocol");
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_NO_SESSION_RESUMPTION_ON_RENEGOTIATION);
    if (!SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS))
        return hub__tls_err(err, "tls", "cannot set the cipher list");
    /* Partial writes let the loop keep its output buffer simple. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    return HUB_OK;
}

hub_status hub__tls_server_ctx(const char *cert, const char *key,
                               const char *client_ca, SSL_CTX **out,
                               hub_err *err) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) return hub__tls_err(err, "tls", "cannot create a context");
    hub_status st = common_ctx(ctx, err);
    if (st != HUB_OK) goto fail;
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        st = hub__tls_err(err, "tls.cert", "cannot load the certificate");
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key && key[0] ? key : cert,
                                    SSL_FILETYPE_PEM) != 1) {
        st = hub__tls_err(err, "tls.key", "cannot load the private key");
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        st = hub__tls_err(err, "tls.key", "key does not match the certificate");
        goto fail;
    }
    if (client_ca && client_ca[0]) {
        if (SSL_CTX_load_verify_locations(ctx, client_ca, NULL) != 1) {
            st = hub__tls_err(err, "tls.client_ca", "cannot load the client CAs");
            goto fail;
        }
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(client_ca);
        if (names) SSL_CTX_set_client_CA_list(ctx, names);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                           NULL);
    }
    /* One loop thread, short-lived state: no session tickets to rotate. */
    SSL_CTX_set_num_tickets(ctx, 0);
    *out = ctx;
    return HUB_OK;
fail:
    SSL_CTX_free(ctx);
    return st;
}

hub_status hub__tls_client_ctx(const char *ca, const char *cert,
                               const char *key, bool insecure, SSL_CTX **out,
                               hub_err *err) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) return hub__tls_err(err, "tls", "cannot create a context");
    hub_status st = common_ctx(ctx, err);
    if (st != HUB_OK) goto fail;
    if (ca && ca[0]) {
        if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
            st = hub__tls_err(err, "--ca", "cannot load the CA file");
            goto fail;
        }
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        st = hub__tls_err(err, "tls", "cannot load the default CAs");
        goto fail;
    }
    if (cert && cert[0]) {
        if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
            st = hub__tls_err(err, "--cert", "cannot load the certificate");
            goto fail;
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, key && key[0] ? key : cert,
                                        SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(ctx) != 1) {
            st = hub__tls_err(err, "--key", "cannot load the private key");
            goto fail;
        }
    }
    SSL_CTX_set_verify(ctx, insecure ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
    *out = ctx;
    return HUB_OK;
fail:
    SSL_CTX_free(ctx);
    return st;
}

bool hub__tls_subject(SSL *ssl, char *out, size_t cap) {
    X509 *x = SSL_get0_peer_certificate(ssl);
    if (x == NULL || SSL_get_verify_result(ssl) != X509_V_OK || cap == 0)
        return false;
    BIO *b = BIO_new(BIO_s_mem());
    if (b == NULL) return false;
    X509_NAME_print_ex(b, X509_get_subject_name(x), 0, XN_FLAG_RFC2253);
    int n = BIO_read(b, out, (int)cap - 1);
    BIO_free(b);
    if (n < 0) n = 0;
    out[n] = '\0';
    return true;
}

static ssize_t ssl_result(hub__io *io, int r, int *want) {
    int e = SSL_get_error(io->ssl, r);
    switch (e) {
    case SSL_ERROR_WANT_READ:
        *want = HUB__WANT_READ;
        return -1;
    case SSL_ERROR_WANT_WRITE:
        *want = HUB__WANT_WRITE;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    default:
        ERR_clear_error();
        return -2;
    }
}

ssize_t hub__io_read(hub__io *io, void *buf, size_t n, int *want) {
    *want = HUB__WANT_NONE;
    if (io->ssl) {
        size_t got = 0;
        int r = SSL_read_ex(io->ssl, buf, n, &got);
        if (r == 1) return (ssize_t)got;
        return ssl_result(io, r, want);
    }
    for (;;) {
        ssize_t r = recv(io->fd, buf, n, 0);
        if (r >= 0) return r;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            *want = HUB__WANT_READ;
            return -1;
        }
        return -2;
    }
}

ssize_t hub__io_write(hub__io *io, const void *buf, size_t n, int *want) {
    *want = HUB__WANT_NONE;
    if (io->ssl) {
        size_t put = 0;
        int r = SSL_write_ex(io->ssl, buf, n, &put);
        if (r == 1) return (ssize_t)put;
        ssize_t x = ssl_result(io, r, want);
        return x == 0 ? -2 : x;
    }
    for (;;) {
        ssize_t r = send(io->fd, buf, n, MSG_NOSIGNAL);
        if (r >= 0) return r;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            *want = HUB__WANT_WRITE;
            return -1;
        }
        return -2;
    }
}

int hub__io_handshake(hub__io *io, int *want, hub_err *err) {
    *want = HUB__WANT_NONE;
    int r = SSL_do_handshake(io->ssl);
    if (r == 1) return 1;
    int e = SSL_get_error(io->ssl, r);
    if (e == SSL_ERROR_WANT_READ) {
        *want = HUB__WANT_READ;
        return 0;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        *want = HUB__WANT_WRITE;
        return 0;
    }
    long vr = SSL_get_verify_result(io->ssl);
    if (vr != X509_V_OK) {
        ERR_clear_error();
        hub_err_set(err, HUB_E_TLS, "tls", "certificate verification failed: %s",
                    X509_verify_cert_error_string(vr));
        return -1;
    }
    if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
        hub_err_set(err, HUB_E_TLS, "tls", "connection closed during handshake");
        return -1;
    }
    hub__tls_err(err, "tls", "handshake failed");
    return -1;
}
