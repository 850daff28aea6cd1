/* hub replay: re-runs journaled messages through the current mapping
 * tables and applies them to the record, each in one transaction with the
 * update of its journal row (errored -> processed). */
#include "internal.h"
#include "startup.h"

#include "hub/fhir.h"
#include "hub/map.h"
#include "hub/record.h"
#include "hub/store.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int64_t id;
    char *sender, *control_id, *ack_code, *ack, *body;
    size_t ack_len, body_len;
} row_copy;

typedef struct {
    row_copy *rows;
    size_t n, cap, limit;
} rows;

static hub_status collect(void *ud, const hub_journal_row *r) {
    rows *rs = ud;
    if (rs->n == rs->limit) return HUB_E_LIMIT; /* enough */
    if (rs->n == rs->cap) {
        size_t nc = rs->cap ? rs->cap * 2 : 64;
        row_copy *nr = hub_realloc(rs->rows, nc * sizeof *nr);
        if (nr == NULL) return HUB_E_NOMEM;
        rs->rows = nr;
        rs->cap = nc;
    }
    row_copy *c = &rs->rows[rs->n];
    memset(c, 0, sizeof *c);
    c->id = r->id;
    c->sender = hub_strdup(r->sender ? r->sender : "");
    c->control_id = hub_strdup(r->control_id ? r->control_id : "");
    c->ack_code = hub_strdup(r->ack_code ? r->ack_code : "");
    c->ack = hub_strndup(r->ack ? r->ack : "", r->ack_len);
    c->ack_len = r->ack_len;
    c->body = hub_strndup(r->body ? r->body : "", r->body_len);
    c->body_len = r->body_len;
    rs->n++;
    if (!c->sender || !c->control_id || !c->ack_code || !c->ack || !c->body) return HUB_E_NOMEM;
    return HUB_OK;
}

typedef struct {
    hub_store_job job;
    hub_record_txn *txn;
    row_copy *row;
    hub_status rc;
    hub_err err;
    char why[200];
    bool done;
    pthread_mutex_t *mu;
    pthread_cond_t *cv;
} replay_job;

static hub_status rj_run(hub_store_tx *tx, hub_store_job *sj, hub_err *err) {
    replay_job *j = (replay_job *)sj;
    hub_oo *oo = NULL;
    hub_status rc = hub_record_bundle_tx(j->txn, tx, &oo, err);
    if (rc == HUB_OK)
        rc = hub_journal_update(tx, j->row->id, HUB_MSG_PROCESSED, j->row->ack_code,
                                j->row->ack, j->row->ack_len, NULL, err);
    if (oo) {
        json_t *oj = hub_oo_json(oo);
        char *js = hub_json_dumps(oj, JSON_COMPACT);
        snprintf(j->why, sizeof j->why, "%s", js ? js : "");
        free(js);
        json_decref(oj);
        hub_oo_free(oo);
    }
    return rc;
}

static void rj_done(hub_store_job *sj, hub_status rc, const hub_err *err) {
    replay_job *j = (replay_job *)sj;
    pthread_mutex_lock(j->mu);
    j->rc = rc;
    if (rc && err) j->err = *err;
    j->done = true;
    pthread_cond_broadcast(j->cv);
    pthread_mutex_unlock(j->mu);
}

static void usage(FILE *f) {
    fprintf(f, "usage: hub replay --status errored [--data DIR] [--id N] [--limit N]\n"
               "                  [--local NAME]... [--mappings DIR] [--map-site DIR]\n"
               "                  [--config FILE] [FLAGS]\n\n"
               "Re-runs journaled messages through the current mapping tables and\n"
               "applies each Bundle to the record in one transaction with its journal\n"
               "row's update (errored -> processed). Profile validation is not re-run:\n"
               "replaying a message is the operator's decision. The configuration\n"
               "(file, environment, flags) is hub serve's: the patient index, the\n"
               "audit trail and the subscriptions see the replayed changes as they\n"
               "see live ones; notifications wait in the outbox and the next\n"
               "hub serve delivers them. Run it while the hub is stopped. Prints one\n"
               "line per message; exit status 1 when any still fails.\n");
}

int hub__cmd_replay(int argc, char **argv) {
    hub_cfg cfg;
    if (hub__cli_config("replay", argc, argv, &cfg)) goto usage;
    const char *status = NULL;
    int64_t only = 0;
    long limit = 1000;
    const char *local[16];
    size_t nlocal = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (hub__cli_is_help(a)) {
            usage(stdout);
            hub_cfg_release(&cfg);
            return 0;
        }
        if (hub__cli_is_config("replay", argc, argv, &i)) {
            continue;
        } else if (strncmp(a, "--status", 8) == 0 && (a[8] == 0 || a[8] == '=')) {
            if ((status = hub__cli_flag_value("replay", argc, argv, &i, "--status")) == NULL) goto usage;
        } else if (strncmp(a, "--id", 4) == 0 && (a[4] == 0 || a[4] == '=')) {
            const char *v = hub__cli_flag_value("replay", argc, argv, &i, "--id");
            if (v == NULL || (only = atoll(v)) <= 0) goto usage;
        } else if (strncmp(a, "--limit", 7) == 0 && (a[7] == 0 || a[7] == '=')) {
            const char *v = hub__cli_flag_value("replay", argc, argv, &i, "--limit");
            if (v == NULL || (limit = atol(v)) <= 0) goto usage;
        } else if (strncmp(a, "--local", 7) == 0 && (a[7] == 0 || a[7] == '=')) {
            const char *v = hub__cli_flag_value("replay", argc, argv, &i, "--local");
            if (v == NULL || nlocal == 16) goto usage;
            local[nlocal++] = v;
        } else {
            int r = hub__cli_cfg_flag("replay", &cfg, argc, argv, &i);
            if (r < 0) goto usage;
            if (r == 0) {
                hub__cli_usage_error("replay", "unknown flag '%s'", a);
                goto usage;
            }
        }
    }
    hub_msg_status want;
    if (status == NULL || hub_msg_status_parse(status, &want) != HUB_OK) {
        hub__cli_usage_error("replay", "--status errored (or accepted) is required");
        goto usage;
    }
    hub_err err;
    int rc = 1;
    hub_map *map = NULL;
    hub__core core = {0};
    hub_v2_profset *profiles = NULL;
    rows rs = {.limit = (size_t)limit};
    char dir[600];
    snprintf(dir, sizeof dir, "%s", cfg.mappings_dir[0] ? cfg.mappings_dir : HUB_SOURCE_DIR "/mappings");
    hub_map_cfg mc = {.dir = dir, .site_dir = cfg.map_site_dir[0] ? cfg.map_site_dir : NULL};
    char pdir[600];
    snprintf(pdir, sizeof pdir, "%s/v2", hub__cli_conformance(&cfg));
    if (hub_map_load(&mc, &map, &err) != HUB_OK) {
        fprintf(stderr, "hub replay: mapping tables: %s: %s\n", err.where, err.msg);
        goto out;
    }
    if (hub_v2_profset_open(pdir, &profiles, &err) != HUB_OK) profiles = NULL;
    /* The listeners hub serve starts from the same configuration (patient
     * index, audit trail, router): a replayed message is linked, audited
     * and routed as it would have been; its notifications wait in the
     * outbox for the next hub serve to deliver. */
    if ((rc = hub__core_open("replay", &cfg, true, &core)) != 0) goto out;
    rc = 1;
    hub_store *store = core.store;
    hub_record *record = core.record;
    hub_status lrc;
    if (only) {
        lrc = hub_journal_get(store, only, collect, &rs, &err);
    } else {
        hub_journal_filter f = {.status = (int)want, .limit = limit > 1000 ? 1000 : (int)limit,
                                .with_body = true};
        lrc = hub_journal_list(store, &f, collect, &rs, &err);
    }
    if (lrc && lrc != HUB_E_LIMIT) {
        fprintf(stderr, "hub replay: journal: %s\n", err.msg);
        goto out;
    }
    rc = 0;
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
    size_t ok = 0, failed = 0;
    /* Oldest first: the order the messages came in. */
    for (size_t k = rs.n; k-- > 0;) {
        row_copy *r = &rs.rows[k];
        hub_arena a;
        hub_arena_init(&a, 16384);
        hub_v2_msg *m = NULL;
        hub_map_result res;
        memset(&res, 0, sizeof res);
        hub_oo *oo = NULL;
        replay_job j;
        memset(&j, 0, sizeof j);
        if (hub_v2_parse(&a, r->body, r->body_len, NULL, &m, &err) != HUB_OK) {
            printf("%lld  failed  %s: %s\n", (long long)r->id, err.where, err.msg);
            goto next_fail;
        }
        hub_map_opts o = {.sender = r->sender, .local = local, .nlocal = nlocal};
        if (profiles) {
            const hub_v2_msh *h = hub_v2_msg_msh(m);
            char ver[32];
            const hub_v2_profile *p = NULL;
            if (hub_v2_profset_pick(profiles, h->version, ver, sizeof ver) >= 0 &&
                hub_v2_profset_get(profiles, ver, &p, NULL) == HUB_OK) {
                const char *sn = hub_v2_profile_struct_for(p, h->msg_code, h->trigger, h->structure);
                o.structure = sn ? hub_v2_profile_struct_def(p, sn) : NULL;
            }
        }
        if (hub_map_message(map, m, &o, &res, &err) != HUB_OK) {
            printf("%lld  failed  %s: %s (HL7 error %d)\n", (long long)r->id, err.where, err.msg,
                   res.v2_code);
            goto next_fail;
        }
        if (hub_record_bundle_prepare(record, res.bundle, &j.txn, &oo, &err) != HUB_OK) {
            json_t *oj = oo ? hub_oo_json(oo) : NULL;
            char *js = oj ? hub_json_dumps(oj, JSON_COMPACT) : NULL;
            printf("%lld  failed  mapped resources not valid: %s\n", (long long)r->id, js ? js : err.msg);
            free(js);
            json_decref(oj);
            hub_oo_free(oo);
            goto next_fail;
        }
        /* the change comes from the journaled message (provenance, audit,
         * an MLLP subscriber's original message), replayed by an operator */
        hub_actor actor = {.channel = "replay", .subject = "hub replay", .sender = r->sender,
                           .message_id = r->id};
        hub_record_txn_set_actor(j.txn, &actor);
        j.row = r;
        j.mu = &mu;
        j.cv = &cv;
        j.job.run = rj_run;
        j.job.done = rj_done;
        if (hub_store_submit(store, &j.job, &err) != HUB_OK) {
            printf("%lld  failed  %s\n", (long long)r->id, err.msg);
            goto next_fail;
        }
        pthread_mutex_lock(&mu);
        while (!j.done) pthread_cond_wait(&cv, &mu);
        pthread_mutex_unlock(&mu);
        if (j.rc) {
            printf("%lld  failed  %s %s\n", (long long)r->id, j.err.msg, j.why);
            goto next_fail;
        }
        printf("%lld  processed  %s %s  resources=%zu\n", (long long)r->id, r->sender,
               r->control_id, res.nresources);
        ok++;
        hub_record_txn_free(j.txn);
        hub_map_result_release(&res);
        hub_arena_release(&a);
        continue;
    next_fail:
        failed++;
        hub_record_txn_free(j.txn);
        hub_map_result_release(&res);
        hub_arena_release(&a);
    }
    printf("replayed %zu: %zu processed, %zu failed\n", ok + failed, ok, failed);
    rc = failed ? 1 : 0;
out:
    for (size_t k = 0; k < rs.n; k++) {
        hub_free(rs.rows[k].sender);
        hub_free(rs.rows[k].control_id);
        hub_free(rs.rows[k].ack_code);
        hub_free(rs.rows[k].ack);
        hub_free(rs.rows[k].body);
    }
    hub_free(rs.rows);
    hub__core_close(&core);
    hub_v2_profset_close(profiles);
    hub_map_free(map);
    hub_cfg_release(&cfg);
    return rc;
usage:
    hub_cfg_release(&cfg);
    return 2;
}
