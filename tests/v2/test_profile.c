/* Profiles: the generated base set (lazy loading, queries, timing) and
 * site-profile loading with its exact errors. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hub/v2.h"

#define CONF HUB_SOURCE_DIR "/conformance/v2"

static hub_v2_profset *set;

static void up(void) {
    hub_err err;
    cr_assert_eq(hub_v2_profset_open(CONF, &set, &err), HUB_OK, "%s", err.msg);
}
static void down(void) { hub_v2_profset_close(set); }

static const hub_v2_profile *get(const char *v) {
    const hub_v2_profile *p = NULL;
    hub_err err;
    cr_assert_eq(hub_v2_profset_get(set, v, &p, &err), HUB_OK, "%s: %s", err.where, err.msg);
    return p;
}

Test(v2_profile, versions_shipped, .init = up, .fini = down) {
    size_t n;
    const char *const *v = hub_v2_profset_versions(set, &n);
    const char *want[] = {"2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.7.1", "2.8"};
    cr_assert_eq(n, sizeof want / sizeof *want);
    for (size_t i = 0; i < n; i++) cr_assert_str_eq(v[i], want[i]);
}

Test(v2_profile, every_version_loads, .init = up, .fini = down) {
    size_t n;
    const char *const *v = hub_v2_profset_versions(set, &n);
    for (size_t i = 0; i < n; i++) {
        const hub_v2_profile *p = get(v[i]);
        cr_assert_str_eq(hub_v2_profile_version(p), v[i]);
        cr_assert_gt(hub_v2_profile_nstructs(p), 100);
        /* the same object on the second call */
        cr_assert_eq(get(v[i]), p);
    }
}

Test(v2_profile, load_times, .init = up, .fini = down) {
    size_t n;
    const char *const *v = hub_v2_profset_versions(set, &n);
    double total = 0;
    int64_t t0 = hub_mono_ns();
    hub_v2_profset *s2;
    hub_err err;
    cr_assert_eq(hub_v2_profset_open(CONF, &s2, &err), HUB_OK);
    double open_ms = (double)(hub_mono_ns() - t0) / 1e6;
    printf("v2_profile: open (start-up cost) %.3f ms\n", open_ms);
    for (size_t i = 0; i < n; i++) {
        const hub_v2_profile *p;
        int64_t a = hub_mono_ns();
        cr_assert_eq(hub_v2_profset_get(s2, v[i], &p, &err), HUB_OK);
        double ms = (double)(hub_mono_ns() - a) / 1e6;
        total += ms;
        printf("v2_profile: load v%-6s %6.2f ms%s\n", v[i], ms, i == 0 ? " (with tables)" : "");
    }
    printf("v2_profile: all versions %.2f ms\n", total);
    hub_v2_profset_close(s2);
    /* start-up reads one small file; generous bound for sanitizer builds */
    cr_assert_lt(open_ms, 20.0);
}

Test(v2_profile, unknown_version, .init = up, .fini = down) {
    const hub_v2_profile *p;
    hub_err err;
    cr_assert_eq(hub_v2_profset_get(set, "2.9", &p, &err), HUB_E_NOTFOUND);
    cr_assert_null(p);
    cr_assert_str_eq(err.where, "MSH-12");
}

Test(v2_profile, open_missing_dir) {
    hub_v2_profset *s;
    hub_err err;
    cr_assert_eq(hub_v2_profset_open("/nonexistent/hub", &s, &err), HUB_E_IO);
    cr_assert_null(s);
    cr_assert_str_eq(err.where, "versions.txt");
}

Test(v2_profile, pick_version, .init = up, .fini = down) {
    char out[16];
    cr_assert_eq(hub_v2_profset_pick(set, hub_slice_cstr("2.5.1"), out, sizeof out), 0);
    cr_assert_str_eq(out, "2.5.1");
    cr_assert_eq(hub_v2_profset_pick(set, hub_slice_cstr("2.8"), out, sizeof out), 0);
    cr_assert_str_eq(out, "2.8");
    /* 2.8.1 and 2.8.2 are validated with 2.8, anything newer too */
    cr_assert_eq(hub_v2_profset_pick(set, hub_slice_cstr("2.8.1"), out, sizeof out), 1);
    cr_assert_str_eq(out, "2.8");
    cr_assert_eq(hub_v2_profset_pick(set, hub_slice_cstr("2.8.2"), out, sizeof out), 1);
    cr_assert_str_eq(out, "2.8");
    cr_assert_eq(hub_v2_profset_pick(set, hub_slice_cstr("2.9.1"), out, sizeof out), 1);
    cr_assert_str_eq(out, "2.8");
    cr_assert_eq(hub_v2_profset_pick(set, hub_slice_cstr("2.7.2"), out, sizeof out), 1);
    cr_assert_str_eq(out, "2.7.1");
    cr_assert_eq(hub_v2_profset_pick(set, hub_slice_cstr("2.2"), out, sizeof out), 1);
    cr_assert_str_eq(out, "2.3");
    cr_assert_eq(hub_v2_profset_pick(set, hub_slice_cstr("2.5.2"), out, sizeof out), 1);
    cr_assert_str_eq(out, "2.5.1");
    const char *bad[] = {"", "3.0", "2", "2.", ".5", "2.5.1.1", "2.x", "1.9", "2.5a"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_assert_eq(hub_v2_profset_pick(set, hub_slice_cstr(bad[i]), out, sizeof out), -1,
                     "'%s'", bad[i]);
    cr_assert_eq(hub_v2_profset_pick(set, (hub_slice){NULL, 0}, out, sizeof out), -1);
}

Test(v2_profile, event_to_structure, .init = up, .fini = down) {
    const hub_v2_profile *p = get("2.5.1");
    hub_slice none = {NULL, 0};
    cr_assert_str_eq(hub_v2_profile_struct_for(p, hub_slice_cstr("ADT"), hub_slice_cstr("A04"), none),
                     "ADT_A01");
    cr_assert_str_eq(hub_v2_profile_struct_for(p, hub_slice_cstr("ADT"), hub_slice_cstr("A08"), none),
                     "ADT_A01");
    cr_assert_str_eq(hub_v2_profile_struct_for(p, hub_slice_cstr("ADT"), hub_slice_cstr("A31"), none),
                     "ADT_A05");
    cr_assert_str_eq(hub_v2_profile_struct_for(p, hub_slice_cstr("ORU"), hub_slice_cstr("R01"),
                                               hub_slice_cstr("ORU_R01")),
                     "ORU_R01");
    cr_assert_str_eq(hub_v2_profile_struct_for(p, hub_slice_cstr("ACK"), hub_slice_cstr("A01"), none),
                     "ACK");
    cr_assert_null(hub_v2_profile_struct_for(p, hub_slice_cstr("XYZ"), hub_slice_cstr("A01"), none));
    cr_assert_null(hub_v2_profile_struct_for(p, none, none, none));
    cr_assert(hub_v2_profile_knows_code(p, hub_slice_cstr("ADT")));
    cr_assert_not(hub_v2_profile_knows_code(p, hub_slice_cstr("AD")));
    /* v2.3 predates structure names: every event keeps its definition */
    const hub_v2_profile *p3 = get("2.3");
    cr_assert_str_eq(hub_v2_profile_struct_for(p3, hub_slice_cstr("ADT"), hub_slice_cstr("A04"), none),
                     "ADT_A04");
}

Test(v2_profile, field_and_component_defs, .init = up, .fini = down) {
    const hub_v2_profile *p = get("2.5.1");
    const hub_v2_item_def *f = hub_v2_profile_field(p, "PID", 3);
    cr_assert_not_null(f);
    cr_assert_str_eq(f->name, "Patient Identifier List");
    cr_assert_str_eq(f->datatype, "CX");
    cr_assert_eq(f->usage, 'R');
    cr_assert(f->repeats);
    cr_assert_eq(f->max_len, 250);
    f = hub_v2_profile_field(p, "PID", 8);
    cr_assert_eq(f->table, 1);
    cr_assert_not(f->repeats);
    cr_assert_null(hub_v2_profile_field(p, "PID", 0));
    cr_assert_null(hub_v2_profile_field(p, "PID", 999));
    cr_assert_null(hub_v2_profile_field(p, "ZZZ", 1));
    const hub_v2_item_def *c = hub_v2_profile_comp(p, "CX", 5);
    cr_assert_str_eq(c->datatype, "ID");
    cr_assert_eq(c->table, 203);
    cr_assert_null(hub_v2_profile_comp(p, "ST", 1));
    cr_assert_null(hub_v2_profile_comp(p, "NOPE", 1));
    /* v2.7 has no lengths in the source */
    cr_assert_eq(hub_v2_profile_field(get("2.7"), "PID", 3)->max_len, 0);
}

Test(v2_profile, tables, .init = up, .fini = down) {
    const hub_v2_profile *p = get("2.5.1");
    cr_assert_eq(hub_v2_profile_table_has(p, 1, hub_slice_cstr("F")), 1);
    cr_assert_eq(hub_v2_profile_table_has(p, 1, hub_slice_cstr("Q")), 0);
    cr_assert_eq(hub_v2_profile_table_has(p, 1, hub_slice_cstr("")), 0);
    cr_assert_eq(hub_v2_profile_table_has(p, 103, hub_slice_cstr("P")), 1);
    cr_assert_eq(hub_v2_profile_table_has(p, 9999, hub_slice_cstr("P")), -1);
}

Test(v2_profile, struct_def_drives_group_matching, .init = up, .fini = down) {
    const hub_v2_profile *p = get("2.5.1");
    const hub_v2_struct_def *def = hub_v2_profile_struct_def(p, "ORU_R01");
    cr_assert_not_null(def);
    cr_assert_str_eq(def->name, "ORU_R01");
    cr_assert_str_eq(def->version, "2.5.1");
    cr_assert_null(hub_v2_profile_struct_def(p, "NOPE_X"));
    const char *msg = "MSH|^~\\&|A|B|C|D|20230115||ORU^R01^ORU_R01|1|P|2.5.1\r"
                      "PID|1||1^^^H^MR||D^J\rOBR|1||O|1^G^LN\rOBX|1|NM|1^G^LN||1||||||F\r"
                      "NTE|1||c\rOBR|2||O|1^G^LN\rOBX|1|NM|1^G^LN||2||||||F\r";
    hub_arena a;
    hub_arena_init(&a, 8192);
    hub_v2_msg *m;
    hub_err err;
    cr_assert_eq(hub_v2_parse(&a, msg, strlen(msg), NULL, &m, &err), HUB_OK, "%s", err.msg);
    hub_v2_groups g;
    cr_assert_eq(hub_v2_group_match(&a, m, def, &g, &err), HUB_OK);
    cr_assert_eq(g.nunexpected, 0);
    const hub_v2_group *obx = hub_v2_group_parent(&g, 3);
    cr_assert_str_eq(obx->name, "OBSERVATION");
    cr_assert_str_eq(hub_v2_group_parent(&g, 4)->name, "OBSERVATION"); /* NTE under OBX */
    hub_v2_path path;
    cr_assert_eq(hub_v2_path_parse("PATIENT_RESULT(1)/ORDER_OBSERVATION(2)/OBX(1)-5", &path, &err),
                 HUB_OK);
    hub_slice v = hub_v2_group_get(&g, m, &path);
    cr_assert(hub_slice_eq_cstr(v, "2"));
    hub_arena_release(&a);
}

/* ---- site profiles -------------------------------------------------------------- */

static hub_status site(const char *json, hub_err *err) {
    hub_v2_site *s = NULL;
    hub_status rc = hub_v2_site_parse(set, json, strlen(json), "t.json", &s, err);
    if (rc == HUB_OK) cr_assert_not_null(s);
    else cr_assert_null(s);
    hub_v2_site_free(s);
    return rc;
}

Test(v2_profile, site_example_loads, .init = up, .fini = down) {
    hub_v2_site *s;
    hub_err err;
    cr_assert_eq(hub_v2_site_load(set, CONF "/site/example-lab.json", &s, &err), HUB_OK,
                 "%s: %s", err.where, err.msg);
    cr_assert_str_eq(hub_v2_site_name(s), "example-lab");
    hub_v2_policy pol;
    hub_v2_policy_default(&pol);
    cr_assert_eq(pol.sev[HUB_V2R_TOO_LONG], 'W');
    hub_v2_site_policy(s, &pol);
    cr_assert_eq(pol.sev[HUB_V2R_TOO_LONG], 'E');
    hub_v2_site_free(s);
    hub_v2_site_free(NULL);
}

Test(v2_profile, site_minimal_and_full, .init = up, .fini = down) {
    hub_err err;
    cr_assert_eq(site("{\"name\":\"x\"}", &err), HUB_OK);
    cr_assert_eq(site("{\"name\":\"x\",\"base\":\"2.4\",\"z_segments\":\"declared\","
                      "\"messages\":[\"ADT^A01\"],"
                      "\"structures\":{\"ADT_A01\":[\"MSH\",[\"G+\",\"PID\",\"<OBR|RXO>?\"]]},"
                      "\"fields\":{\"PID-3.4.1\":{\"usage\":\"R\",\"max_len\":5,\"codes\":[\"a\"]}},"
                      "\"policy\":{\"seg_z\":\"off\"}}",
                      &err),
                 HUB_OK, "%s: %s", err.where, err.msg);
}

Test(v2_profile, site_errors, .init = up, .fini = down) {
    static const struct {
        const char *json;
        hub_status rc;
        const char *where;
    } cases[] = {
        {"{", HUB_E_PARSE, "t.json"},
        {"[]", HUB_E_CONFIG, "profile"},
        {"{\"name\":\"x\",\"nmae\":1}", HUB_E_CONFIG, "profile"},
        {"{}", HUB_E_CONFIG, "name"},
        {"{\"name\":\"\"}", HUB_E_CONFIG, "name"},
        {"{\"name\":\"x\",\"base\":\"9.9\"}", HUB_E_NOTFOUND, "base"},
        {"{\"name\":\"x\",\"base\":2}", HUB_E_CONFIG, "base"},
        {"{\"name\":\"x\",\"z_segments\":\"sometimes\"}", HUB_E_CONFIG, "z_segments"},
        {"{\"name\":\"x\",\"z_segments\":[\"PID\"]}", HUB_E_CONFIG, "z_segments"},
        {"{\"name\":\"x\",\"z_segments\":[1]}", HUB_E_CONFIG, "z_segments"},
        {"{\"name\":\"x\",\"messages\":\"ADT\"}", HUB_E_CONFIG, "messages"},
        {"{\"name\":\"x\",\"fields\":{\"PID3\":{}}}", HUB_E_CONFIG, "fields.PID3"},
        {"{\"name\":\"x\",\"fields\":{\"PID-0\":{}}}", HUB_E_CONFIG, "fields.PID-0"},
        {"{\"name\":\"x\",\"fields\":{\"PID-3.\":{}}}", HUB_E_CONFIG, "fields.PID-3."},
        {"{\"name\":\"x\",\"fields\":{\"PID-3.1.1.1\":{}}}", HUB_E_CONFIG, "fields.PID-3.1.1.1"},
        {"{\"name\":\"x\",\"fields\":{\"pid-3\":{}}}", HUB_E_CONFIG, "fields.pid-3"},
        {"{\"name\":\"x\",\"fields\":{\"PID-3\":{\"usage\":\"Q\"}}}", HUB_E_CONFIG, "fields.PID-3"},
        {"{\"name\":\"x\",\"fields\":{\"PID-3\":{\"max_len\":0}}}", HUB_E_CONFIG, "fields.PID-3"},
        {"{\"name\":\"x\",\"fields\":{\"PID-3\":{\"codes\":\"F\"}}}", HUB_E_CONFIG, "fields.PID-3"},
        {"{\"name\":\"x\",\"fields\":{\"PID-3\":{\"colour\":1}}}", HUB_E_CONFIG, "fields.PID-3"},
        {"{\"name\":\"x\",\"fields\":{\"PID-3\":1}}", HUB_E_CONFIG, "fields.PID-3"},
        {"{\"name\":\"x\",\"policy\":{\"nope\":\"error\"}}", HUB_E_CONFIG, "policy.nope"},
        {"{\"name\":\"x\",\"policy\":{\"too_long\":\"fatal\"}}", HUB_E_CONFIG, "policy.too_long"},
        {"{\"name\":\"x\",\"structures\":{\"A\":[]}}", HUB_E_CONFIG, "structures.A"},
        {"{\"name\":\"x\",\"structures\":{\"A\":[\"pid\"]}}", HUB_E_CONFIG, "structures.A"},
        {"{\"name\":\"x\",\"structures\":{\"A\":[\"MSH\",[\"G\"]]}}", HUB_E_CONFIG, "structures.A"},
        {"{\"name\":\"x\",\"structures\":{\"A\":[\"MSH\",\"<OBR|RX>\"]}}", HUB_E_CONFIG, "structures.A"},
        {"{\"name\":\"x\",\"structures\":{\"A\":[\"MSH\",\"<OBR\"]}}", HUB_E_CONFIG, "structures.A"},
        {"{\"name\":\"x\",\"structures\":{\"A\":[\"MSH\",\"<OBR>**\"]}}", HUB_E_CONFIG, "structures.A"},
        {"{\"name\":\"x\",\"structures\":{\"A\":[\"MSH\",7]}}", HUB_E_CONFIG, "structures.A"},
        {"{\"name\":\"x\",\"name\":\"y\"}", HUB_E_PARSE, "t.json"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        hub_err err;
        hub_err_clear(&err);
        hub_status rc = site(cases[i].json, &err);
        cr_expect_eq(rc, cases[i].rc, "%s: got %s (%s: %s)", cases[i].json, hub_status_name(rc),
                     err.where, err.msg);
        cr_expect_str_eq(err.where, cases[i].where, "%s", cases[i].json);
    }
}

Test(v2_profile, site_nesting_too_deep, .init = up, .fini = down) {
    char json[2048] = "{\"name\":\"x\",\"structures\":{\"A\":[\"MSH\",";
    for (int i = 0; i < 20; i++) strcat(json, "[\"G\",");
    strcat(json, "\"PID\"");
    for (int i = 0; i < 20; i++) strcat(json, "]");
    strcat(json, "]}}");
    hub_err err;
    cr_assert_eq(site(json, &err), HUB_E_CONFIG);
    cr_assert(strstr(err.msg, "deep"));
}

Test(v2_profile, site_file_errors, .init = up, .fini = down) {
    hub_v2_site *s;
    hub_err err;
    cr_assert_eq(hub_v2_site_load(set, "/nonexistent/site.json", &s, &err), HUB_E_IO);
    cr_assert_str_eq(err.where, "site.json");
    cr_assert_null(s);
    char path[] = "/tmp/hub_v2site_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    /* over the size limit */
    char *big = malloc(HUB_MAX_CONFIG_FILE + 16);
    memset(big, ' ', HUB_MAX_CONFIG_FILE + 16);
    cr_assert_eq(write(fd, big, HUB_MAX_CONFIG_FILE + 16), (ssize_t)(HUB_MAX_CONFIG_FILE + 16));
    close(fd);
    free(big);
    cr_assert_eq(hub_v2_site_load(set, path, &s, &err), HUB_E_LIMIT);
    unlink(path);
}

Test(v2_profile, nomem_on_load_and_site, .fini = down) {
    hub_err err;
    int nomem = 0;
    for (long n = 1; n < 400; n++) {
        hub_v2_profset *s = NULL;
        hub_mem_fail_after(n);
        hub_status rc = hub_v2_profset_open(CONF, &s, &err);
        if (rc == HUB_OK) {
            const hub_v2_profile *p;
            rc = hub_v2_profset_get(s, "2.3.1", &p, &err);
        }
        hub_v2_site *site_p = NULL;
        if (rc == HUB_OK) {
            const char *j = "{\"name\":\"x\",\"fields\":{\"PID-3.4\":{\"usage\":\"R\"}},"
                            "\"structures\":{\"A\":[\"MSH\",[\"G+\",\"PID\"]]}}";
            rc = hub_v2_site_parse(s, j, strlen(j), "t", &site_p, &err);
        }
        hub_mem_fail_after(0);
        cr_assert(rc == HUB_OK || rc == HUB_E_NOMEM, "n=%ld: %s %s", n, hub_status_name(rc),
                  err.msg);
        if (rc == HUB_E_NOMEM) nomem++;
        hub_v2_site_free(site_p);
        hub_v2_profset_close(s);
        if (rc == HUB_OK) break;
    }
    cr_assert_gt(nomem, 0);
    set = NULL;
}
