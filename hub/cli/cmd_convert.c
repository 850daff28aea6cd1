/* hub convert: HL7 v2 files to FHIR transaction Bundles through the
 * mapping tables, or (--explain) where each element came from. */
#include "internal.h"

#include "hub/fhir.h"
#include "hub/map.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: hub convert [--explain] [--validate] [--local NAME]... FILE...\n\n"
            "Maps each HL7 v2 message of each FILE (one message, several, or a\n"
            "FHS/BHS batch) through the mapping tables and prints its transaction\n"
            "Bundle as JSON, one per message.\n\n"
            "  --explain      print, for each FHIR element, the v2 field and the\n"
            "                 table rows it came from, instead of the Bundle\n"
            "  --validate     check every Bundle against the FHIR R4 definitions\n"
            "  --local NAME   apply the local-code table NAME (repeatable)\n"
            "  --mappings DIR the shipped tables (default: the built-in ones)\n"
            "  --map-site DIR a site's own tables (Z-segments, local codes)\n"
            "  --compact      one line of JSON per Bundle\n\n"
            "Exit status: 0 all converted, 1 a message failed, 2 bad usage.\n");
}

typedef struct {
    const hub_map *map;
    hub_v2_profset *profiles;
    const hub_fhir_defs *defs;
    const char *local[16];
    size_t nlocal;
    bool explain, compact;
} conv;

static const hub_v2_struct_def *structure_of(conv *cv, const hub_v2_msg *m) {
    if (cv->profiles == NULL) return NULL;
    const hub_v2_msh *h = hub_v2_msg_msh(m);
    char ver[32];
    if (hub_v2_profset_pick(cv->profiles, h->version, ver, sizeof ver) < 0) return NULL;
    const hub_v2_profile *p = NULL;
    if (hub_v2_profset_get(cv->profiles, ver, &p, NULL) != HUB_OK) return NULL;
    const char *sn = hub_v2_profile_struct_for(p, h->msg_code, h->trigger, h->structure);
    return sn ? hub_v2_profile_struct_def(p, sn) : NULL;
}

static int convert_one(conv *cv, const char *file, size_t idx, const hub_v2_msg *m) {
    /* --compact without --validate needs no jansson tree: the text form
     * is the same bytes for a fraction of the work. */
    bool text = cv->compact && !cv->explain && cv->defs == NULL;
    hub_map_opts o = {.local = cv->local, .nlocal = cv->nlocal, .explain = cv->explain,
                      .structure = structure_of(cv, m),
                      .out = text ? HUB_MAP_OUT_TEXT : HUB_MAP_OUT_JANSSON};
    hub_map_result r;
    hub_err err;
    hub_err_clear(&err);
    if (hub_map_message(cv->map, m, &o, &r, &err) != HUB_OK) {
        fprintf(stderr, "%s: message %zu: %s: %s (%s, HL7 error %d)\n", file, idx, err.where,
                err.msg, hub_status_name(err.code), r.v2_code);
        hub_map_result_release(&r);
        return 1;
    }
    int rc = 0;
    if (cv->explain) {
        fwrite(r.explain.p ? r.explain.p : "", 1, r.explain.n, stdout);
        printf("\n");
    } else if (text) {
        fwrite(r.json.p, 1, r.json.n, stdout);
        printf("\n");
    } else {
        char *js = hub_json_dumps(r.bundle, cv->compact ? JSON_COMPACT : JSON_INDENT(2));
        if (js) printf("%s\n", js);
        free(js);
    }
    if (cv->defs) {
        hub_oo *oo = hub_oo_new();
        hub_fhir_validate_opts vo = {0};
        if (hub_fhir_validate(cv->defs, r.bundle, &vo, oo) != HUB_OK) {
            json_t *oj = hub_oo_json(oo);
            char *js = hub_json_dumps(oj, JSON_COMPACT);
            fprintf(stderr, "%s: message %zu: the Bundle is not valid FHIR: %s\n", file, idx,
                    js ? js : "?");
            free(js);
            json_decref(oj);
            rc = 1;
        }
        hub_oo_free(oo);
    }
    if (r.nunmapped)
        fprintf(stderr, "%s: message %zu: %zu code(s) unmapped (kept, flagged)\n", file, idx,
                r.nunmapped);
    hub_map_result_release(&r);
    return rc;
}

static int convert_file(conv *cv, const char *path) {
    char *buf = NULL;
    size_t n = 0;
    hub_err err;
    if (hub_file_read(path, 256u << 20, &buf, &n, &err) != HUB_OK) {
        fprintf(stderr, "hub convert: %s: %s\n", path, err.msg);
        return 1;
    }
    hub_arena a;
    hub_arena_init(&a, 64 * 1024);
    hub_v2_batch b;
    int rc = 0;
    if (hub_v2_batch_parse(&a, buf, n, NULL, &b, &err) != HUB_OK) {
        fprintf(stderr, "hub convert: %s: %s: %s\n", path, err.where, err.msg);
        rc = 1;
    } else {
        for (size_t i = 0; i < b.nmsgs; i++) {
            if (b.msgs[i] == NULL) {
                fprintf(stderr, "%s: message %zu: %s: %s\n", path, i + 1, b.msg_errs[i].where,
                        b.msg_errs[i].msg);
                rc = 1;
                continue;
            }
            if (convert_one(cv, path, i + 1, b.msgs[i])) rc = 1;
        }
    }
    hub_arena_release(&a);
    hub_free(buf);
    return rc;
}

int hub__cmd_convert(int argc, char **argv) {
    conv cv;
    memset(&cv, 0, sizeof cv);
    bool validate = false;
    hub_cfg cfg;
    hub_cfg_defaults(&cfg);
    int first = argc;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (hub__cli_is_help(a)) {
            usage(stdout);
            hub_cfg_release(&cfg);
            return 0;
        }
        if (a[0] != '-') {
            first = i;
            break;
        }
        if (strcmp(a, "--explain") == 0) cv.explain = true;
        else if (strcmp(a, "--validate") == 0) validate = true;
        else if (strcmp(a, "--compact") == 0) cv.compact = true;
        else if (strncmp(a, "--local", 7) == 0 && (a[7] == 0 || a[7] == '=')) {
            const char *v = hub__cli_flag_value("convert", argc, argv, &i, "--local");
            if (v == NULL) goto usage;
            if (cv.nlocal == 16) {
                hub__cli_usage_error("convert", "more than 16 --local tables");
                goto usage;
            }
            cv.local[cv.nlocal++] = v;
        } else {
            int r = hub__cli_cfg_flag("convert", &cfg, argc, argv, &i);
            if (r < 0) goto usage;
            if (r == 0) {
                hub__cli_usage_error("convert", "unknown flag '%s'", a);
                goto usage;
            }
        }
    }
    if (first >= argc) {
        hub__cli_usage_error("convert", "no FILE given (see hub convert --help)");
        goto usage;
    }
    hub_err err;
    char dir[600];
    snprintf(dir, sizeof dir, "%s", cfg.mappings_dir[0] ? cfg.mappings_dir : HUB_SOURCE_DIR "/mappings");
    hub_map_cfg mc = {.dir = dir, .site_dir = cfg.map_site_dir[0] ? cfg.map_site_dir : NULL};
    hub_map *map = NULL;
    if (hub_map_load(&mc, &map, &err) != HUB_OK) {
        fprintf(stderr, "hub convert: mapping tables: %s: %s\n", err.where, err.msg);
        hub_cfg_release(&cfg);
        return 1;
    }
    for (size_t i = 0; i < cv.nlocal; i++)
        if (!hub_map_has_local(map, cv.local[i])) {
            fprintf(stderr, "hub convert: no local-code table '%s'\n", cv.local[i]);
            hub_map_free(map);
            hub_cfg_release(&cfg);
            return 2;
        }
    cv.map = map;
    const char *conf = cfg.conformance_dir[0] ? cfg.conformance_dir : HUB_SOURCE_DIR "/conformance";
    char pdir[600];
    snprintf(pdir, sizeof pdir, "%s/v2", conf);
    if (hub_v2_profset_open(pdir, &cv.profiles, &err) != HUB_OK) cv.profiles = NULL;
    hub_fhir_defs *defs = NULL;
    if (validate) {
        char fdir[600];
        snprintf(fdir, sizeof fdir, "%s/fhir/r4", conf);
        if (hub_fhir_defs_load(fdir, &defs, &err) != HUB_OK) {
            fprintf(stderr, "hub convert: FHIR definitions: %s: %s\n", err.where, err.msg);
            hub_v2_profset_close(cv.profiles);
            hub_map_free(map);
            hub_cfg_release(&cfg);
            return 1;
        }
        cv.defs = defs;
    }
    int rc = 0;
    for (int i = first; i < argc; i++)
        if (convert_file(&cv, argv[i])) rc = 1;
    hub_fhir_defs_free(defs);
    hub_v2_profset_close(cv.profiles);
    hub_map_free(map);
    hub_cfg_release(&cfg);
    return rc;
usage:
    hub_cfg_release(&cfg);
    return 2;
}
