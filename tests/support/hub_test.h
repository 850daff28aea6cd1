/* The e2e harness: spawns `build/hub serve` on free ports with a temporary
 * data directory and talks to it over real sockets. Every e2e test of every
 * issue uses it. Criterion runs each test in its own process, so the
 * "current hub" is a per-process global. */
#ifndef HUB_TEST_H
#define HUB_TEST_H

#include "hub/core.h"
#include <sys/types.h>

typedef struct {
    pid_t pid;
    char dir[320];  /* temporary data directory (removed by stop) */
    char log[340];  /* the hub's stderr, dir/../hub.log */
    int mllp_port;
    int http_port;
} hub_test_hub;

/* A fresh temporary directory under $TMPDIR (or /tmp); `out` gets its path. */
void hub_test_tmpdir(char out[256]);
/* Removes a directory tree. */
void hub_test_rmtree(const char *dir);

/* Starts `hub serve --data DIR --mllp-port 0 --http-port 0 --log-format json`
 * plus `extra` (NULL-terminated, may be NULL), in `dir` if it is non-empty
 * (else a new temporary one), and waits until it is ready (serve.json).
 * Fails the current test when it does not come up in 10 s. */
void hub_test_start(hub_test_hub *h, const char *const *extra);
/* Restarts a stopped hub on the same data directory. */
void hub_test_restart(hub_test_hub *h, const char *const *extra);
/* Sends `sig`, waits; returns the exit status (128+signal if killed). */
int hub_test_signal_wait(hub_test_hub *h, int sig);
/* Stops (SIGTERM) and removes the data directory. */
void hub_test_stop(hub_test_hub *h);

/* The hub of hub_test_up/hub_test_down (for .init/.fini). */
extern hub_test_hub hub_test_current;
void hub_test_up(void);
void hub_test_down(void);
int hub_test_mllp_port(void);
int hub_test_http_port(void);

/* A connected TCP socket to 127.0.0.1:port (fails the test otherwise). */
int hub_test_dial(int port);

/* One HTTP/1.1 request (Connection: close). Returns the status code, or -1.
 * `resp` (may be NULL) gets the body; `headers` (may be NULL) the raw
 * header block. */
int hub_test_http(int port, const char *method, const char *path,
                  const char *ctype, const char *body, size_t n, hub_buf *resp,
                  hub_buf *headers);
/* The same with raw header lines (each ending in CRLF; may be NULL). */
int hub_test_http_raw(int port, const char *method, const char *path,
                      const char *hdrs, const char *body, size_t n,
                      hub_buf *resp, hub_buf *headers);

/* MLLP: sends one framed message; reads one ACK frame (without framing)
 * into `ack` with a timeout. Returns 0 on success. */
int hub_test_send_frame(int fd, const char *msg);
int hub_test_read_frame(int fd, hub_buf *ack, int timeout_ms);
/* MSA-1 of an ACK ("AA", "AE", ...), in a static buffer. */
const char *hub_test_ack_code(const char *ack);

/* Runs argv (argv[0] a path), capturing stdout and stderr. Returns the
 * exit status, 128+signal if killed. `in` (may be NULL) is written to
 * stdin. */
int hub_test_run(const char *const *argv, const char *in, hub_buf *out,
                 hub_buf *err);

/* Runs a curl command line whose `-w` prints "\n%{http_code}" last: out
 * gets the body (NUL-terminated, initialised here), the result is the
 * HTTP status (0 when curl printed none). */
int hub_test_curl(const char *const *argv, hub_buf *out);

/* Reads a whole file; NULL if it cannot. Caller frees with hub_free. */
char *hub_test_read_file(const char *path, size_t *n);
/* True (and fills `out`) when ../shared/corpus/<rel> exists. */
bool hub_test_corpus(const char *rel, char out[512]);

#endif
