/* core: arenas, byte slices, status/error values, logging, time, ids.
 *
 * Every other module builds on this header; it depends on libc only. */
#ifndef HUB_CORE_H
#define HUB_CORE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define HUB_VERSION "0.1.0"

/* ---- status ---------------------------------------------------------- */

/* One list gives the enum and hub_status_name(). */
#define HUB_STATUS_LIST(X)                                                   \
    X(HUB_OK, "ok")                                                          \
    X(HUB_AGAIN, "again")                                                    \
    X(HUB_E_NOMEM, "out of memory")                                          \
    X(HUB_E_LIMIT, "limit exceeded")                                         \
    X(HUB_E_PARSE, "parse error")                                            \
    X(HUB_E_FRAME, "framing error")                                          \
    X(HUB_E_IO, "i/o error")                                                 \
    X(HUB_E_ARG, "bad argument")                                             \
    X(HUB_E_CONFIG, "bad configuration")                                     \
    X(HUB_E_NOTFOUND, "not found")                                           \
    X(HUB_E_STORE, "store error")                                            \
    X(HUB_E_INVALID, "invalid")                                              \
    X(HUB_E_CONFLICT, "conflict")                                            \
    X(HUB_E_DUP, "duplicate")                                                \
    X(HUB_E_TLS, "tls error")                                                \
    X(HUB_E_TIMEOUT, "timeout")                                              \
    X(HUB_E_STATE, "bad state")                                              \
    X(HUB_E_UNSUPPORTED, "unsupported")

typedef enum {
#define HUB__ENUM(name, text) name,
    HUB_STATUS_LIST(HUB__ENUM)
#undef HUB__ENUM
    HUB__STATUS_COUNT
} hub_status;

/* "HUB_E_LIMIT" etc.; "?" for an out-of-range value. */
const char *hub_status_name(hub_status s);
/* "limit exceeded" etc. */
const char *hub_status_text(hub_status s);

/* Details of a failure, in caller-owned storage. The innermost failure fills
 * it; callers pass it up untouched. `msg` never carries message content. */
typedef struct {
    hub_status code;
    char where[48];
    char msg[160];
} hub_err;

/* Fills `e` (if not NULL) and returns `code`, so a failure is one line:
 *   return hub_err_set(err, HUB_E_LIMIT, "PID-5", "field over %d bytes", n); */
hub_status hub_err_set(hub_err *e, hub_status code, const char *where,
                       const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void hub_err_clear(hub_err *e);

/* ---- memory ---------------------------------------------------------- */

/* All heap allocation of the hub goes through these, so tests can make the
 * N-th allocation fail (hub_mem_fail_after) and check HUB_E_NOMEM paths. */
void *hub_malloc(size_t n);
void *hub_calloc(size_t count, size_t size);
void *hub_realloc(void *p, size_t n);
void hub_free(void *p);
char *hub_strdup(const char *s);
char *hub_strndup(const char *s, size_t n);
/* Test hook: allocation number `n` (1-based, counted from this call) and all
 * after it fail; 0 turns failures off. */
void hub_mem_fail_after(long n);

/* ---- slices ---------------------------------------------------------- */

/* A view of bytes owned by someone else; never NUL-terminated by contract. */
typedef struct {
    const char *p;
    size_t n;
} hub_slice;

#define HUB_SLICE_LIT(s) ((hub_slice){(s), sizeof(s) - 1})
static inline hub_slice hub_slice_of(const char *p, size_t n) {
    return (hub_slice){p, n};
}
hub_slice hub_slice_cstr(const char *s);
bool hub_slice_eq(hub_slice a, hub_slice b);
bool hub_slice_eq_cstr(hub_slice a, const char *s);
bool hub_slice_eq_nocase(hub_slice a, const char *s);

/* ---- arena ----------------------------------------------------------- */

/* A bump allocator: one per message; reset once the message is done.
 * Large requests get a block of their own. */
typedef struct hub__arena_block hub__arena_block;
typedef struct {
    hub__arena_block *head;  /* current block */
    hub__arena_block *spare; /* blocks kept by reset for reuse */
    size_t block;            /* default block size */
    size_t used_total;       /* bytes handed out since the last reset */
} hub_arena;

void hub_arena_init(hub_arena *a, size_t block);
/* NULL on allocation failure. Memory is 16-byte aligned, not zeroed. */
void *hub_arena_alloc(hub_arena *a, size_t n);
void *hub_arena_calloc(hub_arena *a, size_t n);
/* Grows the most recent allocation `p` (of `old` bytes) to `n` bytes, in
 * place when possible; otherwise copies. NULL on failure. */
void *hub_arena_grow(hub_arena *a, void *p, size_t old, size_t n);
char *hub_arena_strndup(hub_arena *a, const char *s, size_t n);
char *hub_arena_sprintf(hub_arena *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Frees nothing: keeps one block for reuse, releases the rest. */
void hub_arena_reset(hub_arena *a);
void hub_arena_release(hub_arena *a);

/* ---- growable byte buffer (heap) --------------------------------------- */

typedef struct {
    char *p;
    size_t n, cap;
} hub_buf;

void hub_buf_init(hub_buf *b);
hub_status hub_buf_reserve(hub_buf *b, size_t extra);
hub_status hub_buf_append(hub_buf *b, const void *p, size_t n);
hub_status hub_buf_append_cstr(hub_buf *b, const char *s);
hub_status hub_buf_printf(hub_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Drops the first `n` bytes. */
void hub_buf_consume(hub_buf *b, size_t n);
void hub_buf_release(hub_buf *b);

/* ---- files -------------------------------------------------------------- */

/* Reads the whole file at `path` into *out (heap, hub_free it; a NUL is
 * added and not counted in *n). Errors: HUB_E_IO (msg: the system's
 * reason), HUB_E_LIMIT (over `max` bytes), HUB_E_NOMEM. */
hub_status hub_file_read(const char *path, size_t max, char **out, size_t *n,
                         hub_err *err);

/* ---- logging ---------------------------------------------------------- */

typedef enum {
    HUB_LOG_TRACE,
    HUB_LOG_DEBUG,
    HUB_LOG_INFO,
    HUB_LOG_WARN,
    HUB_LOG_ERROR,
    HUB_LOG_OFF
} hub_log_level;

typedef enum { HUB_LOGFMT_AUTO, HUB_LOGFMT_TEXT, HUB_LOGFMT_JSON } hub_log_format;

extern hub_log_level hub__log_level;
void hub_log_setup(hub_log_level level, hub_log_format fmt, int fd);
hub_status hub_log_level_parse(const char *s, hub_log_level *out);
/* One line per event: `mod` is the module, `fmt` is key=value pairs. */
void hub__log(hub_log_level lvl, const char *mod, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Arguments are not evaluated below the level. */
#define HUB_LOG(lvl, mod, ...)                                               \
    do {                                                                     \
        if ((lvl) >= hub__log_level) hub__log((lvl), (mod), __VA_ARGS__);    \
    } while (0)
#define HUB_LOG_TRACE(mod, ...) HUB_LOG(HUB_LOG_TRACE, mod, __VA_ARGS__)
#define HUB_LOG_DEBUG(mod, ...) HUB_LOG(HUB_LOG_DEBUG, mod, __VA_ARGS__)
#define HUB_LOG_INFO(mod, ...) HUB_LOG(HUB_LOG_INFO, mod, __VA_ARGS__)
#define HUB_LOG_WARN(mod, ...) HUB_LOG(HUB_LOG_WARN, mod, __VA_ARGS__)
#define HUB_LOG_ERROR(mod, ...) HUB_LOG(HUB_LOG_ERROR, mod, __VA_ARGS__)

/* ---- time and ids ------------------------------------------------------ */

/* Wall clock, milliseconds since the epoch. */
int64_t hub_now_ms(void);
/* Monotonic clock, nanoseconds. */
int64_t hub_mono_ns(void);
/* ISO 8601 UTC with milliseconds, e.g. 2026-11-25T11:32:02.123Z; `out` has
 * at least 32 bytes. */
void hub_time_iso(int64_t ms, char out[32]);
/* A random RFC 4122 version-4 UUID, lower case, 36 chars + NUL. */
void hub_uuid(char out[37]);

/* ---- metrics ----------------------------------------------------------- */

/* Process-wide counters and gauges, rendered in Prometheus text format.
 * Registration happens at start-up; updates are lock-free. */
typedef struct hub_metric hub_metric;
typedef enum { HUB_METRIC_COUNTER, HUB_METRIC_GAUGE } hub_metric_kind;

/* `name` and `help` must be string literals (kept by pointer); `labels`, like
 * `channel="default"` or NULL, is copied. Returns the same metric for the
 * same name and labels. NULL only when the registry is full. */
hub_metric *hub_metric_get(hub_metric_kind kind, const char *name,
                           const char *labels, const char *help);
void hub_metric_add(hub_metric *m, int64_t v);
void hub_metric_set(hub_metric *m, int64_t v);
int64_t hub_metric_value(const hub_metric *m);
hub_status hub_metrics_render(hub_buf *out);

/* ---- configuration ------------------------------------------------------ */

/* One table (hub/core/config.c) names every setting: key, type, default,
 * bounds, flag and field. Defaults, then the JSON file (nested objects or
 * dotted keys), then HUB_<KEY> environment variables, then flags. */
typedef struct {
    char data_dir[512];
    char mllp_host[64];
    int mllp_port;
    char http_host[64];
    int http_port;
    int64_t mllp_max_frame;
    int mllp_max_connections;
    int mllp_idle_timeout; /* seconds */
    int64_t http_max_body;
    int http_threads;
    int http_blocking_threads;
    int http_max_connections;
    bool durable;          /* fsync every commit group */
    int commit_batch_max;  /* messages per commit group */
    char log_level[16];
    char log_format[16];
    char tls_cert[512];
    char tls_key[512];
    char tls_client_ca[512];
    char mappings_dir[512];
    char map_site_dir[512];     /* site mapping tables (Z-segments, local codes) */
    char conformance_dir[512];
    bool demo;
    int demo_interval_ms;
    int shutdown_grace_ms;
    bool fhir_lenient;          /* unknown elements are warnings */
    int fhir_max_bundle_entries;
    char fhir_base_url[256];    /* absolute base for Location; "" = Host */
    bool auth;                  /* access tokens required on /fhir */
    bool auth_disable;          /* not even with TLS on */
    int auth_token_ttl;         /* seconds */
    char auth_token_url[256];   /* the aud of client assertions; "" = Host */
    bool audit;
    char audit_syslog[256];
    bool mpi_enabled;           /* the patient index (the rest of "mpi" is its module's) */     /* udp://host:port, tcp://host:port or "" */
    int http_rate_limit;        /* requests/s per client; 0 none */
    int http_rate_burst;
    int http_max_per_client;    /* concurrent connections per address */
    int http_timeout;           /* idle/slow connection timeout, seconds */
    int fhir_max_search_params;
    int fhir_max_includes;
    int fhir_max_count;
    /* routing (hub/route) */
    bool route_allow_http;      /* http:// rest-hooks (tests, local use) */
    int route_max_failures;     /* consecutive failures before error */
    int route_retry_min_ms;
    int route_retry_max_ms;
    int route_timeout_ms;       /* one delivery */
    char route_ca_file[512];    /* CAs for rest-hook/MLLP TLS; "" system */
    char route_client_cert[512]; /* client certificate for deliveries */
    char route_client_key[512];
    int route_retention_days;   /* delivered events kept; 0 prune at once, -1 never */
    int route_prune_interval_ms;
    /* The configuration file's own JSON (a jansson json_t *), kept so that
     * modules can read structured sections such as "channels"; NULL when no
     * file was given. Owned; freed by hub_cfg_release. */
    void *file_json;
} hub_cfg;

typedef enum { HUB_CFG_INT, HUB_CFG_SIZE, HUB_CFG_BOOL, HUB_CFG_STR } hub_cfg_type;

typedef struct {
    const char *key;  /* "mllp.port" */
    hub_cfg_type type;
    const char *def;  /* default, as text */
    int64_t min, max; /* bounds for INT and SIZE; max length for STR */
    size_t offset;    /* offsetof(hub_cfg, field) */
    const char *flag; /* "--mllp-port" or NULL */
    const char *help;
} hub_cfg_entry;

extern const hub_cfg_entry hub_cfg_table[];
extern const size_t hub_cfg_table_len;

/* Fills every field with its default. */
void hub_cfg_defaults(hub_cfg *c);
void hub_cfg_release(hub_cfg *c);
/* Sets one setting from text; `where` names its source in errors
 * ("--mllp-port", "hub.json", "HUB_MLLP_PORT"). */
hub_status hub_cfg_set(hub_cfg *c, const char *key, const char *value,
                       const char *where, hub_err *err);
const hub_cfg_entry *hub_cfg_find(const char *key);
const hub_cfg_entry *hub_cfg_find_flag(const char *flag);
hub_status hub_cfg_load_file(hub_cfg *c, const char *path, hub_err *err);
hub_status hub_cfg_load_env(hub_cfg *c, hub_err *err);
/* Parses "16MiB", "64k", "1048576". */
hub_status hub_parse_size(const char *s, int64_t *out);

#endif
