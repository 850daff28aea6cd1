/* hub serve: opens the store, starts the listeners, runs until SIGTERM or
 * SIGINT, then stops accepting, finishes what it holds and exits 0. */
#include "internal.h"
#include "channels.h"
#include "startup.h"
#include "demo.h"
#include "hub/auth.h"
#include "hub/fhir.h"
#include "hub/http.h"
#include "hub/ingest.h"
#include "hub/map.h"
#include "hub/mllp.h"
#include "hub/record.h"
#include "hub/mpi.h"
#include "hub/route.h"
#include "hub/store.h"

#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static const char SERVE_USAGE[] =
    "usage: hub serve [--data DIR] [--mllp-port N] [--http-port N]\n"
    "                 [--config FILE] [--log-format text|json] [FLAGS]\n"
    "\n"
    "Runs the hub on its embedded store (SQLite in DIR, default ./hub-data):\n"
    "MLLP on port 2575, HTTP on 8080 (/fhir, /api, /healthz, /metrics).\n"
    "Ports of 0 pick free ones; the chosen ports are logged and written to\n"
    "DIR/serve.json. SIGTERM or SIGINT stops it cleanly.\n"
    "\n"
    "flags:\n"
    "  --config FILE        JSON configuration file\n"
    "  --set KEY=VALUE      any setting by name (see below)\n";

static void print_usage(void) {
    fputs(SERVE_USAGE, stdout);
    for (size_t i = 0; i < hub_cfg_table_len; i++) {
        const hub_cfg_entry *e = &hub_cfg_table[i];
        char flag[40] = "";
        if (e->flag) snprintf(flag, sizeof flag, "%s", e->flag);
        printf("  %-20s %-22s %s (default %s)\n", flag, e->key, e->help,
               e->def[0] ? e->def : "none");
    }
    printf("\nEvery setting can also come from the environment as HUB_<KEY>, "
           "dots as\nunderscores (HUB_MLLP_PORT=2575). Flags win over the "
           "environment, which\nwins over the file.\n");
}

/* Loads every shipped base profile after start-up, so that the first
 * message of each version is not the one that pays for loading it (3-15 ms
 * on the MLLP thread). Start-up itself stays lazy and fast. */
static void *preload_profiles(void *arg) {
    hub_v2_profset *ps = arg;
    size_t n = 0;
    const char *const *vers = hub_v2_profset_versions(ps, &n);
    int64_t t0 = hub_mono_ns();
    for (size_t i = 0; i < n; i++) {
        const hub_v2_profile *p;
        hub_err err;
        if (hub_v2_profset_get(ps, vers[i], &p, &err) != HUB_OK)
            HUB_LOG_WARN("serve", "profile version=%s not loaded err='%s'", vers[i],
                         err.msg);
    }
    HUB_LOG_DEBUG("serve", "profiles preloaded versions=%zu ms=%.1f", n,
                  (double)(hub_mono_ns() - t0) / 1e6);
    return NULL;
}

/* The demo shows FHIR too: one made-up Patient written through the record,
 * and the curl that reads it back. */
static void demo_fhir(hub_record *record, int http_port) {
    json_t *pat = json_pack(
        "{s:s, s:b, s:[{s:s, s:s, s:[s]}], s:s, s:s}", "resourceType", "Patient",
        "active", 1, "name", "use", "official", "family", "Demo", "given", "Dana",
        "gender", "female", "birthDate", "1970-01-01");
    hub_record_op op;
    memset(&op, 0, sizeof op);
    op.kind = HUB_OP_CREATE;
    op.type = "Patient";
    op.resource = pat;
    hub_err err;
    hub_err_clear(&err);
    if (pat && hub_record_apply(record, &op, 1, true, &err) == HUB_OK && op.status < 300 &&
        op.res.id[0])
        HUB_LOG_INFO("demo", "fhir try='curl -s localhost:%d/fhir/Patient/%s' "
                             "more='curl -s localhost:%d/fhir/metadata'",
                     http_port, op.res.id, http_port);
    else
        HUB_LOG_WARN("demo", "fhir patient not written status=%d err='%s'", op.status,
                     err.msg);
    hub_record_op_release(&op);
    json_decref(pat);
}

/* Flags, file and environment, in that order of precedence. */
int hub__serve_config(const char *cmd, int argc, char **argv, hub_cfg *cfg,
                      bool *help) {
    hub_err err;
    *help = false;
    hub_cfg_defaults(cfg);
    const char *config_file = NULL;
    for (int i = 1; i < argc; i++) {
        if (hub__cli_is_help(argv[i])) {
            *help = true;
            return 0;
        }
        if (strncmp(argv[i], "--config", 8) == 0 &&
            (argv[i][8] == '\0' || argv[i][8] == '=')) {
            config_file = hub__cli_flag_value(cmd, argc, argv, &i, "--config");
            if (config_file == NULL) return 2;
        }
    }
    if (config_file && hub_cfg_load_file(cfg, config_file, &err) != HUB_OK)
        return hub__cli_usage_error(cmd, "%s: %s", err.where, err.msg);
    if (hub_cfg_load_env(cfg, &err) != HUB_OK)
        return hub__cli_usage_error(cmd, "%s: %s", err.where, err.msg);
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--config", 8) == 0 &&
            (argv[i][8] == '\0' || argv[i][8] == '=')) {
            if (argv[i][8] == '\0') i++;
            continue;
        }
        int r = hub__cli_cfg_flag(cmd, cfg, argc, argv, &i);
        if (r < 0) return 2;
        if (r == 0) {
            if (argv[i][0] == '-')
                return hub__cli_usage_error(cmd, "unknown flag '%s'", argv[i]);
            return hub__cli_usage_error(cmd, "unexpected argument '%s'", argv[i]);
        }
    }
    hub_log_level lvl;
    if (hub_log_level_parse(cfg->log_level, &lvl) != HUB_OK)
        return hub__cli_usage_error(cmd, "--log-level: '%s' is not one of "
                                    "trace, debug, info, warn, error, off",
                                    cfg->log_level);
    hub_log_format fmt;
    if (strcmp(cfg->log_format, "auto") == 0) fmt = HUB_LOGFMT_AUTO;
    else if (strcmp(cfg->log_format, "text") == 0) fmt = HUB_LOGFMT_TEXT;
    else if (strcmp(cfg->log_format, "json") == 0) fmt = HUB_LOGFMT_JSON;
    else
        return hub__cli_usage_error(cmd, "--log-format: '%s' is not one of "
                                    "auto, text, json", cfg->log_format);
    hub_log_setup(lvl, fmt, 2);
    return 0;
}

/* Start-up loads its tables on threads of their own while the main thread
 * opens the store (issue 4: ready in under 20 ms on 2 cores): the mapping
 * tables, the FHIR element tables, the FHIR search parameters. Each
 * thread fills its slot; serve joins it before using the result, and at
 * `out` whatever it has not joined yet. */
typedef struct {
    pthread_t th;
    bool started, joined;
    hub_status rc;
    hub_err err;
    const char *dir;      /* input */
    const hub_map_cfg *mcf;
    hub_map *map;         /* outputs */
    hub_fhir_defs *defs;
    hub_fhir_sps *sps;
    double ms;
} serve_loader;

static void *load_map_main(void *arg) {
    serve_loader *l = arg;
    int64_t t = hub_mono_ns();
    l->rc = hub_map_load(l->mcf, &l->map, &l->err);
    l->ms = (double)(hub_mono_ns() - t) / 1e6;
    return NULL;
}

static void *load_defs_main(void *arg) {
    serve_loader *l = arg;
    int64_t t = hub_mono_ns();
    l->rc = hub_fhir_defs_load(l->dir, &l->defs, &l->err);
    l->ms = (double)(hub_mono_ns() - t) / 1e6;
    return NULL;
}

static void *load_sps_main(void *arg) {
    serve_loader *l = arg;
    int64_t t = hub_mono_ns();
    l->rc = hub_fhir_sps_load(l->dir, &l->sps, &l->err);
    l->ms = (double)(hub_mono_ns() - t) / 1e6;
    return NULL;
}

/* Runs fn on a thread, or here when no thread can be had. */
static void loader_start(serve_loader *l, void *(*fn)(void *)) {
    hub_err_clear(&l->err);
    l->started = pthread_create(&l->th, NULL, fn, l) == 0;
    if (!l->started) fn(l);
}

static hub_status loader_join(serve_loader *l) {
    if (l->started && !l->joined) pthread_join(l->th, NULL);
    l->joined = true;
    return l->rc;
}

/* Process CPU time (user + system, every thread) so far, in ms: the ready
 * line gives start-up's share (cpu_ms), which other processes on the
 * machine's cores do not stretch the way they stretch startup_ms. */
/* An HTTPS connection whose client certificate does not verify is on the
 * audit trail, like a request without a good token. */
static void http_cert_refused(void *ud, const char *peer, const char *why) {
    hub_audit_refused(ud, "http", peer, why);
}

/* So is an MLLP connection refused by its channel (address, limit, TLS). */
static void mllp_refused(void *ud, const hub_mllp_frame_ctx *ctx, const char *why) {
    hub_audit_refused(ud, ctx->channel, ctx->peer, why);
}

static double cpu_ms(void) {
    struct rusage u;
    if (getrusage(RUSAGE_SELF, &u) != 0) return 0;
    return (double)(u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1e3 +
           (double)(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e3;
}

static hub_status write_ports(const char *dir, int mllp, int http,
                              hub_err *err) {
    char path[600], tmp[620];
    snprintf(path, sizeof path, "%s/serve.json", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return hub_err_set(err, HUB_E_IO, "serve", "cannot write '%s': %s", tmp,
                           strerror(errno));
    fprintf(f, "{\"pid\": %d, \"mllp_port\": %d, \"http_port\": %d}\n",
            (int)getpid(), mllp, http);
    fclose(f);
    if (rename(tmp, path) != 0)
        return hub_err_set(err, HUB_E_IO, "serve", "cannot write '%s'", path);
    return HUB_OK;
}

int hub__cmd_serve(int argc, char **argv) {
    int64_t t0 = hub_mono_ns();
    double cpu0 = cpu_ms();
    hub_cfg cfg;
    bool help;
    int rc = hub__serve_config("serve", argc, argv, &cfg, &help);
    if (help) {
        print_usage();
        return 0;
    }
    if (rc) {
        hub_cfg_release(&cfg);
        return rc;
    }

    /* Every thread started from here on inherits the blocked signals; the
     * main thread alone takes them with sigwait. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    hub_err err;
    hub_err_clear(&err);
    hub_store *store = NULL;
    hub_http_server *http = NULL;
    hub_v2_profset *profiles = NULL;
    hub_ingest *ingest = NULL;
    hub_mllp_server *mllp = NULL;
    hub_demo *demo = NULL;
    hub_fhir_defs *defs = NULL;
    hub_fhir_sps *sps = NULL;
    hub_map *map = NULL;
    hub_record *record = NULL;
    hub_http_fhir *fhir = NULL;
    hub_mpi *mpi = NULL;
    hub_audit *audit = NULL;
    hub_auth *auth = NULL;
    hub_route *route = NULL;
    hub__listeners lst = {0};
    static hub_serve_channels chans;
    serve_loader ld_map = {0}, ld_defs = {0}, ld_sps = {0};
    int exit_code = 1;

    char confdir[600], fhirdir[600], mdir[600];
    const char *conformance = cfg.conformance_dir[0] ? cfg.conformance_dir
                                                     : HUB_SOURCE_DIR "/conformance";
    snprintf(fhirdir, sizeof fhirdir, "%s/fhir/r4", conformance);
    snprintf(mdir, sizeof mdir, "%s", cfg.mappings_dir[0] ? cfg.mappings_dir
                                                          : HUB_SOURCE_DIR "/mappings");
    hub_map_cfg mcf = {.dir = mdir, .site_dir = cfg.map_site_dir[0] ? cfg.map_site_dir : NULL};
    ld_map.mcf = &mcf;
    ld_defs.dir = ld_sps.dir = fhirdir;
    loader_start(&ld_map, load_map_main);
    loader_start(&ld_defs, load_defs_main);
    loader_start(&ld_sps, load_sps_main);

    snprintf(confdir, sizeof confdir, "%s/v2", conformance);
    if (hub_v2_profset_open(confdir, &profiles, &err) != HUB_OK) {
        fprintf(stderr, "hub serve: %s: %s\n", err.where, err.msg);
        goto out;
    }
    if (hub__channels_load(&chans, &cfg, profiles, &err) != HUB_OK) {
        fprintf(stderr, "hub serve: %s: %s\n", err.where, err.msg);
        exit_code = 2;
        goto out;
    }

    hub_store_cfg sc = {.dir = cfg.data_dir,
                        .durable = cfg.durable,
                        .commit_batch_max = cfg.commit_batch_max};
    int64_t t_store = hub_mono_ns();
    if (hub_store_open(&sc, &store, &err) != HUB_OK) {
        fprintf(stderr, "hub serve: %s\n", err.msg);
        goto out;
    }
    HUB_LOG_DEBUG("serve", "store open ms=%.2f", (double)(hub_mono_ns() - t_store) / 1e6);

    if (loader_join(&ld_defs) != HUB_OK) {
        fprintf(stderr, "hub serve: FHIR tables: %s: %s\n", ld_defs.err.where, ld_defs.err.msg);
        goto out;
    }
    defs = ld_defs.defs;
    if (loader_join(&ld_sps) != HUB_OK) {
        fprintf(stderr, "hub serve: FHIR search parameters: %s: %s\n", ld_sps.err.where,
                ld_sps.err.msg);
        goto out;
    }
    sps = ld_sps.sps;
    HUB_LOG_DEBUG("serve", "fhir tables loaded defs_ms=%.2f sps_ms=%.2f", ld_defs.ms, ld_sps.ms);
    if (loader_join(&ld_map) != HUB_OK) {
        fprintf(stderr, "hub serve: mapping tables: %s: %s\n", ld_map.err.where, ld_map.err.msg);
        exit_code = 2;
        goto out;
    }
    map = ld_map.map;
    {
        size_t nrows = 0, ntab = hub_map_table_count(map, &nrows);
        HUB_LOG_INFO("serve", "mappings tables=%zu rows=%zu site='%s' load_ms=%.2f", ntab, nrows,
                     cfg.map_site_dir, ld_map.ms);
        for (size_t i = 0; i < chans.n; i++)
            for (size_t k = 0; k < chans.ingest[i].nlocal; k++)
                if (!hub_map_has_local(map, chans.ingest[i].local_codes[k])) {
                    fprintf(stderr, "hub serve: channel '%s': no local-code table '%s'\n",
                            chans.ingest[i].name, chans.ingest[i].local_codes[k]);
                    exit_code = 2;
                    goto out;
                }
    }

    hub_record_cfg rc_cfg = {.store = store,
                             .defs = defs,
                             .search = sps,
                             .validate = {.lenient = cfg.fhir_lenient},
                             .max_bundle_entries = cfg.fhir_max_bundle_entries};
    int64_t t_rec = hub_mono_ns();
    if (hub_record_open(&rc_cfg, &record, &err) != HUB_OK) {
        fprintf(stderr, "hub serve: record: %s\n", err.msg);
        goto out;
    }
    HUB_LOG_DEBUG("serve", "record open ms=%.2f", (double)(hub_mono_ns() - t_rec) / 1e6);
    /* The patient index, the audit trail and the router: the listeners
     * hub replay starts too (startup.c), so every change is linked,
     * audited and routed alike. Security (issue 10): tokens are required
     * whenever TLS is on, unless --no-auth. */
    {
        int lrc = hub__listeners_open("serve", &cfg, store, record, true, &lst);
        mpi = lst.mpi;
        audit = lst.audit;
        route = lst.route;
        if (lrc) {
            exit_code = lrc;
            goto out;
        }
    }
    bool enforce = cfg.auth || (cfg.tls_cert[0] && !cfg.auth_disable);
    {
        hub_auth_cfg au = {.store = store,
                           .audit = audit,
                           .token_url = cfg.auth_token_url,
                           .token_ttl_s = cfg.auth_token_ttl,
                           .rate = cfg.http_rate_limit,
                           .burst = cfg.http_rate_burst};
        if (hub_auth_new(&au, &auth, &err) != HUB_OK) {
            fprintf(stderr, "hub serve: auth: %s\n", err.msg);
            goto out;
        }
    }

    hub_ingest_cfg ic = {.store = store, .profiles = profiles,
                         .channels = chans.ingest, .nchannels = chans.n,
                         .map = map, .record = record, .audit = audit};
    if (hub_ingest_new(&ic, &ingest, &err) != HUB_OK) {
        fprintf(stderr, "hub serve: %s\n", err.msg);
        goto out;
    }
    hub_mllp_server_cfg mc = {.channels = chans.mllp, .n_channels = chans.n};
    hub_mllp_callbacks cb = {.ud = ingest,
                             .on_frame = hub_ingest_on_frame,
                             .on_round = hub_ingest_on_round,
                             .on_refused = audit ? mllp_refused : NULL,
                             .refused_ud = audit};
    if (hub_mllp_server_start(&mc, &cb, &mllp, &err) != HUB_OK) {
        fprintf(stderr, "hub serve: %s: %s\n", err.where, err.msg);
        goto out;
    }
    hub_ingest_set_server(ingest, mllp);

    hub_http_cfg hc = {.host = cfg.http_host,
                       .port = cfg.http_port,
                       .threads = cfg.http_threads,
                       .blocking_threads = cfg.http_blocking_threads,
                       .max_connections = cfg.http_max_connections,
                       .max_body = cfg.http_max_body,
                       .timeout_s = cfg.http_timeout,
                       .max_per_ip = cfg.http_max_per_client,
                       .tls_cert = cfg.tls_cert[0] ? cfg.tls_cert : NULL,
                       .tls_key = cfg.tls_key,
                       .tls_client_ca = cfg.tls_client_ca[0] ? cfg.tls_client_ca : NULL,
                       .on_cert_refused = audit ? http_cert_refused : NULL,
                       .on_cert_refused_ud = audit};
    hub_http_ops ops = {.store = store,
                        .started_ms = hub_now_ms(),
                        .store_path = hub_store_path(store),
                        .mllp_port = hub_mllp_server_port(mllp, 0),
                        .fhir_base = cfg.fhir_base_url[0] ? cfg.fhir_base_url : "/fhir",
                        .fhir_version = hub_fhir_defs_version(defs),
                        .auth = auth,
                        .enforce = enforce};
    hub_http_fhir_cfg fc = {.record = record,
                            .defs = defs,
                            .base_url = cfg.fhir_base_url,
                            .max_bundle_entries = cfg.fhir_max_bundle_entries,
                            .auth = auth,
                            .enforce = enforce,
                            .audit = audit,
                            .max_search_params = cfg.fhir_max_search_params,
                            .max_includes = cfg.fhir_max_includes,
                            .max_count = cfg.fhir_max_count};
    if (hub_http_server_new(&hc, &http, &err) != HUB_OK ||
        hub_http_add_ops_routes(http, &ops) != HUB_OK ||
        hub_auth_add_routes(auth, http, &err) != HUB_OK ||
        hub_http_add_fhir_routes(http, &fc, &fhir, &err) != HUB_OK ||
        (mpi && hub_mpi_add_ops(mpi, fhir, &err) != HUB_OK) ||
        hub_route_add_ops(route, fhir, &err) != HUB_OK ||
        hub_http_server_start(http, &err) != HUB_OK) {
        fprintf(stderr, "hub serve: %s\n", err.msg[0] ? err.msg : "cannot start http");
        goto out;
    }
    ops.http_port = hub_http_server_port(http);

    if (write_ports(cfg.data_dir, ops.mllp_port, ops.http_port, &err) != HUB_OK) {
        fprintf(stderr, "hub serve: %s\n", err.msg);
        goto out;
    }
    if (cfg.tls_cert[0] == '\0')
        HUB_LOG_WARN("serve", "tls=off reason='no certificate configured' "
                              "note='FOR LOCAL USE ONLY: patient data travels in "
                              "clear; set --tls-cert and --tls-key'");
    else
        HUB_LOG_INFO("serve", "tls=on http=https mllp=tls client_certs=%s",
                     cfg.tls_client_ca[0] ? "required" : "no");
    HUB_LOG_INFO("serve", "auth=%s audit=%s syslog='%s' rate_limit=%d",
                 enforce ? "on" : "off", audit ? "on" : "off", cfg.audit_syslog,
                 cfg.http_rate_limit);
    if (!enforce)
        HUB_LOG_WARN("serve", "auth=off note='anyone who reaches the HTTP port reads and "
                              "writes every record; use --auth or TLS'");
    for (size_t i = 0; i < chans.n; i++)
        HUB_LOG_INFO("serve", "channel name=%s port=%d tls=%s mtls=%s validate=%s",
                     chans.mllp[i].name, hub_mllp_server_port(mllp, i),
                     chans.mllp[i].tls_cert ? "on" : "off",
                     chans.mllp[i].tls_client_ca ? "on" : "off",
                     chans.ingest[i].validate ? "on" : "off");
    HUB_LOG_INFO("serve",
                 "ready version=%s mllp_port=%d http_port=%d fhir=%s fhir_version=%s "
                 "resource_types=%zu store='%s' startup_ms=%.2f cpu_ms=%.2f",
                 HUB_VERSION, ops.mllp_port, ops.http_port, ops.fhir_base,
                 ops.fhir_version, hub_fhir_resource_count(defs),
                 hub_store_path(store), (double)(hub_mono_ns() - t0) / 1e6, cpu_ms() - cpu0);
    pthread_t preload;
    bool preloading = pthread_create(&preload, NULL, preload_profiles, profiles) == 0;
    if (cfg.demo) {
        if (chans.mllp[0].tls_cert)
            HUB_LOG_WARN("demo", "skipped reason='the first channel uses TLS'");
        else if (hub_demo_start(ops.mllp_port, cfg.demo_interval_ms, &demo, &err) != HUB_OK)
            HUB_LOG_WARN("demo", "not started err='%s'", err.msg);
        else
            HUB_LOG_INFO("demo", "started interval_ms=%d port=%d "
                                 "see='curl localhost:%d/api/messages'",
                         cfg.demo_interval_ms, ops.mllp_port, ops.http_port);
        demo_fhir(record, ops.http_port);
    }

    for (;;) {
        int sig = 0;
        if (sigwait(&sigs, &sig) != 0) continue;
        if (sig == SIGHUP) {
            HUB_LOG_INFO("serve", "signal=SIGHUP action=ignored");
            continue;
        }
        HUB_LOG_INFO("serve", "stopping signal=%s",
                     sig == SIGTERM ? "SIGTERM" : "SIGINT");
        break;
    }
    exit_code = 0;
    if (preloading) pthread_join(preload, NULL);

out:
    /* A loader not joined yet (start-up failed first) finishes; its
     * result is freed with the rest. */
    if (!ld_map.joined && loader_join(&ld_map) == HUB_OK && map == NULL) map = ld_map.map;
    if (!ld_defs.joined && loader_join(&ld_defs) == HUB_OK && defs == NULL) defs = ld_defs.defs;
    if (!ld_sps.joined && loader_join(&ld_sps) == HUB_OK && sps == NULL) sps = ld_sps.sps;
    /* Order matters: the demo stops sending; MLLP stops accepting and waits
     * for the ACKs it owes (the writer keeps committing meanwhile); then
     * HTTP; then the store finishes its queue; nothing is left half done. */
    hub_demo_stop(demo);
    if (mllp) hub_mllp_server_stop(mllp, cfg.shutdown_grace_ms);
    hub_http_server_free(http);
    hub_http_fhir_free(fhir);
    hub__listeners_close_route(&lst);
    hub_auth_free(auth);
    hub__listeners_close(&lst); /* the audit trail writes what it holds */
    hub_store_close(store);
    hub__listeners_close_mpi(&lst);
    hub_record_close(record);
    hub_mllp_server_free(mllp);
    hub_ingest_free(ingest);
    hub__channels_release(&chans);
    hub_v2_profset_close(profiles);
    hub_fhir_defs_free(defs);
    hub_fhir_sps_free(sps);
    hub_map_free(map);
    if (exit_code == 0) HUB_LOG_INFO("serve", "stopped");
    hub_cfg_release(&cfg);
    return exit_code;
}
