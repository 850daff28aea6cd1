/* mllp internals shared by the server and the client: the I/O layer that
 * makes a plain socket and a TLS session look the same. */
#ifndef HUB_MLLP_INTERNAL_H
#define HUB_MLLP_INTERNAL_H

#include "hub/mllp.h"

#include <openssl/ssl.h>
#include <sys/types.h>

/* A byte stream: a non-blocking socket, with TLS on top when ssl != NULL. */
typedef struct {
    int fd;
    SSL *ssl;
} hub__io;

enum { HUB__WANT_NONE = 0, HUB__WANT_READ = 1, HUB__WANT_WRITE = 2 };

/* > 0 bytes moved; 0 end of stream (read only); -1 would block (*want says
 * on what); -2 error (connection reset, TLS failure). */
ssize_t hub__io_read(hub__io *io, void *buf, size_t n, int *want);
ssize_t hub__io_write(hub__io *io, const void *buf, size_t n, int *want);
/* Drives a TLS handshake (accept or connect side, as set on the SSL):
 * 1 done, 0 in progress (*want), -1 failed (err filled). */
int hub__io_handshake(hub__io *io, int *want, hub_err *err);

/* TLS 1.2+ contexts with modern ciphers, no compression, no renegotiation. */
hub_status hub__tls_server_ctx(const char *cert, const char *key,
                               const char *client_ca, SSL_CTX **out,
                               hub_err *err);
hub_status hub__tls_client_ctx(const char *ca, const char *cert,
                               const char *key, bool insecure, SSL_CTX **out,
                               hub_err *err);
/* The verified peer certificate's subject in RFC 2253 form; false if none. */
bool hub__tls_subject(SSL *ssl, char *out, size_t cap);
/* Fills err from OpenSSL's error queue (and clears it). */
hub_status hub__tls_err(hub_err *err, const char *where, const char *what);

#endif
