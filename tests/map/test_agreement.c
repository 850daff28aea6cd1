/* Agreement with other converters, measured: every input of
 * ../shared/corpus/v2-to-fhir with an expected output is converted by our
 * tables (the same code `hub convert` runs) and each expected element is
 * looked for in our output.
 *
 * Comparison rules:
 *  - elements are compared per resource type, as leaves: the path with the
 *    array indexes removed (Patient.name.given) and the JSON value; an
 *    expected leaf agrees when any of our resources of that type has the
 *    same path with the same value;
 *  - ignored, being converter-specific: id, meta, every Reference.reference
 *    (ids differ by design), narrative div, fullUrl and request, the
 *    resources that describe the conversion itself (MessageHeader,
 *    Provenance) and the resources only they refer to, directly or through
 *    one another (a Provenance's agents, not its targets: the converter's own
 *    assembler Organization; MessageHeader's sender and destination, which
 *    the hub keeps in its journal and Provenance, not as resources), and
 *    extensions whose url is not a core FHIR one
 *    (http://hl7.org/fhir/StructureDefinition/...), together with the
 *    resources only such extensions refer to (directly or through one
 *    another): what a converter says through its own extensions is not
 *    compared, whether a value or a resource (ReportStream's
 *    assigning-facility Organization of a CX, the identifier-location of
 *    an XON, the Practitioners of OBR-10 in an ORM, which the IG maps to
 *    no element);
 *  - a resource repeated in one Bundle with the same scored leaves counts
 *    once: writing a practitioner once per reference or once per message
 *    is the converter's choice, not a difference in what it says;
 *  - values compare exactly (a precision difference is a disagreement),
 *    except that a dateTime with a time and an offset compares as the
 *    instant it names (the same moment written in another zone agrees:
 *    FHIR-Converter writes times in its own machine's zone), a time the
 *    v2 message sent without an offset compares by its clock time (the
 *    zone is the converter's assumption: MSH-7's for the hub, UTC for
 *    ReportStream), and a value naming the converter itself (its made-up
 *    systems, http://example.com/v2-to-fhir-converter/...) is not
 *    scored;
 *  - a message we do not convert (no table yet, or a failure) agrees on
 *    nothing.
 * ReportStream cases (one datatype or segment each) also count as a whole:
 * a case agrees when at least 90% of its leaves do.
 * Messages are converted as `hub convert` converts them: grouped by the
 * structure of their version's base profile (conformance/v2).
 * Figures are printed; the test fails when one drops below the level
 * recorded in tests/map/agreement_floor.txt.
 *
 * HUB_AGREE_MISSES=1 also prints, for every case under 100%, its figure and
 * each expected leaf we do not produce (`miss Type.path|value`, with
 * "(N of M)" when it is expected M times and we produce it N times) and each
 * leaf we produce for a path the expected output has, with another value
 * (`ours Type.path|value`); HUB_AGREE_MISSES=TEXT limits that to the cases
 * whose file path contains TEXT. */
#include "hub/map.h"
#include "hub_test.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ctype.h>
#include <sys/stat.h>
#include <time.h>

typedef struct {
    char key[64];
    long exp, hit;
} tally;

typedef struct {
    tally t[256];
    size_t n;
} tallies;

static tally *tally_of(tallies *ts, const char *key) {
    for (size_t i = 0; i < ts->n; i++)
        if (strcmp(ts->t[i].key, key) == 0) return &ts->t[i];
    if (ts->n == 256) return &ts->t[255];
    tally *t = &ts->t[ts->n++];
    snprintf(t->key, sizeof t->key, "%s", key);
    return t;
}

static bool skip_type(const char *t) {
    return strcmp(t, "MessageHeader") == 0 || strcmp(t, "Provenance") == 0 ||
           strcmp(t, "Bundle") == 0;
}

/* The v2 message being compared (for sent_without_offset). */
static const char *g_v2;
static size_t g_v2n;

/* True when the message holds this date and time of day (to the minute,
 * or to the hour when the minutes are 0) without an offset: the zone is
 * then the converter's assumption. */
static bool sent_without_offset(int y, int mo, int d, int h, int mi) {
    char digits[32], mins[8];
    int dn = snprintf(digits, sizeof digits, "%04d%02d%02d%02d", y, mo, d, h);
    snprintf(mins, sizeof mins, "%02d", mi);
    const char *p = g_v2, *end = g_v2 + g_v2n;
    while (p && (p = memmem(p, (size_t)(end - p), digits, (size_t)dn)) != NULL) {
        bool starts = p == g_v2 || !isdigit((unsigned char)p[-1]);
        const char *q = p + dn;
        bool has_min = q + 1 < end && isdigit((unsigned char)q[0]) && isdigit((unsigned char)q[1]);
        bool same = has_min ? memcmp(q, mins, 2) == 0 : mi == 0;
        while (q < end && (isdigit((unsigned char)*q) || *q == '.')) q++;
        if (starts && same && (q == end || (*q != '+' && *q != '-'))) return true;
        p += dn;
    }
    return false;
}

/* A dateTime with a time of day and an offset is compared as the instant it
 * names: "2008-08-25T15:31:30+05:30" and "2008-08-25T11:16:30+01:15" are the
 * same moment written in two zones (FHIR-Converter writes every time in the
 * zone of the machine that made its expected outputs). Writes the instant
 * (UTC, ms) to out and returns true for such a value. A time the message
 * sent without an offset is compared by its clock time instead: its zone is
 * each converter's assumption (the hub takes MSH-7's, as v2 says the
 * sender's zone applies; ReportStream takes UTC). */
static bool instant_of(const char *s, char *out, size_t cap) {
    int y, mo, d, h, mi, sec = 0, ms = 0, n = 0;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d%n", &y, &mo, &d, &h, &mi, &n) != 5 || n != 16) return false;
    const char *p = s + n;
    if (*p == ':') {
        if (!isdigit((unsigned char)p[1]) || !isdigit((unsigned char)p[2])) return false;
        sec = (p[1] - '0') * 10 + (p[2] - '0');
        p += 3;
        if (*p == '.') {
            int digits = 0;
            for (p++; isdigit((unsigned char)*p); p++, digits++)
                if (digits < 3) ms = ms * 10 + (*p - '0');
            for (; digits < 3; digits++) ms *= 10;
        }
    }
    int off = 0;
    if (*p == 'Z') {
        p++;
    } else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
        int oh = atoi(p + 1), om = atoi(p + 4);
        off = (oh * 60 + om) * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return false;
    }
    if (*p) return false;
    if (sent_without_offset(y, mo, d, h, mi)) {
        snprintf(out, cap, "\"~%04d-%02d-%02dT%02d:%02d:%02d.%03d\"", y, mo, d, h, mi, sec, ms);
        return true;
    }
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h,
                    .tm_min = mi, .tm_sec = sec};
    long long t = (long long)timegm(&tm) - off * 60LL;
    snprintf(out, cap, "\"@%lld.%03d\"", t, ms);
    return true;
}

/* An extension FHIR itself defines (the others are converter-specific). */
static bool core_extension(json_t *e) {
    const char *u = json_string_value(json_object_get(e, "url"));
    return u && strncmp(u, "http://hl7.org/fhir/StructureDefinition/", 40) == 0;
}

/* Leaves of `v` under `path` into `set` ("Type|path|json" -> true). */
static void leaves(json_t *v, const char *path, json_t *set) {
    if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach(v, k, x) {
            if (strcmp(k, "id") == 0 || strcmp(k, "meta") == 0 || strcmp(k, "reference") == 0 ||
                strcmp(k, "div") == 0)
                continue;
            if (strcmp(k, "extension") == 0 || strcmp(k, "modifierExtension") == 0) {
                for (size_t i = 0; i < json_array_size(x); i++) {
                    json_t *e = json_array_get(x, i);
                    if (core_extension(e)) {
                        const char *u = json_string_value(json_object_get(e, "url"));
                        char p[512];
                        snprintf(p, sizeof p, "%s.extension(%s)", path, u + 40);
                        leaves(e, p, set);
                    }
                }
                continue;
            }
            char p[512];
            snprintf(p, sizeof p, "%s.%s", path, k);
            leaves(x, p, set);
        }
    } else if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) leaves(json_array_get(v, i), path, set);
    } else {
        const char *sv = json_string_value(v);
        if (sv && strstr(sv, "example.com/v2-to-fhir-converter")) return;
        char inst[48];
        char *js = sv && instant_of(sv, inst, sizeof inst)
                       ? strdup(inst)
                       : json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        if (js) {
            size_t n = strlen(path) + strlen(js) + 2;
            char *key = malloc(n);
            snprintf(key, n, "%s|%s", path, js);
            json_t *c = json_object_get(set, key);
            json_object_set_new(set, key, json_integer(c ? json_integer_value(c) + 1 : 1));
            free(key);
            free(js);
        }
    }
}

/* Every Reference.reference under `v` into `set`; those inside an extension
 * that is not a core one into `own` (what a converter says through its own
 * extensions is not scored, and neither is what only they refer to). */
static void collect_refs(json_t *v, json_t *set, json_t *own) {
    const char *k;
    json_t *x;
    if (json_is_object(v)) {
        json_object_foreach(v, k, x) {
            if (strcmp(k, "reference") == 0 && json_is_string(x)) {
                json_object_set_new(set, json_string_value(x), json_true());
            } else if (strcmp(k, "extension") == 0 || strcmp(k, "modifierExtension") == 0) {
                for (size_t i = 0; i < json_array_size(x); i++) {
                    json_t *e = json_array_get(x, i);
                    collect_refs(e, core_extension(e) ? set : own, own);
                }
            } else {
                collect_refs(x, set, own);
            }
        }
    } else if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) collect_refs(json_array_get(v, i), set, own);
    }
}

/* True when the entry is referred to by the resources that describe the
 * conversion (MessageHeader, a Provenance's agents, and what only they
 * refer to) and by no other: the converter's own assembler Organization,
 * the MessageHeader's sender and destination. */
static bool conversion_only(json_t *entry, json_t *conv_refs, json_t *rec_refs) {
    json_t *r = json_object_get(entry, "resource");
    const char *full = json_string_value(json_object_get(entry, "fullUrl"));
    const char *t = json_string_value(json_object_get(r, "resourceType"));
    const char *id = json_string_value(json_object_get(r, "id"));
    char tid[256] = "";
    if (t && id) snprintf(tid, sizeof tid, "%s/%s", t, id);
    bool by_conv = (full && json_object_get(conv_refs, full)) || json_object_get(conv_refs, tid);
    bool by_rec = (full && json_object_get(rec_refs, full)) || json_object_get(rec_refs, tid);
    return by_conv && !by_rec;
}

/* Adds a resource's leaves to `set` unless a resource with the same
 * scored leaves came before (ids, meta and converter-specific extensions
 * aside): a converter that writes the same practitioner once per reference
 * and one that writes it once say the same thing. */
static void add_leaves(json_t *r, const char *type, json_t *set, json_t *seen) {
    json_t *mine = json_object();
    leaves(r, type, mine);
    char *d = json_dumps(mine, JSON_COMPACT | JSON_SORT_KEYS);
    if (d && json_object_get(seen, d) == NULL) {
        json_object_set_new(seen, d, json_true());
        const char *k;
        json_t *v;
        json_object_foreach(mine, k, v) {
            json_t *c = json_object_get(set, k);
            json_object_set_new(set, k,
                                json_integer(json_integer_value(v) + (c ? json_integer_value(c) : 0)));
        }
    }
    free(d);
    json_decref(mine);
}

/* Marks (in `conv`, by entry index) the entries only the conversion's
 * description refers to, directly or through other such entries. */
static void mark_conversion_only(json_t *e, bool *conv) {
    size_t n = json_array_size(e);
    for (int round = 0; round < 4; round++) {
        json_t *conv_refs = json_object(), *rec_refs = json_object();
        for (size_t i = 0; i < n; i++) {
            json_t *r = json_object_get(json_array_get(e, i), "resource");
            const char *t = json_string_value(json_object_get(r, "resourceType"));
            if (t && strcmp(t, "Provenance") == 0)
                collect_refs(json_object_get(r, "agent"), conv_refs, conv_refs); /* not its targets */
            else if ((t && strcmp(t, "MessageHeader") == 0) || conv[i])
                collect_refs(r, conv_refs, conv_refs);
            else
                collect_refs(r, rec_refs, conv_refs);
        }
        bool changed = false;
        for (size_t i = 0; i < n; i++) {
            if (!conv[i] && conversion_only(json_array_get(e, i), conv_refs, rec_refs)) {
                conv[i] = true;
                changed = true;
            }
        }
        json_decref(conv_refs);
        json_decref(rec_refs);
        if (!changed) break;
    }
}

static void bundle_leaves(json_t *b, json_t *set) {
    json_t *e = json_object_get(b, "entry");
    size_t n = json_array_size(e);
    bool *conv = calloc(n ? n : 1, sizeof *conv);
    mark_conversion_only(e, conv);
    json_t *seen = json_object();
    for (size_t i = 0; i < n; i++) {
        json_t *r = json_object_get(json_array_get(e, i), "resource");
        const char *t = json_string_value(json_object_get(r, "resourceType"));
        if (t == NULL || skip_type(t) || conv[i]) continue;
        add_leaves(r, t, set, seen);
    }
    json_decref(seen);
    free(conv);
}

/* Expected leaves we miss, and ours on the same paths with other values. */
static void print_misses(const char *filter, const char *file, json_t *eset, json_t *oset,
                         long hit, long exp) {
    if (strcmp(filter, "1") != 0 && strstr(file, filter) == NULL) return;
    printf("case %5.1f%% (%ld of %ld) %s\n", 100.0 * (double)hit / (double)exp, hit, exp, file);
    const char *k;
    json_t *v;
    json_object_foreach(eset, k, v) {
        long have = (long)json_integer_value(json_object_get(oset, k)), want = (long)json_integer_value(v);
        if (have >= want) continue;
        if (want > 1)
            printf("  miss %s (%ld of %ld)\n", k, have, want);
        else
            printf("  miss %s\n", k);
    }
    json_object_foreach(oset, k, v) {
        size_t pl = strcspn(k, "|");
        bool same_path = false, exact = json_object_get(eset, k) != NULL;
        const char *ek;
        json_t *ev;
        json_object_foreach(eset, ek, ev) {
            if (strncmp(ek, k, pl + 1) == 0) same_path = true;
        }
        if (same_path && !exact) printf("  ours %s\n", k);
    }
}

typedef struct {
    hub_map *map;
    hub_v2_profset *profiles; /* conformance/v2: the message structures */
    const char *misses; /* HUB_AGREE_MISSES, or NULL */
    tallies by_msg, by_res;
    long cases, cases_ok;
} run;

/* The structure that groups `m`, as `hub convert` finds it: the base
 * profile's for the message's version (GROUP>SEG rows need it). */
static const hub_v2_struct_def *structure_of(run *r, const hub_v2_msg *m) {
    const hub_v2_msh *h = hub_v2_msg_msh(m);
    char ver[32];
    const hub_v2_profile *p = NULL;
    if (r->profiles == NULL || hub_v2_profset_pick(r->profiles, h->version, ver, sizeof ver) < 0 ||
        hub_v2_profset_get(r->profiles, ver, &p, NULL) != HUB_OK)
        return NULL;
    const char *sn = hub_v2_profile_struct_for(p, h->msg_code, h->trigger, h->structure);
    return sn ? hub_v2_profile_struct_def(p, sn) : NULL;
}

/* Converts `hl7`, compares with `expected`; returns the case's agreement
 * (hit/exp), or -1 when it has nothing to score. */
static double compare(run *r, const char *hl7, const char *expected) {
    size_t n, en;
    char *buf = hub_test_read_file(hl7, &n);
    char *ej = hub_test_read_file(expected, &en);
    if (buf == NULL || ej == NULL) {
        hub_free(buf);
        hub_free(ej);
        return -1;
    }
    json_t *exp = json_loadb(ej, en, 0, NULL);
    hub_free(ej);
    if (exp == NULL) {
        hub_free(buf);
        return -1;
    }
    json_t *eset = json_object(), *oset = json_object();
    g_v2 = buf;
    g_v2n = n;
    bundle_leaves(exp, eset);
    hub_arena a;
    hub_arena_init(&a, 16384);
    hub_v2_msg *m = NULL;
    char type[32] = "unparsed";
    if (hub_v2_parse(&a, buf, n, NULL, &m, NULL) == HUB_OK) {
        const hub_v2_msh *h = hub_v2_msg_msh(m);
        snprintf(type, sizeof type, "%.*s^%.*s", (int)(h->msg_code.n < 8 ? h->msg_code.n : 8),
                 h->msg_code.p ? h->msg_code.p : "", (int)(h->trigger.n < 8 ? h->trigger.n : 8),
                 h->trigger.p ? h->trigger.p : "");
        hub_map_result res;
        hub_err err;
        hub_map_opts o = {.structure = structure_of(r, m), .out = HUB_MAP_OUT_JANSSON};
        if (hub_map_message(r->map, m, &o, &res, &err) == HUB_OK) bundle_leaves(res.bundle, oset);
        hub_map_result_release(&res);
    }
    hub_arena_release(&a);
    hub_free(buf);
    long exp_n = 0, hit_n = 0;
    const char *k;
    json_t *v;
    json_object_foreach(eset, k, v) {
        long c = (long)json_integer_value(v);
        long have = (long)json_integer_value(json_object_get(oset, k));
        long hit = have < c ? have : c;
        char rt[64];
        snprintf(rt, sizeof rt, "%.*s", (int)strcspn(k, ".|"), k);
        tally *tr = tally_of(&r->by_res, rt), *tm = tally_of(&r->by_msg, type);
        tr->exp += c;
        tr->hit += hit;
        tm->exp += c;
        tm->hit += hit;
        exp_n += c;
        hit_n += hit;
    }
    if (exp_n > 0 && hit_n < exp_n && r->misses) print_misses(r->misses, hl7, eset, oset, hit_n, exp_n);
    json_decref(eset);
    json_decref(oset);
    json_decref(exp);
    if (exp_n == 0) return -1;
    return (double)hit_n / (double)exp_n;
}

static void walk(run *r, const char *dir, bool reportstream, int depth) {
    DIR *d = opendir(dir);
    if (d == NULL || depth > 6) {
        if (d) closedir(d);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(p, &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) {
            walk(r, p, reportstream, depth + 1);
            continue;
        }
        size_t l = strlen(p);
        if (l < 5 || strcmp(p + l - 4, ".hl7") != 0) continue;
        char ex[1100];
        snprintf(ex, sizeof ex, "%.*s%s", (int)(l - 4), p, reportstream ? ".fhir" : "-expected.json");
        if (stat(ex, &st) != 0) continue;
        double a = compare(r, p, ex);
        if (a < 0) continue;
        r->cases++;
        if (a >= 0.9) r->cases_ok++;
    }
    closedir(d);
}

static double pct(long hit, long exp) { return exp ? 100.0 * (double)hit / (double)exp : 0; }

static void print(const char *title, const tallies *ts) {
    printf("%s\n", title);
    for (size_t i = 0; i < ts->n; i++)
        printf("  %-22s %6ld / %6ld  %5.1f%%\n", ts->t[i].key, ts->t[i].hit, ts->t[i].exp,
               pct(ts->t[i].hit, ts->t[i].exp));
}

static double floor_of(const char *key) {
    FILE *f = fopen(HUB_SOURCE_DIR "/tests/map/agreement_floor.txt", "r");
    cr_assert_not_null(f, "tests/map/agreement_floor.txt is missing");
    char line[256];
    double v = -1;
    while (fgets(line, sizeof line, f)) {
        char k[128];
        double x;
        if (line[0] != '#' && sscanf(line, "%127s %lf", k, &x) == 2 && strcmp(k, key) == 0) v = x;
    }
    fclose(f);
    cr_assert_geq(v, 0, "no floor recorded for '%s'", key);
    return v;
}

static void check(const char *key, double got) {
    double fl = floor_of(key);
    printf("  %-40s %6.1f%%  (floor %.1f%%)\n", key, got, fl);
    cr_expect_geq(got + 0.05, fl, "%s dropped to %.1f%% (floor %.1f%%)", key, got, fl);
}

Test(map_agreement, reportstream_cases) {
    char dir[512];
    if (!hub_test_corpus("v2-to-fhir/cdc-prime-reportstream/mappinginventory", dir))
        cr_skip("corpus absent: %s", dir);
    run *r = calloc(1, sizeof *r);
    r->misses = getenv("HUB_AGREE_MISSES");
    hub_err err;
    hub_map_cfg c = {.dir = HUB_SOURCE_DIR "/mappings"};
    cr_assert_eq(hub_map_load(&c, &r->map, &err), HUB_OK, "%s: %s", err.where, err.msg);
    cr_assert_eq(hub_v2_profset_open(HUB_SOURCE_DIR "/conformance/v2", &r->profiles, &err), HUB_OK,
                 "%s: %s", err.where, err.msg);
    walk(r, dir, true, 0);
    printf("ReportStream mapping-inventory cases: %ld, agreeing (>= 90%% of leaves) %ld\n",
           r->cases, r->cases_ok);
    print("by message type (leaves)", &r->by_msg);
    print("by resource type (leaves)", &r->by_res);
    long e = 0, h = 0;
    for (size_t i = 0; i < r->by_res.n; i++) {
        e += r->by_res.t[i].exp;
        h += r->by_res.t[i].hit;
    }
    check("reportstream.cases", pct(r->cases_ok, r->cases));
    check("reportstream.leaves", pct(h, e));
    /* The order/result tables' own figures (map-orders). */
    static const char *msgs[] = {"ORU^R01", "OML^O21", "ORM^O01"};
    static const char *res[] = {"Observation", "DiagnosticReport", "ServiceRequest", "Specimen"};
    for (size_t i = 0; i < sizeof msgs / sizeof msgs[0]; i++) {
        tally *t = tally_of(&r->by_msg, msgs[i]);
        char key[64];
        snprintf(key, sizeof key, "reportstream.msg.%s", msgs[i]);
        check(key, pct(t->hit, t->exp));
    }
    for (size_t i = 0; i < sizeof res / sizeof res[0]; i++) {
        tally *t = tally_of(&r->by_res, res[i]);
        char key[64];
        snprintf(key, sizeof key, "reportstream.%s", res[i]);
        check(key, pct(t->hit, t->exp));
    }
    hub_v2_profset_close(r->profiles);
    hub_map_free(r->map);
    free(r);
}

Test(map_agreement, fhir_converter_pairs) {
    char dir[512];
    if (!hub_test_corpus("v2-to-fhir/fhir-converter", dir)) cr_skip("corpus absent: %s", dir);
    run *r = calloc(1, sizeof *r);
    r->misses = getenv("HUB_AGREE_MISSES");
    hub_err err;
    hub_map_cfg c = {.dir = HUB_SOURCE_DIR "/mappings"};
    cr_assert_eq(hub_map_load(&c, &r->map, &err), HUB_OK, "%s: %s", err.where, err.msg);
    cr_assert_eq(hub_v2_profset_open(HUB_SOURCE_DIR "/conformance/v2", &r->profiles, &err), HUB_OK,
                 "%s: %s", err.where, err.msg);
    walk(r, dir, false, 0);
    printf("FHIR-Converter pairs: %ld\n", r->cases);
    print("by message type (leaves)", &r->by_msg);
    print("by resource type (leaves)", &r->by_res);
    static const char *types[] = {"Patient", "Encounter", "Observation", "DiagnosticReport"};
    for (size_t i = 0; i < 4; i++) {
        tally *t = tally_of(&r->by_res, types[i]);
        char key[64];
        snprintf(key, sizeof key, "fhir-converter.%s", types[i]);
        check(key, pct(t->hit, t->exp));
    }
    /* The order, result, pharmacy, immunization, scheduling and document
     * tables (map-orders): per message type and per resource type. */
    static const char *msgs[] = {"ORU^R01", "ORM^O01", "OML^O21", "RDE^O11", "VXU^V04",
                                 "SIU^S12", "SIU^S15", "MDM^T02", "OUL^R22", "OMG^O19"};
    static const char *more[] = {"ServiceRequest", "Specimen", "MedicationRequest",
                                 "Immunization", "Appointment", "DocumentReference"};
    for (size_t i = 0; i < sizeof msgs / sizeof msgs[0]; i++) {
        tally *t = tally_of(&r->by_msg, msgs[i]);
        char key[64];
        snprintf(key, sizeof key, "fhir-converter.msg.%s", msgs[i]);
        check(key, pct(t->hit, t->exp));
    }
    for (size_t i = 0; i < sizeof more / sizeof more[0]; i++) {
        tally *t = tally_of(&r->by_res, more[i]);
        char key[64];
        snprintf(key, sizeof key, "fhir-converter.%s", more[i]);
        check(key, pct(t->hit, t->exp));
    }
    hub_v2_profset_close(r->profiles);
    hub_map_free(r->map);
    free(r);
}
