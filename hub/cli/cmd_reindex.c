/* hub reindex: rebuilds the search index rows of the stored resources
 * (all, or one type) from their current JSON with the current search
 * parameter table. Needed after a store migration that added index kinds
 * (v2 -> v3: date and number rows), or a change of the table. */
#include "internal.h"
#include "startup.h"

#include "hub/fhir.h"
#include "hub/record.h"
#include "hub/store.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f, "usage: hub reindex [--type TYPE] [--data DIR] [--config FILE] [FLAGS]\n\n"
               "Rebuilds the search index rows of every current resource (or of\n"
               "one resource type) from its stored JSON. Safe to run while the hub\n"
               "serves: it writes in batches through the store's writer. Prints\n"
               "the number of resources reindexed.\n");
}

int hub__cmd_reindex(int argc, char **argv) {
    hub_cfg cfg;
    if (hub__cli_config("reindex", argc, argv, &cfg)) goto usage;
    const char *type = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (hub__cli_is_help(a)) {
            usage(stdout);
            hub_cfg_release(&cfg);
            return 0;
        }
        if (hub__cli_is_config("reindex", argc, argv, &i)) {
            continue;
        } else if (strncmp(a, "--type", 6) == 0 && (a[6] == 0 || a[6] == '=')) {
            if ((type = hub__cli_flag_value("reindex", argc, argv, &i, "--type")) == NULL) goto usage;
        } else {
            int r = hub__cli_cfg_flag("reindex", &cfg, argc, argv, &i);
            if (r < 0) goto usage;
            if (r == 0) {
                hub__cli_usage_error("reindex", "unknown flag '%s'", a);
                goto usage;
            }
        }
    }
    hub_err err;
    /* Reindexing rewrites index rows, never versions: no change reaches
     * the listeners, so none are started (hub replay's start-up, without
     * them). */
    hub__core core = {0};
    int rc = hub__core_open("reindex", &cfg, false, &core);
    if (rc) goto out;
    rc = 1;
    if (type && !hub_fhir_is_resource(core.defs, type)) {
        fprintf(stderr, "hub reindex: unknown resource type '%.64s'\n", type);
        rc = 2;
        goto out;
    }
    hub_record *record = core.record;
    int64_t n = 0;
    int64_t t0 = hub_mono_ns();
    if (hub_record_reindex(record, type, &n, &err) != HUB_OK) {
        fprintf(stderr, "hub reindex: %s: %s (after %lld resources)\n", err.where, err.msg,
                (long long)n);
        goto out;
    }
    printf("reindexed %lld resources%s%s in %.1f s\n", (long long)n, type ? " of " : "",
           type ? type : "", (double)(hub_mono_ns() - t0) / 1e9);
    rc = 0;
out:
    hub__core_close(&core);
    hub_cfg_release(&cfg);
    return rc;
usage:
    usage(stderr);
    hub_cfg_release(&cfg);
    return 2;
}
