/* The patient index's parts: normalization, NYSIIS, Jaro-Winkler,
 * nicknames, comparators, weights, EM, blocking keys; then the index on a
 * real store: survivorship of the golden record, deterministic and
 * trusted-identifier links, sticky links, deletes, the patient-id
 * expansion, configuration errors. */
#include "record_test.h"
#include "hub/mpi.h"
#include "store_test.h"

#include <math.h>
#include <sqlite3.h>
#include <time.h>
#include <stdlib.h>

#define NICKS HUB_SOURCE_DIR "/conformance/mpi/nicknames.tsv"

static void feat(const char *json, hub_mpi_feat *f) {
    json_t *p = json_loads(json, 0, NULL);
    cr_assert_not_null(p);
    hub_mpi_feat_of(p, f);
    json_decref(p);
}

Test(mpi_compare, normalizes_names) {
    char out[48];
    hub_mpi_norm_name("O'Neil-Smith", out, sizeof out);
    cr_assert_str_eq(out, "oneilsmith");
    hub_mpi_norm_name("Jos\xc3\xa9 M\xc3\xbcller", out, sizeof out);
    cr_assert_str_eq(out, "josemuller");
    hub_mpi_norm_name(NULL, out, sizeof out);
    cr_assert_str_eq(out, "");
    hub_mpi_norm_name("abcdefgh", out, 4);
    cr_assert_str_eq(out, "abc");
}

Test(mpi_compare, nysiis_codes) {
    struct {
        const char *in, *want;
    } t[] = {{"smith", "snat"}, {"knight", "nagt"}, {"", ""}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        char out[16];
        hub_mpi_nysiis(t[i].in, out, sizeof out);
        cr_expect_str_eq(out, t[i].want, "%s", t[i].in);
    }
    /* the codes that matter: spellings of one name agree, others do not */
    const char *same[][2] = {{"smith", "smyth"},     {"johnson", "jonson"},
                             {"catherine", "katherine"}, {"schmidt", "schmid"},
                             {"philips", "phillips"}, {"macdonald", "mcdonald"}};
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        char a[16], b[16];
        hub_mpi_nysiis(same[i][0], a, sizeof a);
        hub_mpi_nysiis(same[i][1], b, sizeof b);
        cr_expect_str_eq(a, b, "%s %s", same[i][0], same[i][1]);
    }
    char a[16], b[16];
    hub_mpi_nysiis("smith", a, sizeof a);
    hub_mpi_nysiis("jones", b, sizeof b);
    cr_assert_str_neq(a, b);
    hub_mpi_nysiis("abcdefghijklmnopqrstuvwxyz", a, sizeof a);
    cr_assert_leq(strlen(a), 8, "at most 8 letters");
}

Test(mpi_compare, jaro_winkler_known_values) {
    cr_assert_float_eq(hub_mpi_jaro_winkler("martha", "marhta"), 0.9611, 1e-3);
    cr_assert_float_eq(hub_mpi_jaro_winkler("dwayne", "duane"), 0.84, 1e-3);
    cr_assert_float_eq(hub_mpi_jaro_winkler("dixon", "dicksonx"), 0.8133, 1e-3);
    cr_assert_float_eq(hub_mpi_jaro_winkler("abc", "abc"), 1.0, 1e-9);
    cr_assert_float_eq(hub_mpi_jaro_winkler("abc", "xyz"), 0.0, 1e-9);
    cr_assert_float_eq(hub_mpi_jaro_winkler("", ""), 1.0, 1e-9);
    cr_assert_float_eq(hub_mpi_jaro_winkler("a", ""), 0.0, 1e-9);
}

Test(mpi_compare, nicknames_from_the_table) {
    hub_err err;
    cr_assert(!hub_mpi_nickname("bill", "william"), "no table, no nicknames");
    cr_assert_eq(hub_mpi_nicknames_load(NICKS, &err), HUB_OK, "%s", err.msg);
    cr_assert(hub_mpi_nickname("bill", "william"));
    cr_assert(hub_mpi_nickname("william", "bill"));
    cr_assert(hub_mpi_nickname("bill", "will"), "two short forms of one name");
    cr_assert(hub_mpi_nickname("peggy", "margaret"));
    cr_assert(!hub_mpi_nickname("bill", "robert"));
    cr_assert(!hub_mpi_nickname("zzz", "william"));
    hub_mpi_nicknames_free();
    cr_assert_eq(hub_mpi_nicknames_load("/nonexistent/n.tsv", &err), HUB_E_IO);
}

Test(mpi_compare, features_and_their_text) {
    hub_mpi_feat f, g;
    feat("{\"name\":[{\"use\":\"maiden\",\"family\":\"Old\"},{\"use\":\"official\",\"family\":"
         "\"DOE\",\"given\":[\"Jane\",\"Q\"]}],\"birthDate\":\"1980-01-02\",\"gender\":\"female\","
         "\"address\":[{\"use\":\"old\",\"line\":[\"1 Old Rd\"]},{\"line\":[\"12  Oak St.\"],"
         "\"postalCode\":\"62701-1234\",\"city\":\"Springfield\"}],\"telecom\":[{\"system\":"
         "\"phone\",\"value\":\"+1 (217) 555-0101\"},{\"system\":\"email\",\"value\":"
         "\"Jane.Doe@Example.org\"}]}",
         &f);
    cr_assert_str_eq(f.family, "doe");
    cr_assert_str_eq(f.given, "jane");
    cr_assert_str_eq(f.middle, "q");
    cr_assert_str_eq(f.birth, "1980-01-02");
    cr_assert_eq(f.sex, 'f');
    cr_assert_str_eq(f.line, "12 oak st");
    cr_assert_str_eq(f.zip, "62701", "a ZIP+4 is its ZIP");
    cr_assert_str_eq(f.phone, "2175550101");
    cr_assert_str_eq(f.email, "jane.doe@example.org");
    char text[HUB_MPI_FEAT_TEXT];
    hub_mpi_feat_encode(&f, text);
    hub_mpi_feat_decode(text, &g);
    cr_assert_eq(memcmp(&f, &g, sizeof f), 0, "round trip");
    feat("{}", &f);
    hub_mpi_feat_encode(&f, text);
    hub_mpi_feat_decode(text, &g);
    cr_assert_eq(memcmp(&f, &g, sizeof f), 0);
}

#define P(fam, giv, bd, sex)                                                              \
    "{\"name\":[{\"family\":\"" fam "\",\"given\":[\"" giv "\"]}],\"birthDate\":\"" bd     \
    "\",\"gender\":\"" sex "\"}"

static void levels(const char *a, const char *b, int8_t lv[HUB_MPI__F_COUNT]) {
    hub_mpi_feat fa, fb;
    feat(a, &fa);
    feat(b, &fb);
    hub_mpi_compare(&fa, &fb, lv);
}

Test(mpi_compare, comparators) {
    hub_err err;
    cr_assert_eq(hub_mpi_nicknames_load(NICKS, &err), HUB_OK);
    int8_t lv[HUB_MPI__F_COUNT];
    levels(P("Smith", "William", "1980-05-06", "male"), P("SMITH", "Bill", "1980-06-05", "male"),
           lv);
    cr_assert_eq(lv[HUB_MPI_F_FAMILY], HUB_MPI_EXACT, "upper case");
    cr_assert_eq(lv[HUB_MPI_F_GIVEN], HUB_MPI_CLOSE, "nickname");
    cr_assert_eq(lv[HUB_MPI_F_BIRTH], HUB_MPI_CLOSE, "day/month swap");
    cr_assert_eq(lv[HUB_MPI_F_SEX], HUB_MPI_EXACT);
    cr_assert_eq(lv[HUB_MPI_F_PHONE], HUB_MPI_MISSING);
    levels(P("Smith", "W", "1980-05-06", "male"), P("Smyth", "William", "1981-05-06", "female"),
           lv);
    cr_assert_eq(lv[HUB_MPI_F_FAMILY], HUB_MPI_CLOSE, "phonetic");
    cr_assert_eq(lv[HUB_MPI_F_GIVEN], HUB_MPI_PARTIAL, "initial");
    cr_assert_eq(lv[HUB_MPI_F_BIRTH], HUB_MPI_CLOSE, "one digit");
    cr_assert_eq(lv[HUB_MPI_F_SEX], HUB_MPI_DIFF);
    levels(P("Smith", "John", "1980-05-06", "male"), P("John", "Smith", "1980-05-06", "male"), lv);
    cr_assert_eq(lv[HUB_MPI_F_FAMILY], HUB_MPI_CLOSE, "transposed");
    cr_assert_eq(lv[HUB_MPI_F_GIVEN], HUB_MPI_CLOSE, "transposed");
    levels(P("Smith", "John", "1980-05-06", "male"), P("Smith", "Mary", "1975-11-23", "female"),
           lv);
    cr_assert_eq(lv[HUB_MPI_F_GIVEN], HUB_MPI_DIFF);
    cr_assert_eq(lv[HUB_MPI_F_BIRTH], HUB_MPI_DIFF);
    levels(P("Smith", "John", "1980-05-06", "unknown"), P("Smith", "Jon", "1980-05-06", "male"),
           lv);
    cr_assert_eq(lv[HUB_MPI_F_SEX], HUB_MPI_MISSING, "unknown is missing, not a disagreement");
    cr_assert_eq(lv[HUB_MPI_F_GIVEN], HUB_MPI_CLOSE, "edit distance");
    levels("{\"address\":[{\"line\":[\"12 Oak St\"],\"postalCode\":\"62701\"}]}",
           "{\"address\":[{\"line\":[\"99 Elm Ave\"],\"postalCode\":\"62701\"}]}", lv);
    cr_assert_eq(lv[HUB_MPI_F_ADDRESS], HUB_MPI_PARTIAL, "same zip only");
    levels("{\"address\":[{\"line\":[\"12 Oak St\"],\"postalCode\":\"62701\"}]}",
           "{\"address\":[{\"line\":[\"12 OAK ST\"],\"postalCode\":\"62701\"}]}", lv);
    cr_assert_eq(lv[HUB_MPI_F_ADDRESS], HUB_MPI_EXACT);
    hub_mpi_nicknames_free();
}

Test(mpi_compare, weights_and_scores) {
    hub_mpi_weights w;
    hub_mpi_weights_default(&w);
    for (int f = 0; f < HUB_MPI__F_COUNT; f++) {
        cr_assert_gt(hub_mpi_weight(&w, (hub_mpi_field)f, HUB_MPI_EXACT), 0.0, "%d", f);
        cr_assert_lt(hub_mpi_weight(&w, (hub_mpi_field)f, HUB_MPI_DIFF), 0.0, "%d", f);
        cr_assert_eq(hub_mpi_weight(&w, (hub_mpi_field)f, HUB_MPI_MISSING), 0.0);
    }
    /* a level a field does not have falls back to the one below */
    cr_assert_eq(hub_mpi_weight(&w, HUB_MPI_F_SEX, HUB_MPI_CLOSE),
                 hub_mpi_weight(&w, HUB_MPI_F_SEX, HUB_MPI_DIFF));
    int8_t same[HUB_MPI__F_COUNT] = {3, 3, 3, 3, -1, -1, -1};
    int8_t twin[HUB_MPI__F_COUNT] = {3, 0, 3, 0, 3, 3, -1};
    double c[HUB_MPI__F_COUNT];
    double s = hub_mpi_score(&w, same, c);
    double sum = 0;
    for (int f = 0; f < HUB_MPI__F_COUNT; f++) sum += c[f];
    cr_assert_float_eq(s, sum, 1e-9, "contributions add up to the score");
    cr_assert_float_eq(c[HUB_MPI_F_BIRTH], log2(0.92 / 0.0005), 1e-9);
    cr_assert_gt(s, 15.0, "name, birth date and sex agree: linked at the default threshold");
    cr_assert_gt(hub_mpi_score(&w, twin, NULL), 10.0, "twins look alike (the veto handles them)");
}

/* EM: pairs drawn from known m and u come back near them. */
Test(mpi_compare, em_recovers_weights) {
    hub_mpi_weights truth, w;
    hub_mpi_weights_default(&truth);
    size_t n = 20000;
    int8_t(*v)[HUB_MPI__F_COUNT] = malloc(n * sizeof *v);
    unsigned seed = 7;
    for (size_t i = 0; i < n; i++) {
        bool match = i % 10 == 0; /* 10% matches */
        for (int f = 0; f < HUB_MPI__F_COUNT; f++) {
            const double *p = match ? truth.m[f] : truth.u[f];
            double r = (double)rand_r(&seed) / ((double)RAND_MAX + 1.0), acc = 0;
            int l = 0;
            for (; l < HUB_MPI__L_COUNT - 1; l++) {
                acc += p[l];
                if (r < acc) break;
            }
            v[i][f] = (int8_t)l;
        }
    }
    /* start from flat guesses */
    hub_mpi_weights_default(&w);
    for (int f = 0; f < HUB_MPI__F_COUNT; f++)
        for (int l = 0; l < HUB_MPI__L_COUNT; l++) {
            if (w.m[f][l] <= 0 && w.u[f][l] <= 0) continue;
            w.m[f][l] = l == HUB_MPI_EXACT ? 0.7 : 0.1;
            w.u[f][l] = l == HUB_MPI_DIFF ? 0.7 : 0.1;
        }
    double p = 0.3;
    hub_mpi_em((const int8_t(*)[HUB_MPI__F_COUNT])v, n, 200, &w, &p);
    free(v);
    cr_assert_float_eq(p, 0.1, 0.01, "match share %f", p);
    for (int f = 0; f < HUB_MPI__F_COUNT; f++) {
        cr_expect_float_eq(w.m[f][HUB_MPI_EXACT], truth.m[f][HUB_MPI_EXACT], 0.05, "m %s %f",
                           hub_mpi_field_name((hub_mpi_field)f), w.m[f][HUB_MPI_EXACT]);
        cr_expect_float_eq(w.u[f][HUB_MPI_EXACT], truth.u[f][HUB_MPI_EXACT], 0.03, "u %s",
                           hub_mpi_field_name((hub_mpi_field)f));
    }
}

/* A record made of a few values per field, so that random pairs agree,
 * nearly agree and disagree in every way the comparators know. */
static void random_feat(uint64_t *r, hub_mpi_feat *f) {
    static const char *const FAM[] = {"smith", "smyth", "jones", "smithjones", "lee", "", "garcia"};
    static const char *const GIV[] = {"robert", "bob", "rob", "r", "john", "jon", "", "smith"};
    static const char *const BIRTH[] = {"1980-05-06", "1980-06-05", "1980-05-07", "1981-05-06",
                                        "", "1980-5-6x", "0999-01-01", "1980-13-01"};
    static const char *const LINE[] = {"12 main st", "12 main str", "9 oak ave", ""};
    static const char *const ZIP[] = {"33333", "44444", ""};
    static const char *const PHONE[] = {"5551112222", "5553334444", ""};
    static const char *const EMAIL[] = {"a@x.org", "b@y.org", ""};
    static const char SEX[] = {'m', 'f', 'o', 0};
    memset(f, 0, sizeof *f);
    *r = *r * 6364136223846793005ull + 1442695040888963407ull;
    size_t k = (size_t)(*r >> 33);
    snprintf(f->family, sizeof f->family, "%s", FAM[k % 7]);
    snprintf(f->given, sizeof f->given, "%s", GIV[(k >> 3) % 8]);
    snprintf(f->middle, sizeof f->middle, "%s", (k >> 6) % 3 == 0 ? "john" : "");
    snprintf(f->birth, sizeof f->birth, "%s", BIRTH[(k >> 8) % 8]);
    f->sex = SEX[(k >> 11) % 4];
    snprintf(f->line, sizeof f->line, "%s", LINE[(k >> 13) % 4]);
    snprintf(f->zip, sizeof f->zip, "%s", ZIP[(k >> 15) % 3]);
    snprintf(f->phone, sizeof f->phone, "%s", PHONE[(k >> 17) % 3]);
    snprintf(f->email, sizeof f->email, "%s", EMAIL[(k >> 19) % 3]);
    hub_mpi_nysiis(f->family, f->family_ph, sizeof f->family_ph);
    hub_mpi_nysiis(f->given, f->given_ph, sizeof f->given_ph);
}

/* The fingerprint's bound is never below the score it bounds (else a
 * candidate that matters would go unread), and it is tight enough to
 * rule pairs out. */
Test(mpi_compare, fingerprint_bounds_every_score) {
    cr_assert_eq(hub_mpi_nicknames_load(NICKS, NULL), HUB_OK);
    hub_mpi_weights w;
    hub_mpi_weights_default(&w);
    uint64_t r = 7;
    int ruled_out = 0;
    for (int i = 0; i < 200000; i++) {
        hub_mpi_feat a, b;
        random_feat(&r, &a);
        random_feat(&r, &b);
        uint64_t fp = hub_mpi_fingerprint(&b, "X^ONE");
        cr_assert_neq(fp, 0);
        int8_t lv[HUB_MPI__F_COUNT];
        hub_mpi_compare(&a, &b, lv);
        double score = hub_mpi_score(&w, lv, NULL), bound = hub_mpi_bound(&w, &a, fp);
        cr_assert_geq(bound, score, "%s %s %s / %s %s %s", a.family, a.given, a.birth, b.family,
                      b.given, b.birth);
        ruled_out += bound < 10.0;
    }
    cr_assert_gt(ruled_out, 20000, "%d", ruled_out);
    cr_assert_eq(hub_mpi_bound(&w, &(hub_mpi_feat){0}, 0), INFINITY, "no fingerprint: no bound");
    hub_mpi_nicknames_free();
}

Test(mpi_compare, fingerprint_knows_its_sender) {
    hub_mpi_feat f;
    feat(P("Smith", "John", "1980-05-06", "male"), &f);
    uint64_t fp = hub_mpi_fingerprint(&f, "X^ONE");
    cr_assert(hub_mpi_fingerprint_sender(fp, "X^ONE"));
    cr_assert_not(hub_mpi_fingerprint_sender(fp, "Y^TWO"));
    cr_assert_not(hub_mpi_fingerprint_sender(fp, ""), "no sender: no conflict to look for");
    cr_assert(hub_mpi_fingerprint_sender(0, "Y^TWO"), "no fingerprint: may be anyone's");
}

Test(mpi_compare, blocking_keys) {
    hub_mpi_feat f, g;
    char k1[8][96], k2[8][96];
    feat(P("Smith", "John", "1980-05-06", "male"), &f);
    feat(P("Smyth", "Jon", "1980-06-05", "male"), &g);
    size_t n1 = hub_mpi_block_keys(&f, k1, 8), n2 = hub_mpi_block_keys(&g, k2, 8);
    cr_assert_gt(n1, 2);
    int shared = 0;
    for (size_t i = 0; i < n1; i++)
        for (size_t j = 0; j < n2; j++) shared += !strcmp(k1[i], k2[j]);
    cr_assert_gt(shared, 0, "a typo, a nickname and a day/month swap still share a block");
    /* transposed names share the pair key */
    feat(P("John", "Smith", "1999-01-01", "male"), &g);
    n2 = hub_mpi_block_keys(&g, k2, 8);
    shared = 0;
    for (size_t i = 0; i < n1; i++)
        for (size_t j = 0; j < n2; j++) shared += !strcmp(k1[i], k2[j]);
    cr_assert_gt(shared, 0);
    /* nothing known, no keys; the cap holds */
    feat("{}", &g);
    cr_assert_eq(hub_mpi_block_keys(&g, k2, 8), 0);
    cr_assert_eq(hub_mpi_block_keys(&f, k2, 1), 1);
}

/* ---- the index on a store ---------------------------------------------------------- */

static hub_mpi *g_mpi;

static void up_conf(const char *conf) {
    rt_up_bare();
    hub_err err;
    json_t *c = conf ? json_loads(conf, 0, NULL) : NULL;
    hub_mpi_cfg mc = {.record = rt_rec, .conf = c, .nicknames = NICKS};
    cr_assert_eq(hub_mpi_open(&mc, &g_mpi, &err), HUB_OK, "%s", err.msg);
    json_decref(c);
}
static void up(void) {
    up_conf("{\"trusted_sources\": [\"EHR^GENHOSP\"]}");
}
static void down(void) {
    hub_store_close(rt_store);
    rt_store = NULL;
    hub_mpi_close(g_mpi);
    hub_record_close(rt_rec);
    hub_fhir_defs_free(rt_defs);
    hub_test_rmtree(rt_dir);
}

static void put(const char *id, const char *json, const char *sender) {
    json_t *res = rt_json(json);
    json_object_set_new(res, "resourceType", json_string("Patient"));
    json_object_set_new(res, "id", json_string(id));
    hub_actor a = {.channel = "adt", .sender = sender};
    hub_record_op op = {.kind = HUB_OP_UPDATE, .type = "Patient", .id = id, .resource = res,
                        .actor = &a};
    int st = rt_apply1(&op);
    cr_assert(st == 200 || st == 201, "PUT %s -> %d", id, st);
    hub_record_op_release(&op);
    json_decref(res);
}

static json_t *get(const char *id) {
    hub_resource r;
    hub_err err;
    cr_assert_eq(hub_record_read(rt_rec, "Patient", id, 0, &r, &err), HUB_OK, "%s", id);
    json_t *j = r.json ? json_loads(r.json, 0, NULL) : NULL;
    hub_resource_release(&r);
    return j;
}

static void golden(const char *id, char out[72]) {
    json_t *p = get(id);
    out[0] = '\0';
    size_t i;
    json_t *l;
    json_array_foreach(json_object_get(p, "link"), i, l) {
        const char *t = json_string_value(json_object_get(l, "type"));
        const char *r = json_string_value(json_object_get(json_object_get(l, "other"), "reference"));
        if (t && !strcmp(t, "refer")) snprintf(out, 72, "%s", r + 8);
    }
    json_decref(p);
}

Test(mpi_index, survivorship, .init = up, .fini = down) {
    /* the trusted EHR's name wins although the lab wrote later; the lab's
     * newer address wins (most recent); every identifier is kept */
    put("ehr1",
        "{\"identifier\":[{\"system\":\"urn:ehr\",\"value\":\"1\"}],\"name\":[{\"family\":\"Smith\","
        "\"given\":[\"William\",\"James\"]}],\"birthDate\":\"1980-05-06\",\"gender\":\"male\","
        "\"address\":[{\"line\":[\"1 Old Rd\"],\"postalCode\":\"11111\"}],\"telecom\":[{\"system\":"
        "\"phone\",\"value\":\"2175550101\"}]}",
        "EHR^GENHOSP");
    put("lab1",
        "{\"identifier\":[{\"system\":\"urn:lab\",\"value\":\"L9\"}],\"name\":[{\"family\":\"SMITH\","
        "\"given\":[\"Bill\"]}],\"birthDate\":\"1980-05-06\",\"gender\":\"male\",\"address\":[{"
        "\"line\":[\"9 New St\"],\"postalCode\":\"22222\"}],\"telecom\":[{\"system\":\"phone\","
        "\"value\":\"2175550101\"}]}",
        "LAB^LABCO");
    char g1[72], g2[72];
    golden("ehr1", g1);
    golden("lab1", g2);
    cr_assert(g1[0]);
    cr_assert_str_eq(g1, g2);
    json_t *g = get(g1);
    json_t *tag = json_array_get(json_object_get(json_object_get(g, "meta"), "tag"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(tag, "system")), HUB_MPI_TAG_SYSTEM);
    cr_assert_str_eq(json_string_value(json_object_get(tag, "code")), "golden");
    cr_assert_eq(json_array_size(json_object_get(g, "identifier")), 2);
    json_t *name = json_array_get(json_object_get(g, "name"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(name, "family")), "Smith", "trusted");
    json_t *addr = json_array_get(json_object_get(g, "address"), 0);
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(addr, "line"), 0)),
                     "1 Old Rd", "the trusted source wins every element");
    cr_assert_eq(json_array_size(json_object_get(g, "telecom")), 1, "telecom deduplicated");
    cr_assert_eq(json_array_size(json_object_get(g, "link")), 2, "seealso both");
    json_decref(g);

    /* patient-id expansion */
    hub_arena a;
    hub_arena_init(&a, 1024);
    const char **ids;
    size_t n;
    hub_err err;
    cr_assert_eq(hub_record_patient_ids(rt_rec, g1, &a, &ids, &n, &err), HUB_OK);
    cr_assert_eq(n, 3, "the golden and its two sources");
    cr_assert_str_eq(ids[0], g1);
    cr_assert_eq(hub_record_patient_ids(rt_rec, "ehr1", &a, &ids, &n, &err), HUB_OK);
    cr_assert_eq(n, 1, "a source is only itself");
    hub_arena_release(&a);

    /* deleting a source: the golden loses it */
    hub_record_op del = {.kind = HUB_OP_DELETE, .type = "Patient", .id = "lab1"};
    cr_assert_eq(rt_apply1(&del), 204);
    hub_record_op_release(&del);
    g = get(g1);
    cr_assert_eq(json_array_size(json_object_get(g, "link")), 1);
    cr_assert_eq(json_array_size(json_object_get(g, "identifier")), 1);
    json_decref(g);
}

Test(mpi_index, most_recent_without_trust, .init = up, .fini = down) {
    put("a", "{\"name\":[{\"family\":\"Doe\",\"given\":[\"Jane\"]}],\"birthDate\":\"1970-01-01\","
             "\"gender\":\"female\",\"address\":[{\"line\":[\"1 A St\"]}],\"telecom\":[{\"system\":"
             "\"phone\",\"value\":\"5550000001\"}]}",
        "X^ONE");
    /* no pause: two writes in one millisecond tie on lastUpdated, and the
     * one being written is the newer */
    put("b", "{\"name\":[{\"family\":\"Doe\",\"given\":[\"Jane\"]}],\"birthDate\":\"1970-01-01\","
             "\"gender\":\"female\",\"address\":[{\"line\":[\"2 B St\"]}],\"telecom\":[{\"system\":"
             "\"phone\",\"value\":\"5550000001\"}]}",
        "Y^TWO");
    char ga[72], gb[72];
    golden("a", ga);
    golden("b", gb);
    cr_assert_str_eq(ga, gb);
    json_t *g = get(ga);
    json_t *addr = json_array_get(json_object_get(g, "address"), 0);
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(addr, "line"), 0)), "2 B St",
                     "the most recent address");
    json_decref(g);
}

Test(mpi_index, trusted_identifier_links_across_sources, .init = up, .fini = down) {
    put("a", "{\"identifier\":[{\"system\":\"urn:one\",\"value\":\"1\"},{\"type\":{\"coding\":[{"
             "\"code\":\"SS\"}]},\"system\":\"urn:ssa\",\"value\":\"123-45-6789\"}],\"name\":[{"
             "\"family\":\"Alpha\"}]}",
        "X^ONE");
    put("b", "{\"identifier\":[{\"system\":\"http://hl7.org/fhir/sid/us-ssn\",\"value\":"
             "\"123456789\"}],\"name\":[{\"family\":\"Beta\"}]}",
        "Y^TWO");
    put("c", "{\"name\":[{\"family\":\"Alpha\"}]}", "Z^THREE");
    char ga[72], gb[72], gc[72];
    golden("a", ga);
    golden("b", gb);
    golden("c", gc);
    cr_assert_str_eq(ga, gb, "the SSN, whatever the names");
    cr_assert_str_neq(ga, gc, "a surname alone links nothing");
}

Test(mpi_index, same_sender_twins_are_not_linked, .init = up, .fini = down) {
    /* twins: same surname, birth date, address and phone; other given names */
    const char *tw = "\"birthDate\":\"2001-02-03\",\"gender\":\"male\",\"address\":[{\"line\":"
                     "[\"5 Pine St\"],\"postalCode\":\"33333\"}],\"telecom\":[{\"system\":\"phone\","
                     "\"value\":\"5551112222\"}]}";
    char a[400], b[400];
    snprintf(a, sizeof a, "{\"name\":[{\"family\":\"Lee\",\"given\":[\"Adam\"]}],%s", tw);
    snprintf(b, sizeof b, "{\"name\":[{\"family\":\"Lee\",\"given\":[\"Brian\"]}],%s", tw);
    put("t1", a, "X^ONE");
    put("t2", b, "Y^TWO");
    char g1[72], g2[72];
    golden("t1", g1);
    golden("t2", g2);
    cr_assert_str_neq(g1, g2, "twins stay two persons");
    /* and a record of the same person from the same sender under another
     * number is reviewed, not linked */
    put("t3", a, "X^ONE");
    char g3[72];
    golden("t3", g3);
    cr_assert_str_neq(g1, g3);
}

/* A source from the record's own sender vetoes the link to its person even
 * when it scores too little to be read (its fingerprint rules it out): the
 * person's other source, from another sender, matches the record fully. */
Test(mpi_index, a_weak_source_of_the_same_sender_still_vetoes, .init = up, .fini = down) {
    put("a1", P("Smith", "John", "1980-05-06", "male"), "X^ONE");
    put("b1", P("Smith", "John", "1980-05-06", "male"), "Y^TWO");
    char ga[72], gb[72];
    golden("a1", ga);
    golden("b1", gb);
    cr_assert_str_eq(ga, gb);
    /* a1 now says another name and date: still in the surname+year block,
     * far below the review threshold against c1, and still linked (its
     * golden has another source) */
    put("a1", P("Smith", "Adam", "1980-11-22", "male"), "X^ONE");
    golden("a1", ga);
    cr_assert_str_eq(ga, gb, "the link is sticky");
    put("c1", P("Smith", "John", "1980-05-06", "male"), "X^ONE");
    char gc[72];
    golden("c1", gc);
    cr_assert_str_neq(gc, gb, "X^ONE has this person as a1 already: not linked");
}

/* More candidate persons than are kept (16): the best stay, not the first
 * seen. The person is the oldest row of a crowded surname+year block, so
 * twenty newer strangers come before it in the candidates' order. */
Test(mpi_index, the_best_candidates_stay_when_a_block_is_crowded, .init = up, .fini = down) {
    put("a", P("Smith", "John", "1980-05-06", "male"), "X^ONE");
    static const char *const GIVEN[] = {"Adam", "Brian", "Carl", "Dave", "Evan", "Frank", "Gary",
                                        "Henry", "Ivan", "Jack", "Karl", "Leo", "Mark", "Neil",
                                        "Oscar", "Paul", "Quinn", "Ray", "Sam", "Tom"};
    for (int i = 0; i < 20; i++) {
        char id[8], bd[16], body[300];
        snprintf(id, sizeof id, "z%02d", i);
        snprintf(bd, sizeof bd, "1980-%02d-%02d", 1 + i % 12, 10 + i);
        snprintf(body, sizeof body, P("Smith", "%s", "%s", "male"), GIVEN[i], bd);
        put(id, body, "X^ONE");
    }
    char g0[72], g19[72];
    golden("z00", g0);
    golden("z19", g19);
    cr_assert_str_neq(g0, g19, "the strangers are persons of their own");
    put("b", P("Smith", "John", "1980-05-06", "male"), "Y^TWO");
    char ga[72], gb[72];
    golden("a", ga);
    golden("b", gb);
    cr_assert_str_eq(ga, gb, "found behind twenty strangers, and linked");
}

Test(mpi_index, update_keeps_link_and_refreshes_golden, .init = up, .fini = down) {
    put("a", P("Kim", "Sun", "1990-09-09", "female"), "X^ONE");
    put("b", P("Kim", "Sun", "1990-09-09", "female"), "Y^TWO");
    char ga[72], gb[72];
    golden("a", ga);
    golden("b", gb);
    cr_assert_str_eq(ga, gb);
    put("b", "{\"name\":[{\"family\":\"Park\",\"given\":[\"Sun\"]}],\"birthDate\":\"1990-09-09\","
             "\"gender\":\"female\"}",
        "Y^TWO");
    golden("b", gb);
    cr_assert_str_eq(ga, gb, "links are sticky once shared");
    /* a lone record re-matched: first it has only a name, then its person */
    put("c", "{\"name\":[{\"family\":\"Kim\",\"given\":[\"Sun\"]}]}", "Z^THREE");
    char gc[72];
    golden("c", gc);
    cr_assert_str_neq(gc, ga);
    put("c", P("Kim", "Sun", "1990-09-09", "female"), "Z^THREE");
    golden("c", gc);
    cr_assert_str_eq(gc, ga, "alone in its golden: matched again on update");
    json_t *old = NULL;
    (void)old;
}

Test(mpi_index, bad_configuration) {
    rt_up_bare();
    const char *bad[] = {"[]", "{\"auto_link\": \"x\"}", "{\"review\": 30, \"auto_link\": 10}",
                         "{\"trusted_types\": \"SS\"}", "{\"trusted_types\": [1]}",
                         "{\"weights\": {\"shoe\": {}}}",
                         "{\"weights\": {\"family\": {\"m\": [1, 2]}}}",
                         "{\"weights\": {\"family\": {\"m\": [0.1, 0.1, 0.1, 2]}}}",
                         "{\"block_limit\": 0}", "{\"source_links\": 1}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *c = json_loads(bad[i], 0, NULL);
        cr_assert_not_null(c, "%s", bad[i]);
        hub_mpi_cfg mc = {.record = rt_rec, .conf = c};
        hub_mpi *m = NULL;
        hub_err err;
        hub_err_clear(&err);
        cr_expect_eq(hub_mpi_open(&mc, &m, &err), HUB_E_CONFIG, "%s", bad[i]);
        cr_expect_null(m);
        json_decref(c);
    }
    hub_mpi_cfg mc = {.record = rt_rec, .conf = NULL, .nicknames = "/nonexistent"};
    hub_mpi *m = NULL;
    hub_err err;
    cr_assert_eq(hub_mpi_open(&mc, &m, &err), HUB_E_IO);
    rt_down();
}

/* ---- blocking rows on the store ------------------------------------------------------ */

/* One writer job on the test's store, run to its commit. */
static hub_status in_job(hub_test_job_fn body, void *arg) {
    return hub_test_in_job(rt_store, body, arg);
}

typedef struct {
    const char *source;
    const char *keys[4];
    size_t n;
    char found[8][72]; /* block_find's answer */
    size_t nfound;
    uint64_t fp; /* the fingerprint set_keys writes */
} blocks_arg;

static hub_status set_keys(hub_store_tx *tx, void *ud, hub_err *err) {
    blocks_arg *b = ud;
    char keys[4][96];
    for (size_t i = 0; i < b->n; i++) snprintf(keys[i], 96, "%s", b->keys[i]);
    return hub_mpi_st_person_put(tx, b->source, "", "", b->fp, keys, b->n, 1, err);
}

static hub_status found_add(void *ud, const char *id, uint64_t fp) {
    (void)fp;
    blocks_arg *b = ud;
    if (b->nfound < 8) snprintf(b->found[b->nfound++], 72, "%s", id);
    return HUB_OK;
}

static hub_status find_key(hub_store_tx *tx, void *ud, hub_err *err) {
    blocks_arg *b = ud;
    b->nfound = 0;
    return hub_mpi_st_block_find(tx, b->keys[0], 8, found_add, b, err);
}

static size_t sources_of(const char *key, blocks_arg *out) {
    *out = (blocks_arg){.keys = {key}};
    cr_assert_eq(in_job(find_key, out), HUB_OK);
    return out->nfound;
}

/* An update keeps the rows of the keys it keeps (their place among a key's
 * newest stays), deletes the lost ones, adds the new ones once. */
Test(mpi_store, blocks_set_writes_only_what_changed, .init = up, .fini = down) {
    blocks_arg a = {.source = "s1", .keys = {"k|a", "k|b", "k|c"}, .n = 3};
    cr_assert_eq(in_job(set_keys, &a), HUB_OK);
    struct timespec ms5 = {0, 5000000};
    nanosleep(&ms5, NULL);
    blocks_arg b = {.source = "s0", .keys = {"k|b"}, .n = 1};
    cr_assert_eq(in_job(set_keys, &b), HUB_OK);
    nanosleep(&ms5, NULL);
    blocks_arg a2 = {.source = "s1", .keys = {"k|b", "k|c", "k|d", "k|d"}, .n = 4};
    cr_assert_eq(in_job(set_keys, &a2), HUB_OK);
    blocks_arg f;
    cr_assert_eq(sources_of("k|a", &f), 0, "a lost key is gone");
    cr_assert_eq(sources_of("k|d", &f), 1, "a new key, once");
    cr_assert_eq(sources_of("k|b", &f), 2);
    cr_assert_str_eq(f.found[0], "s0", "s1 kept its older row: s0 is newest");
    cr_assert_str_eq(f.found[1], "s1");
    blocks_arg none = {.source = "s1", .n = 0};
    cr_assert_eq(in_job(set_keys, &none), HUB_OK);
    cr_assert_eq(sources_of("k|c", &f), 0, "no keys left");
    cr_assert_eq(sources_of("k|b", &f), 1);
}

static hub_status del_person(hub_store_tx *tx, void *ud, hub_err *err) {
    return hub_mpi_st_person_del(tx, ((blocks_arg *)ud)->source, err);
}

/* A person's key rows leave with it. */
Test(mpi_store, person_del_drops_its_key_rows, .init = up, .fini = down) {
    blocks_arg a = {.source = "s1", .keys = {"k|a", "k|b"}, .n = 2};
    cr_assert_eq(in_job(set_keys, &a), HUB_OK);
    blocks_arg b = {.source = "s2", .keys = {"k|b"}, .n = 1};
    cr_assert_eq(in_job(set_keys, &b), HUB_OK);
    cr_assert_eq(in_job(del_person, &a), HUB_OK);
    blocks_arg f;
    cr_assert_eq(sources_of("k|a", &f), 0);
    cr_assert_eq(sources_of("k|b", &f), 1);
    cr_assert_str_eq(f.found[0], "s2");
}

static void sql(sqlite3 *db, const char *q) {
    char *msg = NULL;
    cr_assert_eq(sqlite3_exec(db, q, NULL, NULL, &msg), SQLITE_OK, "%s: %s", q, msg);
}

static int64_t sql_int(sqlite3 *db, const char *q) {
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(db, q, -1, &st, NULL), SQLITE_OK, "%s", q);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW, "%s", q);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* A store whose mpi tables are those of module version `v` (1, 2 or 3),
 * holding three persons (s3 without keys), s1 linked to golden g1; its
 * database path into path. */
static void old_store(char dir[256], char path[300], int v) {
    hub_store *st = hub_test_store_open(dir);
    hub_store_close(st);
    snprintf(path, 300, "%s/hub.db", dir);
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    sql(db, "DROP TABLE mpi_person; DROP TABLE mpi_block;"
            "CREATE TABLE mpi_block(key TEXT NOT NULL, seq INTEGER NOT NULL,"
            " source TEXT NOT NULL, PRIMARY KEY(key, seq, source)) WITHOUT ROWID;"
            "CREATE TABLE mpi_person(source TEXT PRIMARY KEY, sender TEXT NOT NULL,"
            " feat TEXT NOT NULL, updated_ms INTEGER NOT NULL) WITHOUT ROWID;"
            "INSERT INTO mpi_person VALUES('s1', 'A', 'f1', 1), ('s2', 'B', 'f2', 2),"
            " ('s3', 'C', 'f3', 3);"
            "INSERT INTO mpi_block VALUES('k|a', 10, 's1'), ('k|b', 11, 's1'),"
            " ('i|urn:x|\xc3\xa9:1', 12, 's1'), ('k|b', 20, 's2');"
            "INSERT INTO mpi_link VALUES('s1', 'g1', 'new', 0, NULL, 1);");
    if (v == 1)
        sql(db, "CREATE INDEX mpi_block_source ON mpi_block(source);"
                "UPDATE meta SET value='1' WHERE key='schema.mpi';");
    else
        sql(db, "ALTER TABLE mpi_person ADD COLUMN keys TEXT NOT NULL DEFAULT '';"
                "UPDATE mpi_person SET keys='10:3:k|a11:3:k|b12:11:i|urn:x|\xc3\xa9:1' "
                "WHERE source='s1';"
                "UPDATE mpi_person SET keys='20:3:k|b' WHERE source='s2';");
    if (v == 2) sql(db, "UPDATE meta SET value='2' WHERE key='schema.mpi';");
    if (v == 3)
        sql(db, "ALTER TABLE mpi_person ADD COLUMN golden TEXT NOT NULL DEFAULT '';"
                "UPDATE mpi_person SET golden='g1' WHERE source='s1';"
                "UPDATE meta SET value='3' WHERE key='schema.mpi';");
    sqlite3_close(db);
}

/* An old store (keys found through an index on mpi_block(source) in
 * version 1, listed in the person row in 2) gets each person's key list
 * from its rows and its golden from its link, and loses the index; an
 * update then drops a lost key's row and keeps the others'. */
static void old_store_migrates(int v) {
    char dir[256], path[300];
    old_store(dir, path, v);
    hub_store_cfg c = {.dir = dir, .durable = false};
    hub_err err;
    cr_assert_eq(hub_store_open(&c, &rt_store, &err), HUB_OK, "%s", err.msg);
    blocks_arg a = {.source = "s1", .keys = {"k|b", "i|urn:x|\xc3\xa9:1", "k|c"}, .n = 3,
                    .fp = 77};
    cr_assert_eq(in_job(set_keys, &a), HUB_OK);
    blocks_arg f;
    cr_assert_eq(sources_of("k|a", &f), 0, "the lost key's row is gone");
    cr_assert_eq(sources_of("k|c", &f), 1);
    cr_assert_eq(sources_of("k|b", &f), 2);
    cr_assert_str_eq(f.found[0], "s2", "s1 kept its row of k|b (seq 11)");
    hub_store_close(rt_store);
    rt_store = NULL;
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    cr_expect_eq(sql_int(db, "SELECT count(*) FROM sqlite_schema WHERE name='mpi_block_source'"),
                 0);
    cr_expect_eq(sql_int(db, "SELECT value FROM meta WHERE key='schema.mpi'"), 4);
    cr_expect_eq(sql_int(db, "SELECT count(*) FROM mpi_block WHERE source='s1' AND fp=77"), 3,
                 "kept rows get the new fingerprint, a new row has it");
    cr_expect_eq(sql_int(db, "SELECT count(*) FROM mpi_block WHERE fp IS NULL"), 1,
                 "s2's row has none until s2 is written");
    cr_expect_eq(sql_int(db, "SELECT fp FROM mpi_person WHERE source='s1'"), 77);
    cr_expect_eq(sql_int(db, "SELECT count(*) FROM mpi_block WHERE source='s1'"), 3);
    cr_expect_eq(sql_int(db, "SELECT seq FROM mpi_block WHERE key LIKE 'i|%'"), 12,
                 "a kept key keeps its place");
    cr_expect_eq(sql_int(db, "SELECT keys='20:3:k|b' FROM mpi_person WHERE source='s2'"), 1);
    cr_expect_eq(sql_int(db, "SELECT keys='' FROM mpi_person WHERE source='s3'"), 1);
    cr_expect_eq(sql_int(db, "SELECT golden='g1' FROM mpi_person WHERE source='s1'"), 1);
    cr_expect_eq(sql_int(db, "SELECT count(*) FROM mpi_person WHERE golden=''"), 2);
    sqlite3_close(db);
    hub_test_rmtree(dir);
}

Test(mpi_store, a_version_1_store_migrates) { old_store_migrates(1); }
Test(mpi_store, a_version_2_store_migrates) { old_store_migrates(2); }
Test(mpi_store, a_version_3_store_migrates) { old_store_migrates(3); }
