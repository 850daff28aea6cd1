/* The patient index through a real `hub serve`: v2 ADT from two senders
 * and FHIR creates link to one golden Patient; $match scores candidates;
 * $merge and ADT^A40 merge persons; unlink re-evaluates; possible matches
 * wait in the review queue and are resolved over the API; every bad input
 * is an OperationOutcome with a 4xx. */
#include "fhir_test.h"
#include "hub_test.h"
#include "hub/mpi.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MSH(app, fac, ev, ctl)                                                        \
    "MSH|^~\\&|" app "|" fac "|HUB|HUB|20261125101500||ADT^" ev "|" ctl "|P|2.5.1\r"

/* The index is on by default: the configuration does not mention it
 * (`mpi_off` turns it off). */
static char g_tmp[256];
static void start(const char *conf) {
    hub_test_tmpdir(g_tmp);
    char cfgp[300];
    snprintf(cfgp, sizeof cfgp, "%s/hub.json", g_tmp);
    FILE *f = fopen(cfgp, "w");
    cr_assert_not_null(f);
    fputs(conf, f);
    fclose(f);
    static char cfgarg[300];
    snprintf(cfgarg, sizeof cfgarg, "%s", cfgp);
    const char *extra[] = {"--config", cfgarg, NULL};
    memset(&hub_test_current, 0, sizeof hub_test_current);
    hub_test_start(&hub_test_current, extra);
}
static void up(void) {
    start("{\"channels\": [{\"name\": \"adt\", \"port\": 0, \"validate\": false}]}");
}
static void mpi_off(void) {
    start("{\"channels\": [{\"name\": \"adt\", \"port\": 0, \"validate\": false}],"
          " \"mpi\": {\"enabled\": false}}");
}
static void down(void) {
    hub_test_down();
    hub_test_rmtree(g_tmp);
}

static void send_aa(const char *msg) {
    int fd = hub_test_dial(hub_test_mllp_port());
    hub_buf ack;
    hub_buf_init(&ack);
    cr_assert_eq(hub_test_send_frame(fd, msg), 0);
    cr_assert_eq(hub_test_read_frame(fd, &ack, 10000), 0, "an ACK arrives");
    cr_assert_str_eq(hub_test_ack_code(ack.p), "AA", "%s", ack.p);
    hub_buf_release(&ack);
    close(fd);
}

/* A person row names the golden its source is linked to (the candidate
 * read takes it there): after links, merges, unlinks and renumbers, no
 * person row disagrees with the link rows. */
static void persons_name_their_golden(void) {
    char path[400];
    snprintf(path, sizeof path, "%s/hub.db", hub_test_current.dir);
    sqlite3 *db;
    cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    const char *q = "SELECT (SELECT count(*) FROM mpi_person),"
                    " (SELECT count(*) FROM mpi_person p LEFT JOIN mpi_link l"
                    " ON l.source=p.source WHERE p.golden<>coalesce(l.golden, ''))";
    cr_assert_eq(sqlite3_prepare_v2(db, q, -1, &st, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    cr_expect_gt(sqlite3_column_int(st, 0), 0, "the index has persons");
    cr_expect_eq(sqlite3_column_int(st, 1), 0, "persons that disagree with their link");
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static const char *s(const json_t *o, const char *k) {
    const char *v = json_string_value(json_object_get(o, k));
    return v ? v : "";
}

/* GET path -> JSON (status asserted). */
static json_t *get_json(const char *path, int want) {
    ft_resp r;
    int st = ft_req(hub_test_http_port(), "GET", path, NULL, NULL, 0, &r);
    cr_assert_eq(st, want, "GET %s -> %d %s", path, st, r.body.p);
    json_t *j = ft_json(&r);
    ft_release(&r);
    return j;
}

static json_t *post_json(const char *path, const char *body, int want) {
    ft_resp r;
    int st = ft_req(hub_test_http_port(), "POST", path,
                    "Content-Type: application/fhir+json\r\n", body, strlen(body), &r);
    cr_assert_eq(st, want, "POST %s -> %d %s", path, st, r.body.p);
    json_t *j = ft_json(&r);
    ft_release(&r);
    return j;
}

/* POST expecting an OperationOutcome: its first expression. */
static void post_fails(const char *path, const char *body, int want, const char *expr) {
    ft_resp r;
    int st = ft_req(hub_test_http_port(), "POST", path,
                    "Content-Type: application/fhir+json\r\n", body, strlen(body), &r);
    cr_assert_eq(st, want, "POST %s -> %d %s", path, st, r.body.p);
    cr_assert(strstr(r.body.p, "OperationOutcome"), "%s", r.body.p);
    if (expr) cr_assert_str_eq(ft_issue(&r, "expression"), expr, "%s", r.body.p);
    ft_release(&r);
}

static bool is_golden(const json_t *p) {
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(json_object_get(p, "meta"), "tag"), i, t)
        if (!strcmp(s(t, "system"), HUB_MPI_TAG_SYSTEM) && !strcmp(s(t, "code"), "golden"))
            return true;
    return false;
}

/* The id of the one Patient with identifier sys|value. */
static void patient_by_ident(const char *sys, const char *val, char out[72]) {
    char path[300];
    snprintf(path, sizeof path, "/fhir/Patient?identifier=%s%%7C%s", sys, val);
    json_t *b = get_json(path, 200);
    json_t *e = json_object_get(b, "entry");
    int n = 0;
    size_t i;
    json_t *x;
    json_array_foreach(e, i, x) {
        json_t *r = json_object_get(x, "resource");
        if (is_golden(r)) continue; /* it carries its sources' identifiers */
        snprintf(out, 72, "%s", s(r, "id"));
        n++;
    }
    cr_assert_eq(n, 1, "one source Patient %s|%s", sys, val);
    json_decref(b);
}

static json_t *read_patient(const char *id) {
    char path[128];
    snprintf(path, sizeof path, "/fhir/Patient/%s", id);
    return get_json(path, 200);
}

/* The golden a source refers to ("" when none). */
static void golden_of(const char *id, char out[72]) {
    json_t *p = read_patient(id);
    out[0] = '\0';
    size_t i;
    json_t *l;
    int refer = 0;
    json_array_foreach(json_object_get(p, "link"), i, l) {
        if (strcmp(s(l, "type"), "refer")) continue;
        refer++;
        const char *ref = s(json_object_get(l, "other"), "reference");
        cr_assert(!strncmp(ref, "Patient/", 8));
        snprintf(out, 72, "%s", ref + 8);
    }
    cr_assert_leq(refer, 1, "one refer link at most");
    json_decref(p);
}

/* The seealso ids of a golden, sorted into one comma-separated string. */
static void seealso(const char *gid, char *out, size_t cap) {
    json_t *g = read_patient(gid);
    cr_assert(is_golden(g), "Patient/%s is a golden record", gid);
    const char *v[16];
    size_t n = 0, i;
    json_t *l;
    json_array_foreach(json_object_get(g, "link"), i, l) {
        if (strcmp(s(l, "type"), "seealso")) continue;
        if (n < 16) v[n++] = s(json_object_get(l, "other"), "reference") + 8;
    }
    for (size_t a = 1; a < n; a++)
        for (size_t b = a; b > 0 && strcmp(v[b - 1], v[b]) > 0; b--) {
            const char *t = v[b];
            v[b] = v[b - 1];
            v[b - 1] = t;
        }
    out[0] = '\0';
    for (size_t k = 0; k < n; k++) {
        strncat(out, v[k], cap - strlen(out) - 2);
        if (k + 1 < n) strncat(out, ",", cap - strlen(out) - 1);
    }
    json_decref(g);
}

static void sorted_pair(const char *a, const char *b, char *out, size_t cap) {
    if (strcmp(a, b) < 0)
        snprintf(out, cap, "%s,%s", a, b);
    else
        snprintf(out, cap, "%s,%s", b, a);
}

static void create(const char *body, char id[72]) {
    json_t *j = post_json("/fhir/Patient", body, 201);
    snprintf(id, 72, "%s", s(j, "id"));
    json_decref(j);
}

#define PAT_SMITH(sys, val, given, extra)                                                   \
    "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"" sys "\",\"value\":\"" val \
    "\"}],\"name\":[{\"family\":\"Smith\",\"given\":[\"" given "\"]}],\"gender\":\"male\","  \
    "\"birthDate\":\"1980-05-06\",\"telecom\":[{\"system\":\"phone\",\"value\":\"(217) "      \
    "555-0101\"}]" extra "}"

Test(e2e_mpi, two_senders_one_golden, .init = up, .fini = down) {
    send_aa(MSH("EHR", "GENHOSP", "A04^ADT_A01", "E-1")
            "PID|1||MRN1^^^GENHOSP&1.2.3&ISO^MR||SMITH^JOHN^Q||19800506|M|||"
            "12 Oak St^^Springfield^IL^62701||^PRN^PH^^^217^5550101\r");
    send_aa(MSH("LAB", "LABCO", "A04^ADT_A01", "L-1")
            "PID|1||L-77^^^LABCO&9.9.9&ISO^MR||SMITH^JON||19800506|M|||"
            "12 OAK STREET^^SPRINGFIELD^IL^62701||^PRN^PH^^^217^5550101\r");
    char a[72], b[72], ga[72], gb[72];
    patient_by_ident("urn:oid:1.2.3", "MRN1", a);
    patient_by_ident("urn:oid:9.9.9", "L-77", b);
    golden_of(a, ga);
    golden_of(b, gb);
    cr_assert(ga[0], "the EHR's Patient refers to a golden");
    cr_assert_str_eq(ga, gb, "one person, one golden");
    char links[200], want[200];
    seealso(ga, links, sizeof links);
    sorted_pair(a, b, want, sizeof want);
    cr_assert_str_eq(links, want);
    /* the golden carries every identifier */
    json_t *g = read_patient(ga);
    cr_assert_eq(json_array_size(json_object_get(g, "identifier")), 2);
    cr_assert_str_eq(s(g, "birthDate"), "1980-05-06");
    json_decref(g);
    /* a third message from the EHR (an update) keeps the link */
    send_aa(MSH("EHR", "GENHOSP", "A08^ADT_A01", "E-2")
            "PID|1||MRN1^^^GENHOSP&1.2.3&ISO^MR||SMITH^JOHN^Q||19800506|M|||"
            "14 Elm St^^Springfield^IL^62702||^PRN^PH^^^217^5550101\r");
    golden_of(a, ga);
    cr_assert_str_eq(ga, gb);
    /* the link says why */
    char path[160];
    snprintf(path, sizeof path, "/fhir/Patient/%s/$mpi-links", b);
    json_t *lk = get_json(path, 200);
    char *text = json_dumps(lk, 0);
    cr_assert(strstr(text, "\"score\""), "%s", text);
    cr_assert(strstr(text, "birthDate"), "per-field contributions: %s", text);
    free(text);
    json_decref(lk);
}

Test(e2e_mpi, fhir_creates_link_and_search_expands, .init = up, .fini = down) {
    char a[72], b[72], c[72], ga[72], gb[72], gc[72];
    create(PAT_SMITH("urn:sys:a", "1", "John", ""), a);
    create(PAT_SMITH("urn:sys:b", "2", "Johnny", ""), b);
    /* a different person: other name, other birth date */
    create("{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Jones\",\"given\":[\"Ann\"]}],"
           "\"gender\":\"female\",\"birthDate\":\"1955-01-02\"}",
           c);
    golden_of(a, ga);
    golden_of(b, gb);
    golden_of(c, gc);
    cr_assert_str_eq(ga, gb, "nickname, same birth date and phone: linked");
    cr_assert_str_neq(ga, gc, "a stranger has a golden of her own");
    /* the golden is not matched itself, and is not a source of anything */
    json_t *g = read_patient(ga);
    cr_assert(is_golden(g));
    json_decref(g);
    /* a second create of the same identifier (another system's copy with the
     * same identifier) links deterministically even with another name */
    char d[72], gd[72];
    create("{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:sys:a\",\"value\":\"1\"}],"
           "\"name\":[{\"family\":\"Smyth\",\"given\":[\"J\"]}]}",
           d);
    golden_of(d, gd);
    cr_assert_str_eq(gd, ga, "the same identifier is the same person");
    /* Observation?patient=<golden>: data of every source, when search
     * expands patients (hub_record_patient_ids) */
    char obs[400];
    for (int i = 0; i < 2; i++) {
        snprintf(obs, sizeof obs,
                 "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":"
                 "\"x\"},\"subject\":{\"reference\":\"Patient/%s\"}}",
                 i ? b : a);
        json_decref(post_json("/fhir/Observation", obs, 201));
    }
    char path[160];
    snprintf(path, sizeof path, "/fhir/Observation?patient=%s", ga);
    json_t *bundle = get_json(path, 200);
    cr_assert_eq(json_array_size(json_object_get(bundle, "entry")), 2,
                 "both sources' Observations through the golden");
    json_decref(bundle);
    snprintf(path, sizeof path, "/fhir/Patient/%s/Observation", ga);
    bundle = get_json(path, 200);
    cr_assert_eq(json_array_size(json_object_get(bundle, "entry")), 2, "the compartment too");
    json_decref(bundle);
    snprintf(path, sizeof path, "/fhir/Patient/%s/$everything", ga);
    bundle = get_json(path, 200);
    int nobs = 0;
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(bundle, "entry"), i, e) nobs +=
        !strcmp(s(json_object_get(e, "resource"), "resourceType"), "Observation");
    cr_assert_eq(nobs, 2, "$everything on the golden");
    json_decref(bundle);
    /* a source alone is only itself */
    snprintf(path, sizeof path, "/fhir/Observation?patient=%s", a);
    bundle = get_json(path, 200);
    cr_assert_eq(json_array_size(json_object_get(bundle, "entry")), 1);
    json_decref(bundle);
}

Test(e2e_mpi, match_scores_candidates, .init = up, .fini = down) {
    char a[72], ga[72];
    create(PAT_SMITH("urn:sys:a", "1", "John", ""), a);
    golden_of(a, ga);
    const char *q =
        "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"resource\",\"resource\":"
        "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"SMITH\",\"given\":[\"Jon\"]}],"
        "\"gender\":\"male\",\"birthDate\":\"1980-06-05\"}}]}";
    json_t *b = post_json("/fhir/Patient/$match", q, 200);
    cr_assert_str_eq(s(b, "type"), "searchset");
    json_t *e = json_array_get(json_object_get(b, "entry"), 0);
    cr_assert_not_null(e, "a candidate");
    cr_assert_str_eq(s(json_object_get(e, "resource"), "id"), ga, "the golden is the answer");
    json_t *search = json_object_get(e, "search");
    cr_assert_str_eq(s(search, "mode"), "match");
    double score = json_number_value(json_object_get(search, "score"));
    cr_assert(score > 0.0 && score <= 1.0, "score %f", score);
    const char *grade =
        s(json_array_get(json_object_get(search, "extension"), 0), "valueCode");
    cr_assert(!strcmp(grade, "probable") || !strcmp(grade, "possible"), "%s", grade);
    json_decref(b);
    /* by identifier: certain */
    const char *q2 =
        "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"resource\",\"resource\":"
        "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:sys:a\",\"value\":\"1\"}]}},"
        "{\"name\":\"onlyCertainMatches\",\"valueBoolean\":true}]}";
    b = post_json("/fhir/Patient/$match", q2, 200);
    e = json_array_get(json_object_get(b, "entry"), 0);
    cr_assert_str_eq(
        s(json_array_get(json_object_get(json_object_get(e, "search"), "extension"), 0),
          "valueCode"),
        "certain");
    json_decref(b);
    /* nobody like this */
    const char *q3 =
        "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"resource\",\"resource\":"
        "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Zylberstein\",\"given\":[\"Q\"]}],"
        "\"birthDate\":\"2001-01-01\"}}]}";
    b = post_json("/fhir/Patient/$match", q3, 200);
    cr_assert_eq(json_array_size(json_object_get(b, "entry")), 0);
    json_decref(b);
    /* bad input */
    post_fails("/fhir/Patient/$match", "{\"resourceType\":\"Parameters\"}", 400,
               "Parameters.parameter.where(name = 'resource')");
    post_fails("/fhir/Patient/$match", "{\"resourceType\":\"Patient\"}", 400, NULL);
    post_fails("/fhir/Patient/$match",
               "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"resource\","
               "\"resource\":{\"resourceType\":\"Patient\"}},{\"name\":\"count\","
               "\"valueInteger\":0}]}",
               400, "Parameters.parameter.where(name = 'count')");
}

Test(e2e_mpi, merge_and_bad_merges, .init = up, .fini = down) {
    char a[72], c[72], ga[72], gc[72];
    create(PAT_SMITH("urn:sys:a", "1", "John", ""), a);
    create("{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Jones\",\"given\":[\"Ann\"]}],"
           "\"gender\":\"female\",\"birthDate\":\"1955-01-02\"}",
           c);
    golden_of(a, ga);
    golden_of(c, gc);
    cr_assert_str_neq(ga, gc);
    char body[600];
    /* preview: nothing changes */
    snprintf(body, sizeof body,
             "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"source-patient\","
             "\"valueReference\":{\"reference\":\"Patient/%s\"}},{\"name\":\"target-patient\","
             "\"valueReference\":{\"reference\":\"Patient/%s\"}},{\"name\":\"preview\","
             "\"valueBoolean\":true}]}",
             c, a);
    json_decref(post_json("/fhir/Patient/$merge", body, 200));
    golden_of(c, gc);
    cr_assert_str_neq(ga, gc, "a preview changes nothing");
    snprintf(body, sizeof body,
             "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"source-patient\","
             "\"valueReference\":{\"reference\":\"Patient/%s\"}},{\"name\":\"target-patient\","
             "\"valueReference\":{\"reference\":\"Patient/%s\"}}]}",
             c, a);
    json_t *out = post_json("/fhir/Patient/$merge", body, 200);
    cr_assert_str_eq(s(out, "resourceType"), "Parameters");
    json_t *res = json_object_get(json_array_get(json_object_get(out, "parameter"), 2), "resource");
    cr_assert_str_eq(s(res, "id"), a, "the result is the target");
    json_decref(out);
    json_t *src = read_patient(c);
    cr_assert(json_is_false(json_object_get(src, "active")), "the source is inactive");
    json_decref(src);
    golden_of(c, gc);
    golden_of(a, ga);
    cr_assert_str_eq(gc, ga, "one person now");
    char links[200], want[200];
    seealso(ga, links, sizeof links);
    sorted_pair(a, c, want, sizeof want);
    cr_assert_str_eq(links, want);

    /* bad merges */
    post_fails("/fhir/Patient/$merge", "{\"resourceType\":\"Parameters\",\"parameter\":[]}", 400,
               "Parameters.parameter.where(name = 'source-patient')");
    snprintf(body, sizeof body,
             "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"source-patient\","
             "\"valueReference\":{\"reference\":\"Patient/%s\"}}]}",
             c);
    post_fails("/fhir/Patient/$merge", body, 400,
               "Parameters.parameter.where(name = 'target-patient')");
    snprintf(body, sizeof body,
             "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"source-patient\","
             "\"valueReference\":{\"reference\":\"Patient/nope\"}},{\"name\":\"target-patient\","
             "\"valueReference\":{\"reference\":\"Patient/%s\"}}]}",
             a);
    post_fails("/fhir/Patient/$merge", body, 404,
               "Parameters.parameter.where(name = 'source-patient')");
    snprintf(body, sizeof body,
             "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"source-patient\","
             "\"valueReference\":{\"reference\":\"Patient/%s\"}},{\"name\":\"target-patient\","
             "\"valueReference\":{\"reference\":\"Patient/%s\"}}]}",
             a, a);
    post_fails("/fhir/Patient/$merge", body, 400,
               "Parameters.parameter.where(name = 'target-patient')");
    post_fails("/fhir/Patient/$merge",
               "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"source-patient-"
               "identifier\",\"valueIdentifier\":{\"system\":\"urn:x\",\"value\":\"none\"}},"
               "{\"name\":\"target-patient\",\"valueReference\":{\"reference\":\"Patient/x\"}}]}",
               404, "Parameters.parameter.where(name = 'source-patient')");
    post_fails("/fhir/Patient/$merge", "{\"resourceType\":\"Patient\"}", 400, NULL);
    /* merging a golden is refused */
    snprintf(body, sizeof body,
             "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"source-patient\","
             "\"valueReference\":{\"reference\":\"Patient/%s\"}},{\"name\":\"target-patient\","
             "\"valueReference\":{\"reference\":\"Patient/%s\"}}]}",
             ga, a);
    post_fails("/fhir/Patient/$merge", body, 422,
               "Parameters.parameter.where(name = 'source-patient')");
    /* GET of a state-changing operation */
    ft_resp r;
    cr_assert_eq(ft_req(hub_test_http_port(), "GET", "/fhir/Patient/$merge", NULL, NULL, 0, &r),
                 405);
    ft_release(&r);
    persons_name_their_golden();
}

Test(e2e_mpi, a40_merges_persons, .init = up, .fini = down) {
    send_aa(MSH("EHR", "GENHOSP", "A04^ADT_A01", "M-1")
            "PID|1||OLD1^^^GENHOSP&1.2.3&ISO^MR||DOE^JANE||19700101|F\r");
    send_aa(MSH("EHR", "GENHOSP", "A04^ADT_A01", "M-2")
            "PID|1||NEW1^^^GENHOSP&1.2.3&ISO^MR||ROE^MARY||19900303|F\r");
    char o[72], n[72], go[72], gn[72];
    patient_by_ident("urn:oid:1.2.3", "OLD1", o);
    patient_by_ident("urn:oid:1.2.3", "NEW1", n);
    golden_of(o, go);
    golden_of(n, gn);
    cr_assert_str_neq(go, gn, "two persons before the merge");
    send_aa(MSH("EHR", "GENHOSP", "A40^ADT_A39", "M-3")
            "EVN|A40\rPID|1||NEW1^^^GENHOSP&1.2.3&ISO^MR||ROE^MARY||19900303|F\r"
            "MRG|OLD1^^^GENHOSP&1.2.3&ISO^MR\r");
    golden_of(o, go);
    golden_of(n, gn);
    cr_assert_str_eq(go, gn, "one person after the A40");
    json_t *old = read_patient(o);
    bool replaced = false;
    size_t i;
    json_t *l;
    json_array_foreach(json_object_get(old, "link"), i, l) replaced |=
        !strcmp(s(l, "type"), "replaced-by");
    cr_assert(replaced, "the mapping's replaced-by link is kept");
    json_decref(old);
    persons_name_their_golden();
}

Test(e2e_mpi, unlink_not_same_and_link, .init = up, .fini = down) {
    char a[72], b[72], ga[72], gb[72];
    create(PAT_SMITH("urn:sys:a", "1", "John", ""), a);
    create(PAT_SMITH("urn:sys:b", "2", "John", ""), b);
    golden_of(a, ga);
    golden_of(b, gb);
    cr_assert_str_eq(ga, gb);
    char path[160];
    snprintf(path, sizeof path, "/fhir/Patient/%s/$mpi-unlink", b);
    json_decref(post_json(path, "{\"resourceType\":\"Parameters\"}", 200));
    golden_of(b, gb);
    golden_of(a, ga);
    cr_assert(gb[0] && strcmp(ga, gb), "unlinked and re-evaluated: a golden of its own");
    char links[200];
    seealso(ga, links, sizeof links);
    cr_assert_str_eq(links, a);
    /* an update of b does not link it back */
    ft_resp r;
    json_t *pb = read_patient(b);
    json_object_set_new(pb, "active", json_true());
    char *txt = json_dumps(pb, 0);
    snprintf(path, sizeof path, "/fhir/Patient/%s", b);
    cr_assert_eq(ft_req(hub_test_http_port(), "PUT", path,
                        "Content-Type: application/fhir+json\r\n", txt, strlen(txt), &r),
                 200);
    ft_release(&r);
    free(txt);
    json_decref(pb);
    golden_of(b, gb);
    cr_assert_str_neq(ga, gb);
    /* link by hand */
    char body[300];
    snprintf(body, sizeof body,
             "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"other\","
             "\"valueReference\":{\"reference\":\"Patient/%s\"}}]}",
             ga);
    snprintf(path, sizeof path, "/fhir/Patient/%s/$mpi-link", b);
    json_decref(post_json(path, body, 200));
    golden_of(b, gb);
    cr_assert_str_eq(ga, gb, "linked by hand");
    /* not the same person: unlinked again */
    snprintf(body, sizeof body,
             "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"other\","
             "\"valueReference\":{\"reference\":\"Patient/%s\"}}]}",
             a);
    snprintf(path, sizeof path, "/fhir/Patient/%s/$mpi-not-same", b);
    json_decref(post_json(path, body, 200));
    golden_of(b, gb);
    cr_assert_str_neq(ga, gb);
    /* history */
    snprintf(path, sizeof path, "/fhir/Patient/%s/$mpi-links", b);
    json_t *h = get_json(path, 200);
    char *t = json_dumps(h, 0);
    cr_assert(strstr(t, "\"unlink\"") && strstr(t, "\"not-same\""), "%s", t);
    free(t);
    json_decref(h);
    /* bad input */
    snprintf(path, sizeof path, "/fhir/Patient/%s/$mpi-link", b);
    post_fails(path, "{\"resourceType\":\"Parameters\"}", 400,
               "Parameters.parameter.where(name = 'other')");
    snprintf(body, sizeof body,
             "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"other\","
             "\"valueReference\":{\"reference\":\"Patient/%s\"}}]}",
             a);
    post_fails(path, body, 422, "Parameters.parameter.where(name = 'other')");
    post_fails("/fhir/Patient/nope/$mpi-unlink", "{\"resourceType\":\"Parameters\"}", 404, NULL);
    json_decref(get_json("/fhir/Patient/nope/$mpi-links", 404));
    post_fails("/fhir/Patient/nope/$mpi-not-same",
               "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"other\","
               "\"valueString\":\"Observation/1\"}]}",
               400, "Parameters.parameter.where(name = 'other')");
    snprintf(path, sizeof path, "/fhir/Patient/%s/$mpi-unlink", ga);
    post_fails(path, "{\"resourceType\":\"Parameters\"}", 422, NULL);
    persons_name_their_golden();
}

/* A record declared not the same as more sources than the index keeps in
 * memory per match (8) is still kept from every one of them. */
Test(e2e_mpi, unlink_from_a_large_golden_stays_apart, .init = up, .fini = down) {
    char ids[10][72], g0[72], g[72];
    for (int i = 0; i < 10; i++) create(PAT_SMITH("urn:sys:big", "7", "John", ""), ids[i]);
    golden_of(ids[0], g0);
    for (int i = 1; i < 10; i++) {
        golden_of(ids[i], g);
        cr_assert_str_eq(g, g0, "one identifier, one person");
    }
    char path[160];
    snprintf(path, sizeof path, "/fhir/Patient/%s/$mpi-unlink", ids[9]);
    json_decref(post_json(path, "{\"resourceType\":\"Parameters\"}", 200));
    golden_of(ids[9], g);
    cr_assert(g[0] && strcmp(g, g0), "not linked back to any of the 9 others");
    for (int i = 0; i < 9; i++) {
        char gi[72];
        golden_of(ids[i], gi);
        cr_assert_str_eq(gi, g0);
    }
    persons_name_their_golden();
}

Test(e2e_mpi, review_queue, .init = up, .fini = down) {
    /* same name, same phone and address, another birth date: possible */
    char a[72], b[72], ga[72], gb[72];
    create(PAT_SMITH("urn:sys:a", "1", "John",
                     ",\"address\":[{\"line\":[\"12 Oak St\"],\"postalCode\":\"62701\"}]"),
           a);
    create("{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:sys:b\",\"value\":"
           "\"2\"}],\"name\":[{\"family\":\"Smith\",\"given\":[\"John\"]}],\"gender\":\"male\","
           "\"birthDate\":\"1975-11-20\",\"telecom\":[{\"system\":\"phone\",\"value\":\"217 555 "
           "0101\"}],\"address\":[{\"line\":[\"12 Oak St\"],\"postalCode\":\"62701\"}]}",
           b);
    golden_of(a, ga);
    golden_of(b, gb);
    cr_assert_str_neq(ga, gb, "a possible match is not linked");
    json_t *q = get_json("/fhir/Patient/$mpi-review", 200);
    json_t *item = json_array_get(json_object_get(q, "parameter"), 0);
    cr_assert_not_null(item, "one item in the queue");
    json_int_t id = json_integer_value(
        json_object_get(json_array_get(json_object_get(item, "part"), 0), "valueInteger"));
    json_decref(q);
    char body[300];
    snprintf(body, sizeof body,
             "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"item\",\"valueInteger\":"
             "%lld},{\"name\":\"decision\",\"valueCode\":\"same\"}]}",
             (long long)id);
    json_decref(post_json("/fhir/Patient/$mpi-review-resolve", body, 200));
    golden_of(a, ga);
    golden_of(b, gb);
    cr_assert_str_eq(ga, gb, "resolved as the same person: linked");
    q = get_json("/fhir/Patient/$mpi-review", 200);
    cr_assert_eq(json_array_size(json_object_get(q, "parameter")), 0, "the queue is empty");
    json_decref(q);
    /* resolving again: closed */
    post_fails("/fhir/Patient/$mpi-review-resolve", body, 409,
               "Parameters.parameter.where(name = 'item')");
    post_fails("/fhir/Patient/$mpi-review-resolve",
               "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"item\","
               "\"valueInteger\":999},{\"name\":\"decision\",\"valueCode\":\"same\"}]}",
               404, "Parameters.parameter.where(name = 'item')");
    post_fails("/fhir/Patient/$mpi-review-resolve",
               "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"item\","
               "\"valueInteger\":1},{\"name\":\"decision\",\"valueCode\":\"maybe\"}]}",
               400, "Parameters.parameter.where(name = 'decision')");
    persons_name_their_golden();
}

/* A request with headers and a body; the response's JSON (status
 * asserted) and its ETag into etag (may be NULL). */
static json_t *send_json(const char *method, const char *path, const char *hdrs,
                         const char *body, int want, char etag[32]) {
    ft_resp r;
    int st = ft_req(hub_test_http_port(), method, path, hdrs, body, strlen(body), &r);
    cr_assert_eq(st, want, "%s %s -> %d %s", method, path, st, r.body.p);
    if (etag) cr_assert_not_null(ft_header(&r, "ETag", etag, 32));
    json_t *j = ft_json(&r);
    ft_release(&r);
    return j;
}

/* The refer link of a Patient body ("" when none). */
static const char *refer_of(const json_t *p) {
    size_t i;
    json_t *l;
    json_array_foreach(json_object_get(p, "link"), i, l) if (!strcmp(s(l, "type"), "refer"))
        return s(json_object_get(l, "other"), "reference");
    return "";
}

static json_int_t history_total(const char *id) {
    char path[160];
    snprintf(path, sizeof path, "/fhir/Patient/%s/_history", id);
    json_t *h = get_json(path, 200);
    json_int_t n = json_integer_value(json_object_get(h, "total"));
    json_decref(h);
    return n;
}

/* The source is written once per client write, its refer link in it: a
 * create is version 1 (the client's If-Match W/"1" holds), an update or
 * a patch that drops the link gets it back in the one version it makes. */
Test(e2e_mpi, one_version_per_write_with_its_link, .init = up, .fini = down) {
    char etag[32];
    json_t *c = send_json("POST", "/fhir/Patient", "Content-Type: application/fhir+json\r\n",
                          PAT_SMITH("urn:sys:a", "1", "John", ""), 201, etag);
    cr_assert_str_eq(etag, "W/\"1\"");
    char id[72], golden[96];
    snprintf(id, sizeof id, "%s", s(c, "id"));
    snprintf(golden, sizeof golden, "%s", refer_of(c));
    cr_assert(!strncmp(golden, "Patient/", 8), "the create's answer has the link: %s", golden);
    json_decref(c);
    cr_assert_eq(history_total(id), 1, "one version");
    char gid[72];
    golden_of(id, gid);
    cr_assert_str_eq(gid, golden + 8);

    char path[160], body[600];
    snprintf(path, sizeof path, "/fhir/Patient/%s", id);
    snprintf(body, sizeof body,
             "{\"resourceType\":\"Patient\",\"id\":\"%s\",\"name\":[{\"family\":\"Smith\","
             "\"given\":[\"John\"]}],\"gender\":\"male\",\"birthDate\":\"1980-05-06\"}",
             id);
    json_t *u = send_json("PUT", path,
                          "Content-Type: application/fhir+json\r\nIf-Match: W/\"1\"\r\n", body,
                          200, etag);
    cr_assert_str_eq(etag, "W/\"2\"");
    cr_assert_str_eq(refer_of(u), golden, "an update without the link keeps it");
    json_decref(u);
    /* the same If-Match again is stale: the hub made no version of its own */
    send_json("PUT", path, "Content-Type: application/fhir+json\r\nIf-Match: W/\"1\"\r\n", body,
              412, NULL);
    json_t *pt = send_json("PATCH", path,
                           "Content-Type: application/json-patch+json\r\nIf-Match: W/\"2\"\r\n",
                           "[{\"op\":\"remove\",\"path\":\"/link\"}]", 200, etag);
    cr_assert_str_eq(etag, "W/\"3\"");
    cr_assert_str_eq(refer_of(pt), golden, "a patch that removes the link gets it back");
    json_decref(pt);
    cr_assert_eq(history_total(id), 3);
    char links[200];
    seealso(gid, links, sizeof links);
    cr_assert_str_eq(links, id, "the golden still names its one source");

    /* Through MLLP too: one version, linked. */
    send_aa(MSH("EHR", "GENHOSP", "A04^ADT_A01", "V-1")
            "PID|1||MRN5^^^GENHOSP&1.2.3&ISO^MR||DOE^JANE||19700101|F\r");
    char v2[72], gv2[72];
    patient_by_ident("urn:oid:1.2.3", "MRN5", v2);
    golden_of(v2, gv2);
    cr_assert(gv2[0], "the v2 Patient refers to its golden");
    cr_assert_eq(history_total(v2), 1, "one version");
}

/* A PUT that repeats a linked source as stored (without its link, as a
 * client that never saw it sends it) changes nothing the index reads: the
 * source keeps its golden and no version is written, for either record. */
Test(e2e_mpi, an_unchanged_update_keeps_its_link_and_writes_nothing, .init = up, .fini = down) {
    char etag[32];
    json_t *c = send_json("POST", "/fhir/Patient", "Content-Type: application/fhir+json\r\n",
                          PAT_SMITH("urn:sys:a", "7", "John", ""), 201, etag);
    char id[72], golden[96], gid[72];
    snprintf(id, sizeof id, "%s", s(c, "id"));
    snprintf(golden, sizeof golden, "%s", refer_of(c));
    json_decref(c);
    golden_of(id, gid);
    int golden_versions = history_total(gid);
    char path[160], body[600];
    snprintf(path, sizeof path, "/fhir/Patient/%s", id);
    snprintf(body, sizeof body,
             "{\"resourceType\":\"Patient\",\"id\":\"%s\",\"identifier\":[{\"system\":"
             "\"urn:sys:a\",\"value\":\"7\"}],\"name\":[{\"family\":\"Smith\",\"given\":"
             "[\"John\"]}],\"gender\":\"male\",\"birthDate\":\"1980-05-06\"}",
             id);
    json_t *u = send_json("PUT", path, "Content-Type: application/fhir+json\r\n", body, 200,
                          etag);
    cr_assert_str_eq(refer_of(u), golden);
    json_decref(u);
    for (int i = 0; i < 3; i++) {
        u = send_json("PUT", path, "Content-Type: application/fhir+json\r\n", body, 200, etag);
        cr_assert_str_eq(refer_of(u), golden, "the repeated update keeps the link");
        json_decref(u);
    }
    int v = history_total(id);
    cr_assert_eq(v, 2, "the first PUT is a change, its repeats write no version (%d)", v);
    char again[72];
    golden_of(id, again);
    cr_assert_str_eq(again, gid);
    cr_assert_leq(history_total(gid), golden_versions + 1, "the golden is not rewritten");
}

/* Plain searches find golden records too (as HAPI's MDM does: they are
 * Patients); `_tag:not` leaves them out. */
Test(e2e_mpi, searches_show_goldens_unless_tag_not, .init = up, .fini = down) {
    char a[72], ga[72];
    create(PAT_SMITH("urn:sys:a", "1", "John", ""), a);
    golden_of(a, ga);
    json_t *b = get_json("/fhir/Patient?family=smith", 200);
    cr_assert_eq(json_integer_value(json_object_get(b, "total")), 2, "the source and its golden");
    json_decref(b);
    b = get_json("/fhir/Patient?family=smith&_tag:not="
                 "https://hub.example.org/fhir/CodeSystem/mpi%7Cgolden", 200);
    cr_assert_eq(json_array_size(json_object_get(b, "entry")), 1);
    cr_assert_str_eq(s(json_object_get(json_array_get(json_object_get(b, "entry"), 0), "resource"),
                       "id"),
                     a);
    json_decref(b);
    b = get_json("/fhir/Patient?_tag=https://hub.example.org/fhir/CodeSystem/mpi%7Cgolden", 200);
    cr_assert_eq(json_array_size(json_object_get(b, "entry")), 1);
    cr_assert_str_eq(s(json_object_get(json_array_get(json_object_get(b, "entry"), 0), "resource"),
                       "id"),
                     ga);
    json_decref(b);
}

/* "mpi": {"enabled": false}: Patients are stored as sent, no golden, no
 * index operations. */
Test(e2e_mpi, off_when_disabled, .init = mpi_off, .fini = down) {
    char a[72];
    create(PAT_SMITH("urn:sys:a", "1", "John", ""), a);
    json_t *p = read_patient(a);
    cr_assert_null(json_object_get(p, "link"));
    json_decref(p);
    json_t *b = get_json("/fhir/Patient", 200);
    cr_assert_eq(json_array_size(json_object_get(b, "entry")), 1, "no golden");
    json_decref(b);
    ft_resp r;
    const char *q = "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"resource\","
                    "\"resource\":{\"resourceType\":\"Patient\"}}]}";
    int st = ft_req(hub_test_http_port(), "POST", "/fhir/Patient/$match",
                    "Content-Type: application/fhir+json\r\n", q, strlen(q), &r);
    cr_assert(st >= 400 && st < 500, "no $match: %d", st);
    ft_release(&r);
}

/* ADT^A47: the EHR renumbers a patient. The same Patient (no second one)
 * now carries the new number (the old one kept as `old`), stays linked to
 * its golden, and the next message with the new number updates it. */
Test(e2e_mpi, a47_renumbers_one_patient, .init = up, .fini = down) {
    send_aa(MSH("EHR", "GENHOSP", "A04^ADT_A01", "N-1")
            "PID|1||OLD7^^^GENHOSP&1.2.3&ISO^MR||DOE^JANE||19700101|F\r");
    char p[72], g[72];
    patient_by_ident("urn:oid:1.2.3", "OLD7", p);
    golden_of(p, g);
    send_aa(MSH("EHR", "GENHOSP", "A47^ADT_A30", "N-2")
            "EVN|A47\rPID|1||NEW7^^^GENHOSP&1.2.3&ISO^MR||DOE^JANE||19700101|F\r"
            "MRG|OLD7^^^GENHOSP&1.2.3&ISO^MR\r");
    char q[72], g2[72];
    patient_by_ident("urn:oid:1.2.3", "NEW7", q);
    cr_assert_str_eq(q, p, "the same Patient, renumbered");
    golden_of(q, g2);
    cr_assert_str_eq(g2, g, "still linked to its golden");
    send_aa(MSH("EHR", "GENHOSP", "A08^ADT_A01", "N-3")
            "PID|1||NEW7^^^GENHOSP&1.2.3&ISO^MR||DOE^JANET||19700101|F\r");
    json_t *pat = read_patient(p);
    cr_assert_str_eq(s(json_array_get(json_object_get(pat, "name"), 0), "family"), "DOE");
    json_t *given = json_object_get(json_array_get(json_object_get(pat, "name"), 0), "given");
    cr_assert_str_eq(json_string_value(json_array_get(given, 0)), "JANET", "the A08 updated it");
    json_decref(pat);
    json_t *b = get_json("/fhir/Patient?_tag:not=https://hub.example.org/fhir/CodeSystem/"
                         "mpi%7Cgolden", 200);
    cr_assert_eq(json_array_size(json_object_get(b, "entry")), 1, "one source Patient");
    json_decref(b);
    persons_name_their_golden();
}
