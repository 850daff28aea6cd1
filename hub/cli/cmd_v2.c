/* `hub get` and `hub inspect`: read HL7 v2 files from the command line. */
#include "internal.h"

#include "hub/v2.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Reads a whole file into a heap buffer (NUL added, not counted). */
static char *read_file(const char *cmd, const char *path, size_t *n) {
    char *buf;
    hub_err err;
    if (hub_file_read(path, HUB_MAX_FRAME * 4u, &buf, n, &err) != HUB_OK) {
        fprintf(stderr, "hub %s: %s: %s\n", cmd, path,
                err.code == HUB_E_LIMIT ? "file too large" : err.msg);
        return NULL;
    }
    return buf;
}

static void print_err(const char *cmd, const char *file, const hub_err *e) {
    fprintf(stderr, "hub %s: %s: %s: %s\n", cmd, file, e->where[0] ? e->where : "-",
            e->msg);
}

/* Reads FILE and parses it as a batch (a single message is a batch of one)
 * into `a`. Returns 0, or 1 after printing why; *buf is to be freed either
 * way (NULL when the file could not be read). */
static int load_batch(const char *cmd, const char *path, hub_arena *a, char **buf,
                      hub_v2_batch *b) {
    size_t n;
    *buf = read_file(cmd, path, &n);
    if (*buf == NULL) return 1;
    hub_err e;
    if (hub_v2_batch_parse(a, *buf, n, NULL, b, &e) != HUB_OK) {
        print_err(cmd, path, &e);
        return 1;
    }
    return 0;
}

/* Prints a decoded value; line breaks inside it are kept. */
static void print_value(hub_arena *a, const hub_v2_msg *m, hub_slice raw) {
    const char *t = hub_v2_text(a, m, raw);
    printf("%s\n", t ? t : "");
}

/* The structure that groups message m: the base profile's for its version
 * (conformance/v2, opened on first use into *set) when the profiles are
 * there and know it, else the engine's built-in one (ORU_R01, ADT_A01).
 * NULL when neither has it. */
static const hub_v2_struct_def *struct_of(hub_v2_profset **set, const hub_v2_msg *m) {
    char sname[32];
    hub_v2_struct_name(m, sname, sizeof sname);
    if (*set == NULL) {
        char dir[600];
        snprintf(dir, sizeof dir, "%s/conformance/v2", HUB_SOURCE_DIR);
        if (hub_v2_profset_open(dir, set, NULL) != HUB_OK) *set = NULL;
    }
    const hub_v2_msh *h = hub_v2_msg_msh(m);
    char ver[16];
    const hub_v2_profile *p = NULL;
    if (*set && hub_v2_profset_pick(*set, h->version, ver, sizeof ver) >= 0 &&
        hub_v2_profset_get(*set, ver, &p, NULL) == HUB_OK) {
        const char *name = hub_v2_profile_struct_for(p, h->msg_code, h->trigger, h->structure);
        const hub_v2_struct_def *def = name ? hub_v2_profile_struct_def(p, name) : NULL;
        if (def) return def;
    }
    return hub_v2_struct_builtin(sname);
}

int hub__cmd_get(int argc, char **argv) {
    static const char usage[] =
        "usage: hub get FILE PATH...\n\n"
        "Prints the decoded value at each terse path, one per line, for every\n"
        "message in FILE (batches too). Paths: PID-3, PID-3(2).4.2, OBX(3)-5,\n"
        "MSH-9.2, and with groups PATIENT_RESULT(1)/ORDER_OBSERVATION(1)/OBX(2)-5\n"
        "(ORU_R01 and ADT_A01 structures). A missing value prints an empty line.\n"
        "Exit status: 0 done, 1 the file cannot be read or parsed, 2 bad usage.\n";
    for (int i = 1; i < argc; i++) {
        if (hub__cli_is_help(argv[i])) {
            fputs(usage, stdout);
            return 0;
        }
    }
    if (argc < 3) return hub__cli_usage_error("get", "needs FILE and at least one PATH");
    int npaths = argc - 2;
    hub_v2_path *paths = hub_calloc((size_t)npaths, sizeof *paths);
    if (paths == NULL) return 1;
    for (int i = 0; i < npaths; i++) {
        hub_err e;
        if (hub_v2_path_parse(argv[i + 2], &paths[i], &e) != HUB_OK) {
            hub_free(paths);
            return hub__cli_usage_error("get", "bad path '%s': %s", argv[i + 2], e.msg);
        }
    }
    hub_arena a;
    hub_v2_profset *set = NULL;
    hub_arena_init(&a, 65536);
    hub_v2_batch b;
    char *buf;
    int rc = load_batch("get", argv[1], &a, &buf, &b);
    if (rc == 0) {
        for (size_t k = 0; k < b.nmsgs; k++) {
            const hub_v2_msg *m = b.msgs[k];
            if (m == NULL) {
                print_err("get", argv[1], &b.msg_errs[k]);
                rc = 1;
                continue;
            }
            hub_v2_groups g;
            bool have_groups = false;
            const hub_v2_struct_def *def = struct_of(&set, m);
            for (int i = 0; i < npaths; i++) {
                hub_slice v;
                if (paths[i].ngroups) {
                    if (!have_groups && def &&
                        hub_v2_group_match(&a, m, def, &g, NULL) == HUB_OK)
                        have_groups = true;
                    v = have_groups ? hub_v2_group_get(&g, m, &paths[i])
                                    : (hub_slice){NULL, 0};
                } else {
                    v = hub_v2_get_path(m, &paths[i]);
                }
                if (paths[i].field == 0) {
                    printf("%.*s\n", (int)v.n, v.p ? v.p : "");
                } else {
                    print_value(&a, m, v);
                }
            }
        }
    }
    hub_v2_profset_close(set);
    hub_arena_release(&a);
    hub_free(buf);
    hub_free(paths);
    return rc;
}

static void indent(int depth) {
    for (int i = 0; i < depth; i++) fputs("  ", stdout);
}

static void print_segment(hub_arena *a, const hub_v2_msg *m, size_t seg, int depth,
                          const char *note) {
    hub_slice id = hub_v2_seg_id(m, seg);
    indent(depth);
    printf("%.*s%s\n", (int)id.n, id.p, note);
    size_t nf = hub_v2_field_count(m, seg);
    for (size_t f = 1; f <= nf; f++) {
        hub_slice v = hub_v2_at(m, seg, f, 0, 0, 0);
        if (v.n == 0) continue;
        indent(depth + 1);
        if (f <= 2 && hub_slice_eq_cstr(id, "MSH")) {
            printf("%.*s-%zu  %.*s\n", (int)id.n, id.p, f, (int)v.n, v.p);
            continue;
        }
        const char *t = hub_v2_text(a, m, v);
        printf("%.*s-%zu  ", (int)id.n, id.p, f);
        /* Keep one line per field: show line breaks as \n. */
        for (const char *c = t ? t : ""; *c; c++) {
            if (*c == '\n') fputs("\\n", stdout);
            else if (*c == '\r') fputs("\\r", stdout);
            else putchar(*c);
        }
        putchar('\n');
    }
}

static void print_group(hub_arena *a, const hub_v2_msg *m, const hub_v2_group *g,
                        int depth) {
    for (const hub_v2_group *c = g->first_child; c; c = c->next) {
        if (c->is_segment) {
            print_segment(a, m, c->seg, depth, c->def ? "" : "  (not in the structure)");
        } else {
            indent(depth);
            printf("%s(%u)\n", c->name, (unsigned)c->occ);
            print_group(a, m, c, depth + 1);
        }
    }
}

int hub__cmd_inspect(int argc, char **argv) {
    static const char usage[] =
        "usage: hub inspect FILE\n\n"
        "Prints every message in FILE as an indented tree: segment groups (for\n"
        "the structure the base profile of the message's version names, or the\n"
        "built-in ORU_R01 and ADT_A01), segments, and their non-empty\n"
        "fields, decoded. Exit status: 0 done, 1 the file cannot be read or\n"
        "parsed, 2 bad usage.\n";
    if (argc > 1 && hub__cli_is_help(argv[1])) {
        fputs(usage, stdout);
        return 0;
    }
    if (argc != 2) return hub__cli_usage_error("inspect", "needs exactly one FILE");
    hub_arena a;
    hub_v2_profset *set = NULL;
    hub_arena_init(&a, 65536);
    hub_v2_batch b;
    char *buf;
    hub_err e;
    int rc = load_batch("inspect", argv[1], &a, &buf, &b);
    if (rc == 0) {
        for (size_t k = 0; k < b.nenv; k++) {
            printf("envelope %zu: %s%s%s\n", k + 1, b.env[k].is_file ? "FHS" : "BHS",
                   b.env[k].trailer.p ? "" : " (no trailer)",
                   b.env[k].parent >= 0 ? " (nested)" : "");
        }
        for (size_t k = 0; k < b.nfindings; k++)
            printf("batch: %s: %s (HL7 %d)\n", b.findings[k].loc.seg_id,
                   b.findings[k].text, b.findings[k].code);
        for (size_t k = 0; k < b.nmsgs; k++) {
            const hub_v2_msg *m = b.msgs[k];
            if (m == NULL) {
                print_err("inspect", argv[1], &b.msg_errs[k]);
                rc = 1;
                continue;
            }
            const hub_v2_msh *h = hub_v2_msg_msh(m);
            char sname[32];
            hub_v2_struct_name(m, sname, sizeof sname);
            printf("message %zu: %s (v%.*s, %zu segments)\n", k + 1,
                   sname[0] ? sname : "?", (int)h->version.n,
                   h->version.p ? h->version.p : "", hub_v2_seg_count(m));
            const hub_v2_struct_def *def = struct_of(&set, m);
            hub_v2_groups g;
            if (def && hub_v2_group_match(&a, m, def, &g, &e) == HUB_OK) {
                print_group(&a, m, g.root, 1);
            } else {
                for (size_t s = 0; s < hub_v2_seg_count(m); s++)
                    print_segment(&a, m, s, 1, "");
            }
        }
    }
    hub_v2_profset_close(set);
    hub_arena_release(&a);
    hub_free(buf);
    return rc;
}
