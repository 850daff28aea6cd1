/* mllp: the Minimal Lower Layer Protocol transport.
 *
 *   - a sans-I/O framer (hub_mllp_next): bytes in, frames out;
 *   - a server: ONE epoll thread serving every connection of every channel,
 *     plain TCP or TLS (OpenSSL 3, TLS 1.2 and 1.3 only, optional mutual TLS);
 *   - an outbound client: connect, optional TLS, send a frame, wait for its
 *     ACK frame, reconnect with exponential backoff; one frame in flight, so
 *     order is kept.
 *
 * A frame on the wire is 0x0B <payload> 0x1C 0x0D. */
#ifndef HUB_MLLP_H
#define HUB_MLLP_H

#include "hub/core.h"

#define HUB_MLLP_SB 0x0B /* start block */
#define HUB_MLLP_EB 0x1C /* end block, followed by HUB_MLLP_CR */
#define HUB_MLLP_CR 0x0D

/* How many bytes of an oversize frame the server hands to on_frame (enough
 * for the MSH segment, so a NACK can be built). */
#define HUB_MLLP_OVERSIZE_PREFIX (64u << 10)

/* ---- framer ------------------------------------------------------------- */

/* State of one byte stream. Zero it with hub_mllp_reader_init.
 *
 * Contract of hub_mllp_next(r, in, &frame, err):
 *   `in` is every byte the caller holds and has not yet dropped. After EVERY
 *   call the caller drops the first `r->consumed` bytes of its buffer (after
 *   using `frame`, which points into `in`) and, next time, passes what is
 *   left plus any new bytes appended. The reader keeps its scan position
 *   relative to that, so no byte is scanned twice.
 *
 *   HUB_OK      one frame: `frame` is its payload (without 0x0B and 0x1C 0x0D,
 *               possibly empty); borrowed from `in`.
 *   HUB_AGAIN   no complete frame yet; append more bytes and call again.
 *   HUB_E_LIMIT the frame's payload is over `max_frame` bytes. `frame` is its
 *               first bytes (up to HUB_MLLP_OVERSIZE_PREFIX, as many as are
 *               at hand) and r->oversize_total is the payload length seen so
 *               far. The reader then discards the rest of that frame (up to
 *               0x1C 0x0D) by itself; later frames come out normally.
 *
 * Bytes outside a frame (before 0x0B) are skipped and counted in `skipped`
 * (running total); they are never an error. Inside a frame, 0x0B is payload
 * and a frame ends only at 0x1C 0x0D (0x1C followed by another byte is
 * payload), as the MLLP release 2 wire format says. */
typedef struct {
    size_t max_frame; /* 0 means HUB_MAX_FRAME */
    size_t consumed;  /* out: bytes of `in` the caller drops after the call */
    uint64_t skipped; /* out: total bytes skipped outside frames */
    uint64_t frames;  /* out: total frames returned (HUB_OK) */
    size_t oversize_total; /* out: after HUB_E_LIMIT, payload bytes seen */
    /* private */
    int state;   /* 0 outside a frame, 1 inside, 2 discarding an oversize one */
    size_t scan; /* resume offset, relative to the next `in` */
} hub_mllp_reader;

void hub_mllp_reader_init(hub_mllp_reader *r, size_t max_frame);
hub_status hub_mllp_next(hub_mllp_reader *r, hub_slice in, hub_slice *frame,
                         hub_err *err);
/* True when the reader is between frames (no partial frame pending). */
bool hub_mllp_reader_idle(const hub_mllp_reader *r);
/* Appends 0x0B payload 0x1C 0x0D to `out`. */
hub_status hub_mllp_frame_append(hub_buf *out, const char *payload, size_t n);

/* ---- server ------------------------------------------------------------- */

/* One listening channel. Strings are copied by hub_mllp_server_start. */
typedef struct {
    const char *name;          /* "default"; used in logs and metric labels */
    const char *host;          /* NULL or "" = 0.0.0.0; IPv6 literals work */
    int port;                  /* 0 = pick a free port (see _server_port) */
    const char *tls_cert;      /* PEM chain; TLS is on when cert is set */
    const char *tls_key;       /* PEM private key */
    const char *tls_client_ca; /* PEM CAs: when set, a client certificate is
                                  required and verified (mutual TLS); its
                                  subject becomes ctx->tls_subject */
    size_t max_frame;          /* 0 = HUB_MAX_FRAME */
    int idle_timeout_ms;       /* 0 = none; closes a connection with no I/O and
                                  no reply owed for that long */
    int max_connections;       /* 0 = HUB_MAX_MLLP_CONNS; beyond it a new
                                  connection is accepted and closed at once */
    const char *const *allow;  /* optional source filter: IPs or CIDRs
                                  ("10.0.0.0/8", "::1"); others are refused
                                  at accept */
    size_t n_allow;
} hub_mllp_channel_cfg;

typedef struct {
    const hub_mllp_channel_cfg *channels;
    size_t n_channels;
    /* Bytes of replies buffered for a connection whose peer does not read;
     * at this mark the server stops reading from it (no new frames) until
     * the peer drains below half of it. 0 = 4 MiB. */
    size_t max_output;
} hub_mllp_server_cfg;

/* Empty frames (0x0B 0x1C 0x0D) carry no MSH to answer: they are logged and
 * skipped, not passed to on_frame. At most 1024 frames per connection wait
 * for their replies; beyond that the connection is not read until replies
 * go out, so a pipelining peer cannot queue unbounded work.
 *
 * What the server knows of a frame's connection. All strings are borrowed
 * for the duration of the callback. */
typedef struct {
    uint64_t conn_id;      /* unique per server, never 0 */
    uint64_t seq;          /* per-connection frame number, from 1 */
    const char *channel;   /* channel name */
    size_t channel_index;  /* index into hub_mllp_server_cfg.channels */
    const char *peer;      /* "ip:port" ("[v6]:port" for IPv6) */
    const char *tls_subject; /* verified client certificate subject, RFC 2253
                                form; NULL without mutual TLS */
    bool oversize;         /* the frame was over max_frame: only its first
                              bytes are passed; the connection closes once the
                              reply for this seq is written */
} hub_mllp_frame_ctx;

typedef struct {
    void *ud;
    /* Required. Called on the loop thread for every complete non-empty frame,
     * in order per connection. Must not block. `frame` is borrowed for the
     * duration of the call. Every frame is owed exactly one reply through
     * hub_mllp_server_reply (with its seq); later replies of the connection
     * wait for it. It must not call hub_mllp_server_stop or _free. */
    void (*on_frame)(void *ud, const hub_mllp_frame_ctx *ctx, const char *frame,
                     size_t n);
    /* Optional, loop thread: a connection was accepted (after the TLS
     * handshake for TLS channels; seq is 0, oversize false). */
    void (*on_open)(void *ud, const hub_mllp_frame_ctx *ctx);
    /* Optional, loop thread: a connection that was opened is closed;
     * `reason` is one of "peer", "idle", "oversize", "reply" (close_after),
     * "error", "stop", "tls". Also the label of hub_mllp_closed_total. */
    void (*on_close)(void *ud, const hub_mllp_frame_ctx *ctx, const char *reason);
    /* Optional, loop thread, must not block: a connection refused before
     * it opened (its address not on the channel's allow-list, the channel
     * full, a TLS handshake that failed, client certificate included);
     * ctx has conn_id 0 and the peer; `why` is a few words, no contents.
     * Gets refused_ud, not ud. */
    void (*on_refused)(void *refused_ud, const hub_mllp_frame_ctx *ctx, const char *why);
    void *refused_ud;
    /* Optional, loop thread: called after each round of events in which
     * on_frame was called, before the round's replies are written, so that
     * a handler can collect a round's frames in on_frame and hand them on
     * together here. Unlike on_frame it may take the time of a store
     * commit: the connections wait for it (ingest commits there when the
     * store's writer is idle). Gets ud. */
    void (*on_round)(void *ud);
} hub_mllp_callbacks;

typedef struct hub_mllp_server hub_mllp_server;

/* Binds every channel, loads TLS material, starts the loop thread. On
 * failure nothing is left running; err names the channel ("mllp.<name>"). */
hub_status hub_mllp_server_start(const hub_mllp_server_cfg *cfg,
                                 const hub_mllp_callbacks *cb,
                                 hub_mllp_server **out, hub_err *err);
/* The port channel `channel_index` is bound to (useful with port 0); -1 for
 * a bad index. */
int hub_mllp_server_port(const hub_mllp_server *s, size_t channel_index);
/* Queues the reply to frame `seq` of connection `conn_id`; callable from any
 * thread, including inside on_frame. The bytes are copied and written
 * as-is (the caller frames them, see hub_mllp_frame_append). Replies of a
 * connection are written in seq order whatever order they arrive in.
 * `close_after` closes the connection once this reply is written. A reply for
 * a connection that is gone is dropped silently (HUB_OK). HUB_E_NOMEM when
 * the copy fails; HUB_E_STATE after hub_mllp_server_stop. */
hub_status hub_mllp_server_reply(hub_mllp_server *s, uint64_t conn_id,
                                 uint64_t seq, const void *bytes, size_t n,
                                 bool close_after);
/* Stops accepting, waits up to grace_ms for owed replies to be written,
 * closes every connection and joins the loop thread. Idempotent. */
void hub_mllp_server_stop(hub_mllp_server *s, int grace_ms);
/* Stops (grace 0) if still running, then frees. NULL is a no-op. */
void hub_mllp_server_free(hub_mllp_server *s);
/* Number of connections open now (loop thread's view). */
int hub_mllp_server_conn_count(const hub_mllp_server *s);

/* ---- outbound client ---------------------------------------------------- */

typedef struct {
    const char *host;         /* name or address */
    int port;
    bool tls;
    const char *ca_file;      /* verify the server against these CAs; NULL =
                                 the system's default store */
    const char *cert_file;    /* client certificate (mutual TLS), optional */
    const char *key_file;
    const char *server_name;  /* SNI and name checked in the certificate;
                                 NULL = host */
    bool insecure;            /* skip verification (tests only) */
    int connect_timeout_ms;   /* 0 = 5000 */
    int ack_timeout_ms;       /* 0 = 30000 */
    int backoff_min_ms;       /* 0 = 100 */
    int backoff_max_ms;       /* 0 = 30000 */
    int max_attempts;         /* connection attempts per send; 0 = 1 */
    size_t max_frame;         /* largest ACK accepted; 0 = HUB_MAX_FRAME */
} hub_mllp_client_cfg;

typedef struct hub_mllp_client hub_mllp_client;

/* Creates a client (copies cfg); connects lazily. */
hub_status hub_mllp_client_new(const hub_mllp_client_cfg *cfg,
                               hub_mllp_client **out, hub_err *err);
/* Sends one message (payload, unframed) and waits for one reply frame,
 * which replaces the contents of `ack`. Connects first if needed; a failed
 * connection is retried up to max_attempts with exponential backoff
 * (min, 2*min, ... up to max). A connection that fails before the ACK
 * arrives is closed and the message resent on a new one while attempts
 * remain (the receiver deduplicates on MSH-10). On HUB_E_TIMEOUT (no ACK
 * within ack_timeout_ms) the connection is closed so a late ACK can never be
 * taken for the next message's. Errors: HUB_E_IO, HUB_E_TLS, HUB_E_TIMEOUT,
 * HUB_E_LIMIT (reply frame too large), HUB_E_NOMEM. */
hub_status hub_mllp_client_send(hub_mllp_client *c, const char *msg, size_t n,
                                hub_buf *ack, hub_err *err);
/* Connects now if not connected (same attempts and backoff as a send). */
hub_status hub_mllp_client_connect(hub_mllp_client *c, hub_err *err);
/* Closes the connection (the next send reconnects). */
void hub_mllp_client_close(hub_mllp_client *c);
/* Connections made so far (counts reconnects). */
unsigned hub_mllp_client_connects(const hub_mllp_client *c);
void hub_mllp_client_free(hub_mllp_client *c);

/* ---- small helpers for ACKs (minimal scanning, no full v2 parse) -------- */

/* Field `idx` (1-based, MSH-1 is the separator) of segment `seg` ("MSH",
 * "MSA") of an ER7 message whose segments end in CR (LF also accepted).
 * Returns false when absent. Components are not split. */
bool hub_mllp_field(hub_slice msg, const char *seg, int idx, hub_slice *out);

#endif
