/* The configuration table. Flags, file and environment all go through
 * hub_cfg_set, so bounds and error messages are the same everywhere. */
#include "hub/core.h"
#include "hub/limits.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#define F(field) offsetof(hub_cfg, field)
#define STRMAX(field) ((int64_t)sizeof(((hub_cfg *)0)->field) - 1)

const hub_cfg_entry hub_cfg_table[] = {
    {"data", HUB_CFG_STR, "./hub-data", 1, STRMAX(data_dir), F(data_dir),
     "--data", "directory of the embedded store"},
    {"mllp.host", HUB_CFG_STR, "0.0.0.0", 1, STRMAX(mllp_host), F(mllp_host),
     "--mllp-host", "address the default MLLP channel binds"},
    {"mllp.port", HUB_CFG_INT, "2575", 0, 65535, F(mllp_port), "--mllp-port",
     "port of the default MLLP channel (0 picks a free one)"},
    {"http.host", HUB_CFG_STR, "0.0.0.0", 1, STRMAX(http_host), F(http_host),
     "--http-host", "address the HTTP listener binds"},
    {"http.port", HUB_CFG_INT, "8080", 0, 65535, F(http_port), "--http-port",
     "port of the HTTP listener (0 picks a free one)"},
    {"mllp.max_frame", HUB_CFG_SIZE, "16MiB", 1024, 256 << 20,
     F(mllp_max_frame), "--mllp-max-frame", "largest MLLP frame accepted"},
    {"mllp.max_connections", HUB_CFG_INT, "1024", 1, 65536,
     F(mllp_max_connections), NULL, "concurrent MLLP connections"},
    {"mllp.idle_timeout", HUB_CFG_INT, "300", 1, 86400, F(mllp_idle_timeout),
     NULL, "seconds an idle MLLP connection is kept"},
    {"http.max_body", HUB_CFG_SIZE, "16MiB", 1024, 1 << 30, F(http_max_body),
     NULL, "largest HTTP request body accepted"},
    {"http.threads", HUB_CFG_INT, "4", 1, 256, F(http_threads), NULL,
     "HTTP worker threads"},
    {"http.blocking_threads", HUB_CFG_INT, "32", 0, 1024,
     F(http_blocking_threads), NULL,
     "most threads that run FHIR writes (each waits for its commit group; started as needed)"},
    {"http.max_connections", HUB_CFG_INT, "1024", 1, 65536,
     F(http_max_connections), NULL, "concurrent HTTP connections"},
    {"store.durable", HUB_CFG_BOOL, "true", 0, 1, F(durable), NULL,
     "fsync each commit group (turn off for benchmarks only)"},
    {"store.commit_batch_max", HUB_CFG_INT, "512", 1, 100000,
     F(commit_batch_max), NULL, "most messages grouped in one commit"},
    {"log.level", HUB_CFG_STR, "info", 1, STRMAX(log_level), F(log_level),
     "--log-level", "trace, debug, info, warn, error or off"},
    {"log.format", HUB_CFG_STR, "auto", 1, STRMAX(log_format), F(log_format),
     "--log-format", "auto, text or json"},
    {"tls.cert", HUB_CFG_STR, "", 0, STRMAX(tls_cert), F(tls_cert),
     "--tls-cert", "PEM certificate chain for both listeners"},
    {"tls.key", HUB_CFG_STR, "", 0, STRMAX(tls_key), F(tls_key), "--tls-key",
     "PEM private key for both listeners"},
    {"tls.client_ca", HUB_CFG_STR, "", 0, STRMAX(tls_client_ca),
     F(tls_client_ca), "--tls-client-ca",
     "PEM CA bundle; when set, clients must present a certificate"},
    {"mappings", HUB_CFG_STR, "", 0, STRMAX(mappings_dir), F(mappings_dir),
     "--mappings", "directory of mapping tables (default: the built-in one)"},
    {"map.site_dir", HUB_CFG_STR, "", 0, STRMAX(map_site_dir), F(map_site_dir),
     "--map-site", "directory of a site's own mapping tables (*.map), loaded after the shipped ones"},
    {"conformance", HUB_CFG_STR, "", 0, STRMAX(conformance_dir),
     F(conformance_dir), "--conformance",
     "directory of conformance data (default: the built-in one)"},
    {"demo", HUB_CFG_BOOL, "false", 0, 1, F(demo), "--demo",
     "feed generated demo messages into the hub's own MLLP port"},
    {"demo.interval_ms", HUB_CFG_INT, "1000", 1, 3600000, F(demo_interval_ms),
     NULL, "milliseconds between demo messages"},
    {"fhir.lenient", HUB_CFG_BOOL, "false", 0, 1, F(fhir_lenient),
     "--fhir-lenient", "FHIR writes: unknown elements are warnings, not errors"},
    {"fhir.max_bundle_entries", HUB_CFG_INT, "1000", 1, 100000,
     F(fhir_max_bundle_entries), NULL,
     "most entries in one FHIR batch or transaction Bundle"},
    {"fhir.base_url", HUB_CFG_STR, "", 0, STRMAX(fhir_base_url),
     F(fhir_base_url), "--fhir-base-url",
     "absolute FHIR base for Location headers (default: from the Host header)"},
    {"auth", HUB_CFG_BOOL, "false", 0, 1, F(auth), "--auth",
     "require access tokens on /fhir (on by default whenever TLS is on)"},
    {"auth.disable", HUB_CFG_BOOL, "false", 0, 1, F(auth_disable), "--no-auth",
     "no access tokens even with TLS on (local testing only)"},
    {"auth.token_ttl", HUB_CFG_INT, "300", 10, 86400, F(auth_token_ttl), NULL,
     "seconds an access token lives"},
    {"auth.token_url", HUB_CFG_STR, "", 0, STRMAX(auth_token_url), F(auth_token_url), NULL,
     "the aud client assertions must name (default: from the Host header)"},
    {"audit", HUB_CFG_BOOL, "true", 0, 1, F(audit), NULL,
     "write an AuditEvent row for every access"},
    {"audit.syslog", HUB_CFG_STR, "", 0, STRMAX(audit_syslog), F(audit_syslog),
     "--audit-syslog", "send audit rows as RFC 5424 lines to udp://host:port or tcp://host:port"},
    {"mpi.enabled", HUB_CFG_BOOL, "true", 0, 1, F(mpi_enabled), NULL,
     "the patient index: match every Patient write, golden records (docs/mpi.md)"},
    {"http.rate_limit", HUB_CFG_INT, "1000", 0, 10000000, F(http_rate_limit), NULL,
     "requests per second per client (its token; its address for /metadata), when auth is on; 0 = none"},
    {"http.rate_burst", HUB_CFG_INT, "2000", 1, 10000000, F(http_rate_burst), NULL,
     "requests a client may make at once above the rate"},
    {"http.max_per_client", HUB_CFG_INT, "64", 1, 65536, F(http_max_per_client), NULL,
     "concurrent HTTP connections per client address"},
    {"http.timeout", HUB_CFG_INT, "30", 1, 3600, F(http_timeout), NULL,
     "seconds a connection may stay idle or send a request slowly"},
    {"fhir.max_search_params", HUB_CFG_INT, "64", 1, 1000, F(fhir_max_search_params), NULL,
     "most parameters in one FHIR search"},
    {"fhir.max_includes", HUB_CFG_INT, "16", 0, 1000, F(fhir_max_includes), NULL,
     "most _include and _revinclude parameters in one FHIR search"},
    {"fhir.max_count", HUB_CFG_INT, "1000", 1, 1000, F(fhir_max_count), NULL,
     "largest _count of a FHIR search (a larger one is a 400)"},
    {"route.allow_http", HUB_CFG_BOOL, "false", 0, 1, F(route_allow_http), NULL,
     "allow http:// rest-hook endpoints (patient data in clear: tests and local use)"},
    {"route.max_failures", HUB_CFG_INT, "10", 1, 1000000, F(route_max_failures), NULL,
     "consecutive failed deliveries before a subscription goes to error"},
    {"route.retry_min_ms", HUB_CFG_INT, "500", 1, 3600000, F(route_retry_min_ms), NULL,
     "first retry delay of a failed delivery (doubles, with jitter)"},
    {"route.retry_max_ms", HUB_CFG_INT, "300000", 1, 86400000, F(route_retry_max_ms), NULL,
     "largest retry delay"},
    {"route.timeout_ms", HUB_CFG_INT, "10000", 100, 600000, F(route_timeout_ms), NULL,
     "time limit of one delivery"},
    {"route.ca_file", HUB_CFG_STR, "", 0, STRMAX(route_ca_file), F(route_ca_file), NULL,
     "CA certificates that subscribers' TLS is checked against (default: the system's)"},
    {"route.client_cert", HUB_CFG_STR, "", 0, STRMAX(route_client_cert), F(route_client_cert),
     NULL, "client certificate (PEM) the hub presents to subscribers"},
    {"route.client_key", HUB_CFG_STR, "", 0, STRMAX(route_client_key), F(route_client_key), NULL,
     "its private key (PEM)"},
    {"route.retention_days", HUB_CFG_INT, "30", -1, 36500, F(route_retention_days), NULL,
     "days a delivered event stays replayable with $events before it is pruned "
     "(undelivered events never are; 0: at the next pass; -1: never)"},
    {"route.prune_interval_ms", HUB_CFG_INT, "60000", 10, 86400000, F(route_prune_interval_ms),
     NULL, "how often the pruning of delivered events and attempts runs"},
    {"shutdown.grace_ms", HUB_CFG_INT, "5000", 0, 600000, F(shutdown_grace_ms),
     NULL, "how long shutdown waits for work in flight"},
};
const size_t hub_cfg_table_len = sizeof hub_cfg_table / sizeof hub_cfg_table[0];

const hub_cfg_entry *hub_cfg_find(const char *key) {
    for (size_t i = 0; i < hub_cfg_table_len; i++)
        if (strcmp(hub_cfg_table[i].key, key) == 0) return &hub_cfg_table[i];
    return NULL;
}

const hub_cfg_entry *hub_cfg_find_flag(const char *flag) {
    for (size_t i = 0; i < hub_cfg_table_len; i++)
        if (hub_cfg_table[i].flag && strcmp(hub_cfg_table[i].flag, flag) == 0)
            return &hub_cfg_table[i];
    return NULL;
}

hub_status hub_parse_size(const char *s, int64_t *out) {
    errno = 0;
    char *end;
    if (!isdigit((unsigned char)*s)) return HUB_E_ARG;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno) return HUB_E_ARG;
    unsigned long long mul = 1;
    if (*end == '\0' || strcmp(end, "B") == 0) mul = 1;
    else if (!strcmp(end, "k") || !strcmp(end, "K") || !strcmp(end, "KiB") || !strcmp(end, "kB")) mul = 1ull << 10;
    else if (!strcmp(end, "M") || !strcmp(end, "MiB") || !strcmp(end, "MB")) mul = 1ull << 20;
    else if (!strcmp(end, "G") || !strcmp(end, "GiB") || !strcmp(end, "GB")) mul = 1ull << 30;
    else return HUB_E_ARG;
    if (v > (unsigned long long)INT64_MAX / mul) return HUB_E_ARG;
    *out = (int64_t)(v * mul);
    return HUB_OK;
}

static hub_status set_entry(hub_cfg *c, const hub_cfg_entry *e,
                            const char *value, const char *where,
                            hub_err *err) {
    char *field = (char *)c + e->offset;
    switch (e->type) {
    case HUB_CFG_INT: {
        errno = 0;
        char *end;
        long long v = strtoll(value, &end, 10);
        if (*value == '\0' || *end != '\0' || errno)
            return hub_err_set(err, HUB_E_CONFIG, where,
                               "'%s' wants a whole number", e->key);
        if (v < e->min || v > e->max)
            return hub_err_set(err, HUB_E_CONFIG, where,
                               "'%s' must be between %" PRId64 " and %" PRId64,
                               e->key, e->min, e->max);
        *(int *)field = (int)v;
        return HUB_OK;
    }
    case HUB_CFG_SIZE: {
        int64_t v;
        if (hub_parse_size(value, &v) != HUB_OK)
            return hub_err_set(err, HUB_E_CONFIG, where,
                               "'%s' wants a size such as 16MiB", e->key);
        if (v < e->min || v > e->max)
            return hub_err_set(err, HUB_E_CONFIG, where,
                               "'%s' must be between %" PRId64 " and %" PRId64
                               " bytes",
                               e->key, e->min, e->max);
        *(int64_t *)field = v;
        return HUB_OK;
    }
    case HUB_CFG_BOOL:
        if (!strcmp(value, "true") || !strcmp(value, "1") ||
            !strcmp(value, "yes") || !strcmp(value, "on"))
            *(bool *)field = true;
        else if (!strcmp(value, "false") || !strcmp(value, "0") ||
                 !strcmp(value, "no") || !strcmp(value, "off"))
            *(bool *)field = false;
        else
            return hub_err_set(err, HUB_E_CONFIG, where,
                               "'%s' wants true or false", e->key);
        return HUB_OK;
    case HUB_CFG_STR: {
        size_t n = strlen(value);
        if ((int64_t)n > e->max)
            return hub_err_set(err, HUB_E_CONFIG, where,
                               "'%s' longer than %" PRId64 " bytes", e->key,
                               e->max);
        if ((int64_t)n < e->min)
            return hub_err_set(err, HUB_E_CONFIG, where, "'%s' is empty",
                               e->key);
        memcpy(field, value, n + 1);
        return HUB_OK;
    }
    }
    return hub_err_set(err, HUB_E_CONFIG, where, "bad table entry '%s'", e->key);
}

hub_status hub_cfg_set(hub_cfg *c, const char *key, const char *value,
                       const char *where, hub_err *err) {
    const hub_cfg_entry *e = hub_cfg_find(key);
    if (e == NULL)
        return hub_err_set(err, HUB_E_CONFIG, where, "unknown setting '%s'", key);
    return set_entry(c, e, value, where, err);
}

void hub_cfg_defaults(hub_cfg *c) {
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < hub_cfg_table_len; i++) {
        hub_err err;
        hub_status rc = set_entry(c, &hub_cfg_table[i], hub_cfg_table[i].def,
                                  "default", &err);
        (void)rc; /* the table's own defaults are checked by a unit test */
    }
}

void hub_cfg_release(hub_cfg *c) {
    if (c->file_json) json_decref((json_t *)c->file_json);
    c->file_json = NULL;
}

/* Structured sections handled by their modules, not by the table. */
static bool is_section(const char *key) {
    return strcmp(key, "channels") == 0 || strcmp(key, "senders") == 0 ||
           strcmp(key, "subscriptions") == 0 || strcmp(key, "mpi") == 0;
}

static hub_status load_object(hub_cfg *c, json_t *obj, const char *prefix,
                              const char *path, hub_err *err) {
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v) {
        char key[128];
        int n = snprintf(key, sizeof key, "%s%s%s", prefix, *prefix ? "." : "", k);
        if (n < 0 || (size_t)n >= sizeof key)
            return hub_err_set(err, HUB_E_CONFIG, path, "key too long");
        if (!*prefix && is_section(k)) {
            /* "mpi" is its module's section but for its on/off switch */
            json_t *on = strcmp(k, "mpi") == 0 ? json_object_get(v, "enabled") : NULL;
            if (on && !json_is_boolean(on))
                return hub_err_set(err, HUB_E_CONFIG, path, "'mpi.enabled' wants true or false");
            if (on) c->mpi_enabled = json_is_true(on);
            continue;
        }
        char text[600];
        switch (json_typeof(v)) {
        case JSON_OBJECT: {
            /* "mllp": {"port": 1} and "mllp.port": 1 are the same; but an
             * object under a leaf key is a mistake. */
            if (hub_cfg_find(key))
                return hub_err_set(err, HUB_E_CONFIG, path,
                                   "'%s' wants a value, not an object", key);
            hub_status rc = load_object(c, v, key, path, err);
            if (rc) return rc;
            continue;
        }
        case JSON_STRING:
            snprintf(text, sizeof text, "%s", json_string_value(v));
            break;
        case JSON_INTEGER:
            snprintf(text, sizeof text, "%" JSON_INTEGER_FORMAT,
                     json_integer_value(v));
            break;
        case JSON_TRUE: strcpy(text, "true"); break;
        case JSON_FALSE: strcpy(text, "false"); break;
        default:
            return hub_err_set(err, HUB_E_CONFIG, path,
                               "'%s' has an unsupported value type", key);
        }
        hub_status rc = hub_cfg_set(c, key, text, path, err);
        if (rc) return rc;
    }
    return HUB_OK;
}

hub_status hub_cfg_load_file(hub_cfg *c, const char *path, hub_err *err) {
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL) {
        char where[48];
        snprintf(where, sizeof where, "%s:%d", path, je.line);
        return hub_err_set(err, HUB_E_CONFIG, where, "%s", je.text);
    }
    if (!json_is_object(root)) {
        json_decref(root);
        return hub_err_set(err, HUB_E_CONFIG, path, "top level is not an object");
    }
    hub_status rc = load_object(c, root, "", path, err);
    if (rc) {
        json_decref(root);
        return rc;
    }
    if (c->file_json) json_decref((json_t *)c->file_json);
    c->file_json = root;
    return HUB_OK;
}

hub_status hub_cfg_load_env(hub_cfg *c, hub_err *err) {
    for (size_t i = 0; i < hub_cfg_table_len; i++) {
        char name[96] = "HUB_";
        size_t o = 4;
        for (const char *k = hub_cfg_table[i].key; *k && o < sizeof name - 1; k++)
            name[o++] = (*k == '.') ? '_' : (char)toupper((unsigned char)*k);
        name[o] = '\0';
        const char *v = getenv(name);
        if (v == NULL) continue;
        hub_status rc = set_entry(c, &hub_cfg_table[i], v, name, err);
        if (rc) return rc;
    }
    return HUB_OK;
}
