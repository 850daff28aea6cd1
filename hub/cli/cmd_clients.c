/* hub clients: the OAuth clients (SMART Backend Services) in the store.
 * A running hub sees a change at once: the token endpoint reads the
 * client's row on every request, and a revoked client's access tokens stop
 * working within a second. */
#include "internal.h"
#include "hub/auth.h"
#include "hub/store.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

static const char USAGE[] =
    "usage: hub clients add NAME --jwks FILE --scope SCOPES [--patient ID]\n"
    "                       [--cert-subject DN] [--data DIR]\n"
    "       hub clients list [--data DIR]\n"
    "       hub clients revoke NAME [--data DIR]\n"
    "\n"
    "Registers, lists and revokes the clients that may ask /auth/token for\n"
    "access tokens (SMART Backend Services: client_credentials with a JWT\n"
    "signed by one of the client's keys, RS384 or ES384).\n"
    "\n"
    "  NAME           the client_id (letters, digits, '.', '_', '-'; up to 64)\n"
    "  --jwks FILE    the client's public keys (a JWKS, JSON)\n"
    "  --scope S      the scopes it may be granted, space-separated, e.g.\n"
    "                 'system/Observation.rs system/Patient.read' or 'system/*.cruds';\n"
    "                 'admin' lets it read the audit trail (/fhir/AuditEvent)\n"
    "  --patient ID   bind the client to one patient: its tokens see only that\n"
    "                 patient's compartment\n"
    "  --cert-subject DN  bind the client to its TLS client certificate (with\n"
    "                 --tls-client-ca): its token requests and tokens work only\n"
    "                 over a connection with a certificate of this subject, as\n"
    "                 RFC 4514 prints it, e.g. 'CN=lab-app,O=Lab'\n"
    "  --data DIR     the hub's data directory (default ./hub-data)\n";

typedef struct {
    hub_store_job job;
    const hub_auth_client *c;
    const char *revoke;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    hub_status rc;
    hub_err err;
} cjob;

static hub_status cjob_run(hub_store_tx *tx, hub_store_job *sj, hub_err *err) {
    cjob *j = (cjob *)sj;
    return j->revoke ? hub_auth_client_revoke_tx(tx, j->revoke, err)
                     : hub_auth_client_put_tx(tx, j->c, err);
}

static void cjob_done(hub_store_job *sj, hub_status rc, const hub_err *err) {
    cjob *j = (cjob *)sj;
    pthread_mutex_lock(&j->mu);
    j->rc = rc;
    if (err) j->err = *err;
    j->done = true;
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

static hub_status write_job(hub_store *s, cjob *j, hub_err *err) {
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    j->job.run = cjob_run;
    j->job.done = cjob_done;
    hub_status rc = hub_store_submit(s, &j->job, err);
    if (!rc) {
        pthread_mutex_lock(&j->mu);
        while (!j->done) pthread_cond_wait(&j->cv, &j->mu);
        pthread_mutex_unlock(&j->mu);
        rc = j->rc;
        if (rc && err) *err = j->err;
    }
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    return rc;
}

static hub_status print_client(void *ud, const hub_auth_client *c) {
    (void)ud;
    char when[32];
    hub_time_iso(c->created_ms, when);
    size_t nkeys = 0;
    hub_err err;
    hub_jwks_check(c->jwks, strlen(c->jwks), &nkeys, &err);
    printf("%-24s %-8s keys=%zu patient=%s created=%s scope='%s'", c->name,
           c->revoked ? "revoked" : "active", nkeys, c->patient && *c->patient ? c->patient : "-",
           when, c->scope);
    if (c->cert_subject && *c->cert_subject) printf(" cert='%s'", c->cert_subject);
    putchar('\n');
    return HUB_OK;
}

static bool valid_name(const char *n) {
    size_t len = strlen(n);
    if (len == 0 || len > 64) return false;
    for (const char *p = n; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '-'))
            return false;
    return true;
}

int hub__cmd_clients(int argc, char **argv) {
    const char *cmd = "clients";
    if (argc < 2 || hub__cli_is_help(argv[1])) {
        fputs(USAGE, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "add") != 0 && strcmp(sub, "list") != 0 && strcmp(sub, "revoke") != 0)
        return hub__cli_usage_error(cmd, "unknown subcommand '%s' (add, list, revoke)", sub);
    hub_cfg cfg;
    hub_cfg_defaults(&cfg);
    hub_err err;
    if (hub_cfg_load_env(&cfg, &err) != HUB_OK) {
        hub_cfg_release(&cfg);
        return hub__cli_usage_error(cmd, "%s: %s", err.where, err.msg);
    }
    const char *name = NULL, *jwks_file = NULL, *scope = NULL, *patient = NULL, *subject = NULL;
    int rc = 0;
    for (int i = 2; i < argc && rc == 0; i++) {
        const char *a = argv[i];
        const char **dst = NULL;
        const char *flag = NULL;
        if (hub__cli_is_help(a)) {
            fputs(USAGE, stdout);
            hub_cfg_release(&cfg);
            return 0;
        }
        if (strncmp(a, "--jwks", 6) == 0 && (a[6] == 0 || a[6] == '=')) dst = &jwks_file, flag = "--jwks";
        else if (strncmp(a, "--scope", 7) == 0 && (a[7] == 0 || a[7] == '=')) dst = &scope, flag = "--scope";
        else if (strncmp(a, "--patient", 9) == 0 && (a[9] == 0 || a[9] == '=')) dst = &patient, flag = "--patient";
        else if (strncmp(a, "--cert-subject", 14) == 0 && (a[14] == 0 || a[14] == '='))
            dst = &subject, flag = "--cert-subject";
        if (dst) {
            *dst = hub__cli_flag_value(cmd, argc, argv, &i, flag);
            if (*dst == NULL) rc = 2;
            continue;
        }
        int r = hub__cli_cfg_flag(cmd, &cfg, argc, argv, &i);
        if (r < 0) rc = 2;
        else if (r == 0) {
            if (a[0] == '-') rc = hub__cli_usage_error(cmd, "unknown flag '%s'", a);
            else if (name == NULL && strcmp(sub, "list") != 0) name = a;
            else rc = hub__cli_usage_error(cmd, "unexpected argument '%s'", a);
        }
    }
    if (rc == 0 && strcmp(sub, "list") != 0 && name == NULL)
        rc = hub__cli_usage_error(cmd, "%s needs the client's NAME", sub);
    if (rc == 0 && name && !valid_name(name))
        rc = hub__cli_usage_error(cmd, "NAME: '%.80s' is not 1-64 letters, digits, '.', '_', '-'", name);
    if (rc == 0 && strcmp(sub, "add") == 0 && (jwks_file == NULL || scope == NULL))
        rc = hub__cli_usage_error(cmd, "add needs --jwks FILE and --scope SCOPES");
    if (rc == 0 && strcmp(sub, "add") != 0 && (jwks_file || scope || patient || subject))
        rc = hub__cli_usage_error(cmd, "--jwks, --scope, --patient and --cert-subject go with add only");
    if (rc == 0 && subject && (!*subject || strlen(subject) > 159))
        rc = hub__cli_usage_error(cmd, "--cert-subject: 1 to 159 characters");
    if (rc) {
        hub_cfg_release(&cfg);
        return rc;
    }
    char *jwks = NULL;
    hub_scopes sc;
    hub_err_clear(&err);
    if (jwks_file) {
        size_t n, nkeys;
        if (hub_file_read(jwks_file, 1 << 20, &jwks, &n, &err) != HUB_OK) {
            hub_cfg_release(&cfg);
            return hub__cli_usage_error(cmd, "--jwks: %s", err.msg);
        }
        if (hub_jwks_check(jwks, n, &nkeys, &err) != HUB_OK) {
            hub_free(jwks);
            hub_cfg_release(&cfg);
            return hub__cli_usage_error(cmd, "--jwks: %s", err.msg);
        }
        if (hub_scopes_parse(scope, true, &sc, &err) != HUB_OK || (sc.n == 0 && !sc.admin)) {
            hub_free(jwks);
            hub_cfg_release(&cfg);
            return hub__cli_usage_error(cmd, "--scope: %s", sc.n == 0 && !err.msg[0]
                                                                 ? "no scope given"
                                                                 : err.msg);
        }
    }
    hub_store *s = NULL;
    /* Opened for writing even to list: a store an older hub wrote gets this
     * version's client tables (certificate bindings) on open, which a
     * read-only open could not add and then could not read. */
    hub_store_cfg stc = {.dir = cfg.data_dir, .durable = true};
    hub_err_clear(&err);
    int exit_code = 1;
    if (hub_store_open(&stc, &s, &err) != HUB_OK) {
        fprintf(stderr, "hub clients: %s\n", err.msg);
        goto out;
    }
    if (strcmp(sub, "list") == 0) {
        if (hub_auth_client_list(s, print_client, NULL, &err) != HUB_OK) {
            fprintf(stderr, "hub clients: %s\n", err.msg);
            goto out;
        }
        exit_code = 0;
        goto out;
    }
    hub_auth_client c = {.name = name, .jwks = jwks, .scope = scope, .patient = patient,
                         .cert_subject = subject};
    cjob j;
    memset(&j, 0, sizeof j);
    j.c = &c;
    if (strcmp(sub, "revoke") == 0) j.revoke = name;
    hub_status r = write_job(s, &j, &err);
    if (r == HUB_E_NOTFOUND) {
        fprintf(stderr, "hub clients: no client '%s'\n", name);
        goto out;
    }
    if (r) {
        fprintf(stderr, "hub clients: %s\n", err.msg);
        goto out;
    }
    printf("%s %s\n", j.revoke ? "revoked" : "added", name);
    exit_code = 0;
out:
    hub_store_close(s);
    hub_free(jwks);
    hub_cfg_release(&cfg);
    return exit_code;
}
