/* v2 -> FHIR through a real `hub serve`: the ACK means the record has it;
 * resends, updates, cancels and merges land on the same resources; a
 * mapping failure is an AE naming the field, journaled as errored, and
 * `hub replay` applies it once the tables are fixed. */
#include "hub_test.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MSH(ev, ctl) "MSH|^~\\&|EHR|GENHOSP|HUB|HUB|20261125101500||ADT^" ev "|" ctl "|P|2.5.1\r"
#define PID_DOE "PID|1||MRN1^^^GENHOSP&1.2.3&ISO^MR||DOE^JANE||19800101|F\r"
#define PV1_V1 "PV1|1|I|MED^101^1||||||||||||||||V1^^^GENHOSP&1.2.3&ISO^VN\r"

/* A hub whose channel maps without profile validation: these tests are
 * about the mapping (the validator has its own), so a message the tables
 * refuse reaches them. */
static char g_tmp[256];
static void up(void) {
    hub_test_tmpdir(g_tmp);
    char cfgp[300];
    snprintf(cfgp, sizeof cfgp, "%s/hub.json", g_tmp);
    FILE *f = fopen(cfgp, "w");
    cr_assert_not_null(f);
    fputs("{\"channels\": [{\"name\": \"ehr\", \"port\": 0, \"validate\": false}]}", f);
    fclose(f);
    static char cfgarg[300];
    snprintf(cfgarg, sizeof cfgarg, "%s", cfgp);
    const char *extra[] = {"--config", cfgarg, NULL};
    memset(&hub_test_current, 0, sizeof hub_test_current);
    hub_test_start(&hub_test_current, extra);
}
static void down(void) {
    hub_test_down();
    hub_test_rmtree(g_tmp);
}

static const char *send_recv(int fd, const char *msg, hub_buf *ack) {
    cr_assert_eq(hub_test_send_frame(fd, msg), 0);
    hub_buf_release(ack);
    hub_buf_init(ack);
    cr_assert_eq(hub_test_read_frame(fd, ack, 10000), 0, "an ACK arrives");
    return hub_test_ack_code(ack->p);
}

static void send_aa(const char *msg) {
    int fd = hub_test_dial(hub_test_mllp_port());
    hub_buf ack;
    hub_buf_init(&ack);
    cr_assert_str_eq(send_recv(fd, msg, &ack), "AA", "%s", ack.p);
    hub_buf_release(&ack);
    close(fd);
}

/* A golden Patient of the patient index (the hub's own record of a
 * person, docs/mpi.md): these tests count what the mapping wrote. */
static bool is_golden(const json_t *r) {
    json_t *tags = json_object_get(json_object_get(r, "meta"), "tag");
    for (size_t i = 0; i < json_array_size(tags); i++) {
        const char *code = json_string_value(json_object_get(json_array_get(tags, i), "code"));
        if (code && strcmp(code, "golden") == 0) return true;
    }
    return false;
}

/* The current version of every live resource of `type` that the mapping
 * wrote (from the type's history, newest first; golden Patients left
 * out, and their versions not counted). A new reference: an array. */
static json_t *current(const char *type, size_t *nversions) {
    char path[128];
    snprintf(path, sizeof path, "/fhir/%s/_history?_count=1000", type);
    hub_buf b;
    hub_buf_init(&b);
    int st = hub_test_http(hub_test_http_port(), "GET", path, NULL, NULL, 0, &b, NULL);
    cr_assert_eq(st, 200, "GET %s -> %d %s", path, st, b.p);
    json_t *bundle = json_loadb(b.p, b.n, 0, NULL);
    hub_buf_release(&b);
    cr_assert_not_null(bundle);
    json_t *out = json_array();
    json_t *seen = json_object();
    json_t *entries = json_object_get(bundle, "entry");
    if (nversions) *nversions = 0;
    for (size_t i = 0; i < json_array_size(entries); i++) {
        json_t *r = json_object_get(json_array_get(entries, i), "resource");
        const char *id = json_string_value(json_object_get(r, "id"));
        if (r == NULL || is_golden(r)) continue;
        if (nversions) (*nversions)++;
        if (id == NULL || json_object_get(seen, id)) continue;
        json_object_set_new(seen, id, json_true());
        json_array_append(out, r);
    }
    json_decref(seen);
    json_decref(bundle);
    return out;
}

static const char *s(json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

Test(e2e_map, resend_and_corrections_update_never_duplicate, .init = up, .fini = down) {
    send_aa(MSH("A01^ADT_A01", "R-1") PID_DOE PV1_V1);
    /* A corrected resend: another control id, the same business keys. */
    send_aa(MSH("A01^ADT_A01", "R-2") PID_DOE PV1_V1);
    size_t nv = 0;
    json_t *pats = current("Patient", &nv);
    cr_assert_eq(json_array_size(pats), 1, "one Patient");
    cr_assert_eq(nv, 1, "the same facts again make no new version");
    json_t *encs = current("Encounter", &nv);
    cr_assert_eq(json_array_size(encs), 1, "one Encounter");
    cr_assert_eq(nv, 1, "the Encounter refers to the Patient: again no new version");
    json_decref(pats);
    json_decref(encs);
    /* The same message again (same control id): answered from the journal. */
    send_aa(MSH("A01^ADT_A01", "R-2") PID_DOE PV1_V1);
    pats = current("Patient", &nv);
    cr_assert_eq(nv, 1, "nothing applied twice");
    json_decref(pats);
    /* A correction (a new name) is a new version of the same Patient. */
    send_aa(MSH("A08^ADT_A01", "R-3") "PID|1||MRN1^^^GENHOSP&1.2.3&ISO^MR||DOE^JANET||19800101|F\r" PV1_V1);
    pats = current("Patient", &nv);
    cr_assert_eq(json_array_size(pats), 1, "still one Patient");
    cr_assert_eq(nv, 2, "a second version");
    json_decref(pats);
    json_t *prov = current("Provenance", NULL);
    cr_assert_eq(json_array_size(prov), 3, "one Provenance per applied message (R-1..R-3)");
    json_decref(prov);
}

Test(e2e_map, a08_updates_empty_leaves_and_null_clears, .init = up, .fini = down) {
    send_aa(MSH("A01^ADT_A01", "U-1") PID_DOE PV1_V1);
    /* A08: a new name, PID-7 and PID-8 empty: kept. */
    send_aa(MSH("A08^ADT_A01", "U-2") "PID|1||MRN1^^^GENHOSP&1.2.3&ISO^MR||ROE^JANE\r" PV1_V1);
    json_t *pats = current("Patient", NULL);
    cr_assert_eq(json_array_size(pats), 1);
    json_t *p = json_array_get(pats, 0);
    cr_assert_str_eq(s(json_array_get(json_object_get(p, "name"), 0), "family"), "ROE");
    cr_assert_str_eq(s(p, "birthDate"), "1980-01-01");
    cr_assert_str_eq(s(p, "gender"), "female");
    json_decref(pats);
    /* PID-7 sent as "": deleted. */
    send_aa(MSH("A08^ADT_A01", "U-3") "PID|1||MRN1^^^GENHOSP&1.2.3&ISO^MR||ROE^JANE||\"\"\r" PV1_V1);
    pats = current("Patient", NULL);
    p = json_array_get(pats, 0);
    cr_assert_null(json_object_get(p, "birthDate"));
    cr_assert_str_eq(s(p, "gender"), "female");
    json_decref(pats);
}

Test(e2e_map, a11_cancels_and_a13_reverses, .init = up, .fini = down) {
    send_aa(MSH("A01^ADT_A01", "C-1") PID_DOE PV1_V1);
    send_aa(MSH("A11^ADT_A09", "C-2") PID_DOE PV1_V1);
    json_t *encs = current("Encounter", NULL);
    cr_assert_eq(json_array_size(encs), 1);
    cr_assert_str_eq(s(json_array_get(encs, 0), "status"), "cancelled");
    json_decref(encs);
    send_aa(MSH("A13^ADT_A01", "C-3") PID_DOE PV1_V1);
    encs = current("Encounter", NULL);
    cr_assert_str_eq(s(json_array_get(encs, 0), "status"), "in-progress");
    json_decref(encs);
}

Test(e2e_map, a40_merges_patients, .init = up, .fini = down) {
    send_aa(MSH("A01^ADT_A01", "M-1") "PID|1||OLD1^^^GENHOSP&1.2.3&ISO^MR||DOE^JANE\r" PV1_V1);
    send_aa(MSH("A04^ADT_A01", "M-2") "PID|1||NEW1^^^GENHOSP&1.2.3&ISO^MR||DOE^JANE\r");
    send_aa(MSH("A40^ADT_A39", "M-3") "EVN|A40\r"
            "PID|1||NEW1^^^GENHOSP&1.2.3&ISO^MR||DOE^JANE\r"
            "MRG|OLD1^^^GENHOSP&1.2.3&ISO^MR\r");
    json_t *pats = current("Patient", NULL);
    cr_assert_eq(json_array_size(pats), 2, "the two Patients, no third");
    json_t *old = NULL, *surv = NULL;
    for (size_t i = 0; i < 2; i++) {
        json_t *p = json_array_get(pats, i);
        const char *v = s(json_array_get(json_object_get(p, "identifier"), 0), "value");
        if (strcmp(v, "OLD1") == 0) old = p;
        else surv = p;
    }
    cr_assert(old && surv);
    cr_assert(json_is_false(json_object_get(old, "active")));
    json_t *link = json_array_get(json_object_get(old, "link"), 0);
    cr_assert_str_eq(s(link, "type"), "replaced-by");
    char want[128];
    snprintf(want, sizeof want, "Patient/%s", s(surv, "id"));
    cr_assert_str_eq(s(json_object_get(link, "other"), "reference"), want);
    /* The old one keeps what the merge did not touch. */
    cr_assert_not_null(json_object_get(old, "name"));
    /* The patient index merged the two people: one golden for both. */
    const char *g_old = NULL, *g_surv = NULL;
    for (size_t k = 0; k < 2; k++) {
        json_t *p = k ? surv : old;
        json_t *ls = json_object_get(p, "link");
        for (size_t i = 0; i < json_array_size(ls); i++)
            if (strcmp(s(json_array_get(ls, i), "type"), "refer") == 0)
                *(k ? &g_surv : &g_old) =
                    s(json_object_get(json_array_get(ls, i), "other"), "reference");
    }
    cr_assert(g_old && g_surv, "both sources refer to a golden");
    cr_assert_str_eq(g_old, g_surv);
    json_decref(pats);
}

Test(e2e_map, failure_is_ae_errored_and_replayable, .init = up, .fini = down) {
    int fd = hub_test_dial(hub_test_mllp_port());
    hub_buf ack;
    hub_buf_init(&ack);
    /* A bad birth date: the strict row fails the message, naming PID-7. */
    cr_assert_str_eq(send_recv(fd, MSH("A01^ADT_A01", "F-1")
                                       "PID|1||MRN9^^^GENHOSP^MR||DOE^JOHN||19801340\r",
                               &ack),
                     "AE");
    cr_assert(strstr(ack.p, "ERR||PID^1^7^1|102^"), "%s", ack.p);
    cr_assert_null(strstr(ack.p, "19801340"), "no value in the ACK");
    /* An event with no table yet: AE 200 naming MSH-9. */
    cr_assert_str_eq(send_recv(fd, MSH("A24^ADT_A24", "F-2")
                                       "PID|1||MRN9^^^GENHOSP^MR||DOE^JOHN\r",
                               &ack),
                     "AE");
    cr_assert(strstr(ack.p, "ERR||MSH^1^9|200^"), "%s", ack.p);
    close(fd);
    hub_buf_release(&ack);
    json_t *pats = current("Patient", NULL);
    cr_assert_eq(json_array_size(pats), 0, "nothing applied");
    json_decref(pats);

    hub_buf out, err;
    hub_buf_init(&out);
    hub_buf_init(&err);
    const char *jl[] = {HUB_BIN, "journal", "--data", hub_test_current.dir, "--status",
                        "errored", NULL};
    cr_assert_eq(hub_test_run(jl, NULL, &out, &err), 0, "%s", err.p);
    cr_assert(strstr(out.p, "F-1") && strstr(out.p, "F-2"), "%s", out.p);
    hub_buf_release(&out);
    hub_buf_release(&err);

    /* The site adds a table for A24; replay applies it, F-1 still fails. */
    char site[256];
    hub_test_tmpdir(site);
    char path[400];
    snprintf(path, sizeof path, "%s/a24.map", site);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("@table ADT_A24\n@kind message\n@events ADT^A24\n"
          "PID | | Patient | patient | PID[Patient] | identifier! |\n", f);
    fclose(f);
    hub_buf_init(&out);
    hub_buf_init(&err);
    const char *rp[] = {HUB_BIN, "replay", "--data", hub_test_current.dir, "--status", "errored",
                        "--map-site", site, NULL};
    int rc = hub_test_run(rp, NULL, &out, &err);
    cr_assert_eq(rc, 1, "one still fails: %s %s", out.p, err.p);
    cr_assert(strstr(out.p, "processed") && strstr(out.p, "PID-7"), "%s", out.p);
    cr_assert(strstr(out.p, "1 processed, 1 failed"), "%s", out.p);
    hub_buf_release(&out);
    hub_buf_release(&err);
    pats = current("Patient", NULL);
    cr_assert_eq(json_array_size(pats), 1, "the replayed A24's Patient");
    json_decref(pats);
    /* and it has all its index rows: found by name, not only identifier */
    hub_buf sb;
    hub_buf_init(&sb);
    cr_assert_eq(hub_test_http(hub_test_http_port(), "GET",
                               "/fhir/Patient?family=DOE&_tag:not=https://hub.example.org/fhir/"
                               "CodeSystem/mpi%7Cgolden",
                               NULL, NULL, 0, &sb, NULL),
                 200);
    json_t *sr = json_loadb(sb.p, sb.n, 0, NULL);
    cr_assert_eq(json_integer_value(json_object_get(sr, "total")), 1, "%.*s", (int)sb.n, sb.p);
    json_decref(sr);
    hub_buf_release(&sb);
    hub_buf_init(&out);
    hub_buf_init(&err);
    const char *jp[] = {HUB_BIN, "journal", "--data", hub_test_current.dir, "--status",
                        "processed", NULL};
    cr_assert_eq(hub_test_run(jp, NULL, &out, &err), 0);
    cr_assert(strstr(out.p, "F-2") && !strstr(out.p, "F-1"), "%s", out.p);
    hub_buf_release(&out);
    hub_buf_release(&err);
    hub_test_rmtree(site);
}

Test(e2e_map, convert_prints_the_bundle_and_explains) {
    char dir[256];
    hub_test_tmpdir(dir);
    char path[400];
    snprintf(path, sizeof path, "%s/a01.hl7", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(MSH("A01^ADT_A01", "X-1") PID_DOE PV1_V1, f);
    fclose(f);
    hub_buf out, err;
    hub_buf_init(&out);
    hub_buf_init(&err);
    const char *cv[] = {HUB_BIN, "convert", "--validate", path, NULL};
    cr_assert_eq(hub_test_run(cv, NULL, &out, &err), 0, "%s", err.p);
    json_t *b = json_loadb(out.p, out.n, 0, NULL);
    cr_assert_not_null(b, "%s", out.p);
    cr_assert_str_eq(s(b, "type"), "transaction");
    cr_assert_geq(json_array_size(json_object_get(b, "entry")), 4);
    json_decref(b);
    hub_buf_release(&out);
    hub_buf_release(&err);
    hub_buf_init(&out);
    hub_buf_init(&err);
    const char *ex[] = {HUB_BIN, "convert", "--explain", path, NULL};
    cr_assert_eq(hub_test_run(ex, NULL, &out, &err), 0, "%s", err.p);
    cr_assert(strstr(out.p, "Patient(patient).birthDate <- PID-7  messages/ADT_A01.map:"), "%s", out.p);
    hub_buf_release(&out);
    hub_buf_release(&err);
    hub_test_rmtree(dir);
}
