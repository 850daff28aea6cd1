/* Helpers for MLLP tests over real sockets: dial, send raw bytes, read one
 * frame, build a minimal ACK, make throwaway TLS material. */
#ifndef HUB_MLLP_TEST_H
#define HUB_MLLP_TEST_H

#include "hub/core.h"
#include "hub/mllp.h"

/* A connected blocking TCP socket to 127.0.0.1:port, or -1. */
int mt_dial(int port);
/* Writes all of p; false on error. */
bool mt_write(int fd, const void *p, size_t n);
bool mt_write_frame(int fd, const char *msg);
/* Reads one frame's payload into out (NUL-terminated) within timeout_ms.
 * Returns its length, -1 on EOF/error, -2 on timeout. */
long mt_read_frame(int fd, char *out, size_t cap, int timeout_ms);
/* True when the peer closes (EOF or reset) within timeout_ms, reading and
 * discarding anything it sends before that. */
bool mt_wait_closed(int fd, int timeout_ms);
/* "MSH|^~\&|SND|FAC|HUB|HUB|20260101000000||ADT^A01|<id>|P|2.5\rPID|1||<id>\r" */
void mt_message(char *out, size_t cap, const char *control_id);
/* A minimal ACK frame payload for `msg` with `code` (AA, AE, AR, CA ...):
 * MSH + MSA|code|MSH-10. */
void mt_ack_for(const char *msg, size_t n, const char *code, char *out, size_t cap);
/* The MSA-1 of a reply, in out (3 bytes); false when absent. */
bool mt_ack_code(const char *ack, char out[3]);
/* Makes a temp dir with ca.pem, server.pem, server.key, client.pem,
 * client.key (CN=hub-test-client) and other-ca.pem + rogue client signed by
 * it. Returns the dir (static storage) or NULL. */
const char *mt_tls_dir(void);
/* Runs a shell command, returns its exit status (or -1). */
int mt_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
