/* The start-up shared by the commands that write to the record (hub serve,
 * hub replay, hub reindex): the same configuration (flags, file,
 * environment) opens the same listeners, so a change written by any of
 * them is linked by the patient index, audited and routed alike. */
#include "internal.h"
#include "startup.h"

#include "hub/auth.h"
#include "hub/mpi.h"
#include "hub/route.h"

#include <stdio.h>
#include <string.h>

int hub__cli_config(const char *cmd, int argc, char **argv, hub_cfg *cfg) {
    hub_err err;
    hub_cfg_defaults(cfg);
    const char *file = NULL;
    for (int i = 1; i < argc; i++)
        if (strncmp(argv[i], "--config", 8) == 0 && (argv[i][8] == '\0' || argv[i][8] == '=') &&
            (file = hub__cli_flag_value(cmd, argc, argv, &i, "--config")) == NULL)
            return 2;
    if (file && hub_cfg_load_file(cfg, file, &err) != HUB_OK)
        return hub__cli_usage_error(cmd, "%s: %s", err.where, err.msg);
    if (hub_cfg_load_env(cfg, &err) != HUB_OK)
        return hub__cli_usage_error(cmd, "%s: %s", err.where, err.msg);
    return 0;
}

bool hub__cli_is_config(const char *cmd, int argc, char **argv, int *i) {
    const char *a = argv[*i];
    if (strncmp(a, "--config", 8) != 0 || (a[8] != '\0' && a[8] != '=')) return false;
    (void)hub__cli_flag_value(cmd, argc, argv, i, "--config");
    return true;
}

const char *hub__cli_conformance(const hub_cfg *cfg) {
    return cfg->conformance_dir[0] ? cfg->conformance_dir : HUB_SOURCE_DIR "/conformance";
}

/* The route listens first: a listener that writes (the patient index
 * linking a Patient writes its next version) does so inside the change
 * it handles, so a listener after it would see the newer version before
 * the older one and number their events in that order. */
int hub__listeners_open(const char *cmd, const hub_cfg *cfg, hub_store *store,
                        hub_record *record, bool deliver, hub__listeners *l) {
    hub_err err;
    hub_err_clear(&err);
    memset(l, 0, sizeof *l);
    hub_audit_cfg ac = {.store = store, .syslog = cfg->audit_syslog};
    if (cfg->audit && hub_audit_new(&ac, &l->audit, &err) != HUB_OK) {
        fprintf(stderr, "hub %s: audit: %s: %s\n", cmd, err.where, err.msg);
        return 2;
    }
    /* routing: subscriptions and the outbox (before anything writes);
     * without delivery the outbox keeps the events for the next serve */
    hub_route_cfg rt = {.record = record,
                        .allow_http = cfg->route_allow_http,
                        .max_failures = cfg->route_max_failures,
                        .retry_min_ms = cfg->route_retry_min_ms,
                        .retry_max_ms = cfg->route_retry_max_ms,
                        .timeout_ms = cfg->route_timeout_ms,
                        .ca_file = cfg->route_ca_file,
                        .client_cert = cfg->route_client_cert,
                        .client_key = cfg->route_client_key,
                        .base_url = cfg->fhir_base_url,
                        .audit = l->audit,
                        .no_delivery = !deliver,
                        .retention_days = cfg->route_retention_days,
                        .prune_interval_ms = cfg->route_prune_interval_ms};
    if (hub_route_open(&rt, &l->route, &err) != HUB_OK) {
        fprintf(stderr, "hub %s: route: %s\n", cmd, err.msg);
        return 1;
    }
    json_t *mconf = json_object_get(cfg->file_json, "mpi");
    if (cfg->mpi_enabled) {
        /* the patient index (off with "mpi": {"enabled": false}): matching
         * on every Patient write, its operations */
        char nick[600];
        snprintf(nick, sizeof nick, "%s/mpi/nicknames.tsv", hub__cli_conformance(cfg));
        hub_mpi_cfg mpc = {.record = record, .conf = mconf, .nicknames = nick};
        if (hub_mpi_open(&mpc, &l->mpi, &err) != HUB_OK) {
            fprintf(stderr, "hub %s: patient index: %s\n", cmd, err.msg);
            return 2;
        }
    }
    /* the audit trail hangs on the record: writes audited in their
     * transaction */
    if (l->audit && hub_audit_listen(l->audit, record, &err) != HUB_OK) {
        fprintf(stderr, "hub %s: audit: %s: %s\n", cmd, err.where, err.msg);
        return 2;
    }
    return 0;
}

void hub__listeners_close_route(hub__listeners *l) {
    hub_route_close(l->route);
    l->route = NULL;
}

void hub__listeners_close(hub__listeners *l) {
    hub__listeners_close_route(l);
    hub_audit_free(l->audit); /* writes what it holds: before the store closes */
    l->audit = NULL;
}

void hub__listeners_close_mpi(hub__listeners *l) {
    hub_mpi_close(l->mpi);
    l->mpi = NULL;
}

int hub__core_open(const char *cmd, const hub_cfg *cfg, bool listeners, hub__core *c) {
    hub_err err;
    memset(c, 0, sizeof *c);
    char fdir[600];
    snprintf(fdir, sizeof fdir, "%s/fhir/r4", hub__cli_conformance(cfg));
    if (hub_fhir_defs_load(fdir, &c->defs, &err) != HUB_OK) {
        fprintf(stderr, "hub %s: FHIR definitions: %s\n", cmd, err.msg);
        return 1;
    }
    /* the search table: resources get every index row, as the hub's own
     * writes do */
    if (hub_fhir_sps_load(fdir, &c->sps, &err) != HUB_OK) {
        fprintf(stderr, "hub %s: search parameters: %s: %s\n", cmd, err.where, err.msg);
        return 1;
    }
    hub_store_cfg sc = {.dir = cfg->data_dir, .durable = cfg->durable,
                        .commit_batch_max = cfg->commit_batch_max};
    if (hub_store_open(&sc, &c->store, &err) != HUB_OK) {
        fprintf(stderr, "hub %s: %s\n", cmd, err.msg);
        return 1;
    }
    hub_record_cfg rc = {.store = c->store, .defs = c->defs, .search = c->sps,
                         .validate = {.lenient = cfg->fhir_lenient},
                         .max_bundle_entries = cfg->fhir_max_bundle_entries};
    if (hub_record_open(&rc, &c->record, &err) != HUB_OK) {
        fprintf(stderr, "hub %s: record: %s\n", cmd, err.msg);
        return 1;
    }
    return listeners ? hub__listeners_open(cmd, cfg, c->store, c->record, false, &c->l) : 0;
}

void hub__core_close(hub__core *c) {
    /* the order of hub serve's: listeners, the store, then the record */
    hub__listeners_close(&c->l);
    hub_store_close(c->store);
    hub__listeners_close_mpi(&c->l);
    hub_record_close(c->record);
    hub_fhir_sps_free(c->sps);
    hub_fhir_defs_free(c->defs);
    memset(c, 0, sizeof *c);
}
