/* hub validate: checks HL7 v2 files against the base profiles and an
 * optional site profile, printing one line per finding:
 *
 *   FILE[#MSG]:SEG[@N]:PATH: SEVERITY: TEXT (CODE)
 *
 * FILE is the path as given; #MSG (1-based) appears when the file holds
 * several messages; SEG is the segment id and N its 1-based position in
 * the message (omitted for a segment that is missing); PATH is the terse
 * path of the field, component... (PID-3(2).4, OBX(2)-5 for the second OBX)
 * or the segment alone;
 * SEVERITY is error, warning or info; CODE is from HL7 table 0357.
 * Example: adt.hl7:PID@3:PID-7: error: impossible date (DTM) (102)
 * Exit status: 0 no errors (warnings allowed), 1 errors or unreadable
 * input, 2 bad usage. */
#include "internal.h"

#include "hub/v2.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VALIDATE_USAGE                                                          \
    "usage: hub validate [--profile FILE] [--policy RULE=SEVERITY]...\n"        \
    "                    [--conformance DIR] [--quiet] FILE...\n"

static void print_help(void) {
    printf(VALIDATE_USAGE
           "\n"
           "Validates HL7 v2 messages (ER7; batch files too) against the base\n"
           "profile of their version (MSH-12) and, with --profile, a site profile.\n"
           "Prints one line per finding:\n"
           "  FILE[#MSG]:SEG[@N]:PATH: SEVERITY: TEXT (CODE)\n"
           "e.g. adt.hl7:PID@3:PID-7: error: impossible date (DTM) (102)\n"
           "N is the segment's position in the message, CODE is from HL7 table\n"
           "0357, #MSG numbers messages in a file that holds several.\n"
           "\n"
           "flags:\n"
           "  --profile FILE        site profile (JSON; conformance/v2/README.md)\n"
           "  --policy RULE=SEV     severity of a rule: error, warning, info, off\n"
           "                        (rules: conformance/v2/README.md)\n"
           "  --conformance DIR     conformance data (default: the source tree's)\n"
           "  --quiet, -q           print only errors\n"
           "\n"
           "exit status: 0 no errors, 1 errors or unreadable input, 2 bad usage\n");
}

static char *read_file(const char *path, size_t *n, char *why, size_t whysize) {
    char *buf;
    hub_err err;
    if (hub_file_read(path, HUB_MAX_FRAME * 4u, &buf, n, &err) != HUB_OK) {
        snprintf(why, whysize, "%s", err.msg);
        return NULL;
    }
    return buf;
}

static const char *sev_word(char s) {
    return s == 'E' ? "error" : s == 'W' ? "warning" : "info";
}

static void print_finding(const char *file, size_t msgno, bool many,
                          const hub_v2_finding *f) {
    char path[64];
    char seg[24];
    hub_v2_loc_format(&f->loc, path, sizeof path);
    if (f->loc.seg_id[0] == '\0') snprintf(seg, sizeof seg, "-");
    else if (f->loc.seg == UINT32_MAX) snprintf(seg, sizeof seg, "%s", f->loc.seg_id);
    else snprintf(seg, sizeof seg, "%s@%u", f->loc.seg_id, (unsigned)f->loc.seg + 1);
    if (many)
        printf("%s#%zu:%s:%s: %s: %s (%d)\n", file, msgno, seg, path[0] ? path : "-",
               sev_word(f->severity), f->text ? f->text : "", f->code);
    else
        printf("%s:%s:%s: %s: %s (%d)\n", file, seg, path[0] ? path : "-",
               sev_word(f->severity), f->text ? f->text : "", f->code);
}

/* Returns 0 clean, 1 errors. */
static int validate_file(const char *file, hub_v2_profset *set,
                         const hub_v2_validate_opts *vo, bool quiet) {
    char why[sizeof ((hub_err *)0)->msg] = "";
    size_t n = 0;
    char *buf = read_file(file, &n, why, sizeof why);
    if (buf == NULL) {
        fprintf(stderr, "hub validate: %s: cannot read: %s\n", file, why);
        return 1;
    }
    int rc = 0;
    hub_arena a;
    hub_arena_init(&a, 1 << 16);
    hub_v2_batch b;
    hub_err err;
    hub_err_clear(&err);
    if (hub_v2_batch_parse(&a, buf, n, NULL, &b, &err) != HUB_OK) {
        printf("%s:-:-: error: cannot parse: %s: %s (%d)\n", file, err.where, err.msg,
               HUB_V2_E_SEGMENT_SEQUENCE);
        rc = 1;
        goto out;
    }
    bool many = b.nmsgs > 1;
    for (size_t i = 0; i < b.nfindings; i++) {
        if (b.findings[i].severity == 'E') rc = 1;
        if (!quiet || b.findings[i].severity == 'E')
            print_finding(file, 0, false, &b.findings[i]);
    }
    for (size_t k = 0; k < b.nmsgs; k++) {
        if (b.msgs[k] == NULL) {
            if (many)
                printf("%s#%zu:-:-: error: cannot parse: %s: %s (%d)\n", file, k + 1,
                       b.msg_errs[k].where, b.msg_errs[k].msg, HUB_V2_E_SEGMENT_SEQUENCE);
            else
                printf("%s:-:-: error: cannot parse: %s: %s (%d)\n", file,
                       b.msg_errs[k].where, b.msg_errs[k].msg, HUB_V2_E_SEGMENT_SEQUENCE);
            rc = 1;
            continue;
        }
        hub_v2_findings fs;
        if (hub_v2_validate(&a, set, b.msgs[k], vo, &fs, &err) != HUB_OK) {
            fprintf(stderr, "hub validate: %s: %s\n", file, err.msg);
            rc = 1;
            continue;
        }
        for (size_t i = 0; i < fs.n; i++) {
            if (quiet && fs.items[i].severity != 'E') continue;
            print_finding(file, k + 1, many, &fs.items[i]);
        }
        if (fs.truncated)
            printf("%s:-:-: info: more findings not shown (%d)\n", file, 0);
        if (fs.nerrors) rc = 1;
    }
out:
    hub_arena_release(&a);
    hub_free(buf);
    return rc;
}

int hub__cmd_validate(int argc, char **argv) {
    const char *profile = NULL;
    bool quiet = false;
    hub_cfg cfg;
    hub_cfg_defaults(&cfg);
    hub_v2_policy pol; /* only to check --policy values early */
    hub_v2_policy_default(&pol);
    struct {
        const char *rule, *sev;
    } over[64];
    size_t nover = 0;
    int first = argc;
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (hub__cli_is_help(a)) {
            print_help();
            hub_cfg_release(&cfg);
            return 0;
        }
        if (strcmp(a, "--") == 0) {
            first = i + 1;
            break;
        }
        if (a[0] != '-' || a[1] == '\0') {
            first = i;
            break;
        }
        if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
            quiet = true;
        } else if (strncmp(a, "--profile", 9) == 0 && (a[9] == '\0' || a[9] == '=')) {
            profile = hub__cli_flag_value("validate", argc, argv, &i, "--profile");
            if (profile == NULL) goto usage;
        } else if (strncmp(a, "--policy", 8) == 0 && (a[8] == '\0' || a[8] == '=')) {
            const char *kv = hub__cli_flag_value("validate", argc, argv, &i, "--policy");
            if (kv == NULL) goto usage;
            const char *eq = strchr(kv, '=');
            if (eq == NULL || nover == 64) {
                hub__cli_usage_error("validate", "--policy wants RULE=SEVERITY");
                goto usage;
            }
            char rule[48];
            snprintf(rule, sizeof rule, "%.*s", (int)(eq - kv), kv);
            hub_err err;
            if (hub_v2_policy_set(&pol, rule, eq + 1, &err) != HUB_OK) {
                hub__cli_usage_error("validate", "--policy: %s", err.msg);
                goto usage;
            }
            over[nover].rule = kv;
            over[nover++].sev = eq + 1;
        } else {
            int r = hub__cli_cfg_flag("validate", &cfg, argc, argv, &i);
            if (r < 0) goto usage;
            if (r == 0) {
                hub__cli_usage_error("validate", "unknown flag '%s'", a);
                goto usage;
            }
        }
    }
    if (first >= argc) {
        hub__cli_usage_error("validate", "no FILE given (see hub validate --help)");
        goto usage;
    }
    char dir[600];
    if (cfg.conformance_dir[0])
        snprintf(dir, sizeof dir, "%s/v2", cfg.conformance_dir);
    else
        snprintf(dir, sizeof dir, "%s/conformance/v2", HUB_SOURCE_DIR);
    hub_v2_profset *set = NULL;
    hub_v2_site *site = NULL;
    hub_err err;
    if (hub_v2_profset_open(dir, &set, &err) != HUB_OK) {
        fprintf(stderr, "hub validate: %s: %s: %s\n", dir, err.where, err.msg);
        hub_cfg_release(&cfg);
        return 1;
    }
    if (profile && hub_v2_site_load(set, profile, &site, &err) != HUB_OK) {
        fprintf(stderr, "hub validate: %s: %s: %s\n", profile, err.where, err.msg);
        hub_v2_profset_close(set);
        hub_cfg_release(&cfg);
        return 1;
    }
    /* --policy wins over the site profile's own policy, which wins over
     * the defaults. */
    hub_v2_policy eff;
    hub_v2_policy_default(&eff);
    if (site) hub_v2_site_policy(site, &eff);
    for (size_t k = 0; k < nover; k++) {
        char rule[48];
        snprintf(rule, sizeof rule, "%.*s", (int)(over[k].sev - 1 - over[k].rule), over[k].rule);
        hub_v2_policy_set(&eff, rule, over[k].sev, &err); /* checked above */
    }
    hub_v2_validate_opts vo = {.site = site, .policy = &eff, .max = 0};
    for (int i = first; i < argc; i++)
        if (validate_file(argv[i], set, &vo, quiet)) rc = 1;
    hub_v2_site_free(site);
    hub_v2_profset_close(set);
    hub_cfg_release(&cfg);
    return rc;
usage:
    hub_cfg_release(&cfg);
    return 2;
}
