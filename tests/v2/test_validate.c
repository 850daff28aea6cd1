/* The validator: one test per HL7 error code it emits, clean messages,
 * site-profile tightening, policy, ACK integration and a corpus pass. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hub/v2.h"
#include "v2_test.h"

#define CONF HUB_SOURCE_DIR "/conformance/v2"

static hub_v2_profset *set;
static hub_arena arena;

static void up(void) {
    hub_err err;
    cr_assert_eq(hub_v2_profset_open(CONF, &set, &err), HUB_OK, "%s", err.msg);
    hub_arena_init(&arena, 1 << 16);
}

static void down(void) {
    hub_arena_release(&arena);
    hub_v2_profset_close(set);
}

#define MSH_ADT(ver) "MSH|^~\\&|SND|SFAC|RCV|RFAC|20230115120000||ADT^A01^ADT_A01|MSG1|P|" ver "\r"
#define EVN "EVN|A01|20230115120000\r"
#define PID "PID|1||12345^^^HOSP^MR||DOE^JOHN^^^^^L||19800101|M\r"
#define PV1 "PV1|1|I\r"

static const char *ADT = MSH_ADT("2.5.1") EVN PID PV1;
static const char *ORU =
    "MSH|^~\\&|LAB|HOSP|EHR|HOSP|20230115120000||ORU^R01^ORU_R01|MSG2|P|2.5.1\r"
    "PID|1||12345^^^HOSP^MR||DOE^JANE||19800101|F\r"
    "OBR|1||ORD1|1234-5^GLUCOSE^LN|||20230115110000\r"
    "OBX|1|NM|1234-5^GLUCOSE^LN||95|mg/dL|70-100|N|||F\r"
    "NTE|1||comment\r"
    "OBX|2|NM|2345-7^SODIUM^LN||140|mmol/L|135-145|N|||F\r"
    "OBR|2||ORD2|1234-5^GLUCOSE^LN|||20230115110000\r"
    "OBX|1|NM|1234-5^GLUCOSE^LN||96|mg/dL|70-100|N|||F\r";

static hub_v2_msg *parse(const char *text) {
    hub_v2_msg *m = NULL;
    hub_err err;
    hub_status rc = hub_v2_parse(&arena, text, strlen(text), NULL, &m, &err);
    cr_assert_eq(rc, HUB_OK, "parse: %s %s", err.where, err.msg);
    return m;
}

/* Out-of-order and unknown segments are warnings by default; tests of
 * the 100 rules that want them as errors use this policy. */
static const hub_v2_policy *strict_order(void) {
    static hub_v2_policy p;
    hub_v2_policy_default(&p);
    hub_err e;
    hub_v2_policy_set(&p, "seg_unexpected", "error", &e);
    return &p;
}

static hub_v2_findings run(const char *text, const hub_v2_site *site,
                           const hub_v2_policy *pol) {
    hub_v2_findings fs;
    hub_err err;
    hub_v2_validate_opts o = {.site = site, .policy = pol, .max = 0};
    cr_assert_eq(hub_v2_validate(&arena, set, parse(text), &o, &fs, &err), HUB_OK);
    return fs;
}


static char *replace(const char *s, const char *from, const char *to) {
    const char *at = strstr(s, from);
    cr_assert_not_null(at, "'%s' not in the message", from);
    size_t n = strlen(s) - strlen(from) + strlen(to) + 1;
    char *out = hub_arena_alloc(&arena, n);
    snprintf(out, n, "%.*s%s%s", (int)(at - s), s, to, at + strlen(from));
    return out;
}

static hub_v2_site *site_of(const char *json) {
    hub_v2_site *s = NULL;
    hub_err err;
    cr_assert_eq(hub_v2_site_parse(set, json, strlen(json), "test", &s, &err), HUB_OK,
                 "%s: %s", err.where, err.msg);
    return s;
}

/* ---- clean messages ---------------------------------------------------------- */

Test(v2_validate, adt_a01_clean, .init = up, .fini = down) {
    hub_v2_findings fs = run(ADT, NULL, NULL);
    if (fs.n) v2_findings_dump(&fs);
    cr_assert_eq(fs.n, 0);
    cr_assert_str_eq(fs.version, "2.5.1");
    cr_assert_str_eq(fs.structure, "ADT_A01");
}

Test(v2_validate, oru_r01_clean_with_groups, .init = up, .fini = down) {
    hub_v2_findings fs = run(ORU, NULL, NULL);
    if (fs.n) v2_findings_dump(&fs);
    cr_assert_eq(fs.n, 0);
    cr_assert_str_eq(fs.structure, "ORU_R01");
}

Test(v2_validate, adt_a04_uses_a01_structure, .init = up, .fini = down) {
    hub_v2_findings fs = run(replace(ADT, "ADT^A01^ADT_A01", "ADT^A04"), NULL, NULL);
    cr_assert_eq(fs.n, 0);
    cr_assert_str_eq(fs.structure, "ADT_A01");
}

Test(v2_validate, clean_in_every_version, .init = up, .fini = down) {
    const char *vers[] = {"2.3.1", "2.4", "2.5", "2.6", "2.7", "2.7.1"};
    for (size_t i = 0; i < sizeof vers / sizeof *vers; i++) {
        char ver[32];
        snprintf(ver, sizeof ver, "|P|%s\r", vers[i]);
        hub_v2_findings fs = run(replace(ADT, "|P|2.5.1\r", ver), NULL, NULL);
        if (fs.nerrors) v2_findings_dump(&fs);
        cr_assert_eq(fs.nerrors, 0, "v%s", vers[i]);
        cr_assert_str_eq(fs.version, vers[i]);
    }
}

Test(v2_validate, z_segments_allowed_anywhere_by_default, .init = up, .fini = down) {
    hub_v2_findings fs = run(replace(ADT, "PV1|", "ZPI|1|x\rPV1|"), NULL, NULL);
    cr_assert_eq(fs.n, 0);
}

/* ---- 100 segment sequence ------------------------------------------------------- */

Test(v2_validate, e100_required_segment_missing, .init = up, .fini = down) {
    hub_v2_findings fs = run(replace(ADT, PV1, ""), NULL, NULL);
    const hub_v2_finding *f = v2_finding_must(&fs, "PV1", 100, 'E');
    cr_assert_eq(f->loc.seg, UINT32_MAX);
    cr_assert(strstr(f->text, "required segment 'PV1' missing"));
}

Test(v2_validate, e100_required_group_missing, .init = up, .fini = down) {
    /* ORU without any OBR: ORDER_OBSERVATION is required */
    hub_v2_findings fs = run(
        "MSH|^~\\&|LAB|HOSP|EHR|HOSP|20230115120000||ORU^R01^ORU_R01|MSG2|P|2.5.1\r"
        "PID|1||12345^^^HOSP^MR||DOE^JANE\r",
        NULL, NULL);
    const hub_v2_finding *f = v2_finding_must(&fs, "OBR", 100, 'E');
    cr_assert(strstr(f->text, "ORDER_OBSERVATION"), "%s", f->text);
}

Test(v2_validate, e100_segment_out_of_order, .init = up, .fini = down) {
    /* EVN after PID: EVN is missing where it belongs, then unexpected */
    hub_v2_findings fs = run(MSH_ADT("2.5.1") PID EVN PV1, NULL, NULL);
    const hub_v2_finding *f = v2_finding_must(&fs, "EVN", 100, 'E');
    (void)f;
    int unexpected = 0;
    for (size_t i = 0; i < fs.n; i++)
        if (fs.items[i].loc.seg == 2 && fs.items[i].code == 100) unexpected++;
    cr_assert_eq(unexpected, 1);
}

Test(v2_validate, e100_segment_not_in_structure, .init = up, .fini = down) {
    hub_v2_findings fs = run(replace(ADT, "PV1|", "QRD|1\rPV1|"), NULL, NULL);
    v2_finding_must(&fs, "QRD", 100, 'W'); /* the default: a warning */
    fs = run(replace(ADT, "PV1|", "QRD|1\rPV1|"), NULL, strict_order());
    const hub_v2_finding *f = v2_finding_must(&fs, "QRD", 100, 'E');
    cr_assert_eq(f->loc.seg, 3);
    cr_assert_eq(f->loc.seg_seq, 1);
    cr_assert(strstr(f->text, "not in the message structure"));
}

Test(v2_validate, e100_nonrepeating_segment_repeated, .init = up, .fini = down) {
    hub_v2_findings fs = run(ADT, NULL, NULL);
    cr_assert_eq(fs.n, 0);
    fs = run(replace(ADT, EVN, EVN EVN), NULL, strict_order());
    const hub_v2_finding *f = v2_finding_must(&fs, "EVN(2)", 100, 'E');
    cr_assert_eq(f->loc.seg, 2);
    cr_assert_eq(f->loc.seg_seq, 2);
}

Test(v2_validate, oru_second_patient_result_and_repeats, .init = up, .fini = down) {
    char *two = hub_arena_sprintf(&arena, "%s%s", ORU, strstr(ORU, "PID|"));
    hub_v2_findings fs = run(two, NULL, NULL);
    if (fs.n) v2_findings_dump(&fs);
    cr_assert_eq(fs.n, 0);
}

/* ---- 101 required field ------------------------------------------------------- */

Test(v2_validate, e101_required_field_missing, .init = up, .fini = down) {
    hub_v2_findings fs = run(replace(ADT, "12345^^^HOSP^MR", ""), NULL, NULL);
    const hub_v2_finding *f = v2_finding_must(&fs, "PID-3", 101, 'E');
    cr_assert_eq(f->loc.seg, 2);
    cr_assert_eq(f->loc.field, 3);
    cr_assert(strstr(f->text, "Patient Identifier List"));
    cr_assert_eq(fs.nerrors, 1);
}

Test(v2_validate, e101_msh_10_missing, .init = up, .fini = down) {
    hub_v2_findings fs = run(replace(ADT, "|MSG1|", "||"), NULL, NULL);
    v2_finding_must(&fs, "MSH-10", 101, 'E');
}

Test(v2_validate, required_component_missing_is_warning, .init = up, .fini = down) {
    /* CX.1 (ID Number) is required by the datatype */
    hub_v2_findings fs = run(replace(ADT, "12345^^^HOSP^MR", "^^^HOSP^MR"), NULL, NULL);
    v2_finding_must(&fs, "PID-3.1", 101, 'W');
    cr_assert_eq(fs.nerrors, 0);
}

/* ---- 102 data type -------------------------------------------------------------- */

Test(v2_validate, e102_impossible_date, .init = up, .fini = down) {
    hub_v2_findings fs = run(replace(ADT, "19800101", "20230231"), NULL, NULL);
    const hub_v2_finding *f = v2_finding_must(&fs, "PID-7", 102, 'E');
    cr_assert_str_eq(f->text, "impossible date");
    cr_assert_null(strstr(f->text, "2023"), "no value in the diagnosis");
}

Test(v2_validate, e102_malformed_datetime, .init = up, .fini = down) {
    hub_v2_findings fs = run(replace(ADT, "19800101", "1980-01-01"), NULL, NULL);
    v2_finding_must(&fs, "PID-7", 102, 'E');
    fs = run(replace(ADT, "EVN|A01|20230115120000", "EVN|A01|202301151"), NULL, NULL);
    v2_finding_must(&fs, "EVN-2", 102, 'E');
}

Test(v2_validate, e102_leap_day_only_in_leap_years, .init = up, .fini = down) {
    hub_v2_findings fs = run(replace(ADT, "19800101", "20240229"), NULL, NULL);
    cr_assert_eq(fs.n, 0);
    fs = run(replace(ADT, "19800101", "19000229"), NULL, NULL);
    v2_finding_must(&fs, "PID-7", 102, 'E');
}

Test(v2_validate, e102_not_a_number, .init = up, .fini = down) {
    /* PID-25 Birth Order is NM */
    hub_v2_findings fs =
        run(replace(ADT, "19800101|M\r", "19800101|M|||||||||||||||||x1\r"), NULL, NULL);
    v2_finding_must(&fs, "PID-25", 102, 'E');
}

Test(v2_validate, e102_bad_set_id, .init = up, .fini = down) {
    hub_v2_findings fs = run(replace(ADT, "PID|1|", "PID|A|"), NULL, NULL);
    v2_finding_must(&fs, "PID-1", 102, 'E');
}

Test(v2_validate, e102_nonrepeating_field_repeated, .init = up, .fini = down) {
    hub_v2_findings fs = run(replace(ADT, "19800101", "19800101~19800102"), NULL, NULL);
    const hub_v2_finding *f = v2_finding_must(&fs, "PID-7(2)", 102, 'W');
    cr_assert_eq(f->loc.rep, 2);
}

Test(v2_validate, field_beyond_definition_is_info, .init = up, .fini = down) {
    hub_v2_findings fs = run(replace(ADT, "PV1|1|I\r", "PV1|1|I" "|||||||||||||||||||||||||||||||||||||||||||||||||||||||||||x\r"),
                             NULL, NULL);
    cr_assert_eq(fs.nerrors, 0);
    cr_assert_eq(fs.ninfos, 1);
}

Test(v2_validate, e102_charset_warning_from_parser, .init = up, .fini = down) {
    /* declared ASCII, but a Latin-1 byte in PID-5 */
    char *m = replace(ADT, "DOE^JOHN", "D\xe9OE^JOHN");
    hub_v2_findings fs = run(m, NULL, NULL);
    int charset = 0;
    for (size_t i = 0; i < fs.n; i++)
        if (fs.items[i].code == 102 && fs.items[i].severity == 'W' &&
            fs.items[i].loc.seg == 2)
            charset++;
    if (charset == 0) v2_findings_dump(&fs);
    cr_assert_geq(charset, 1);
}

/* ---- 103 table value ------------------------------------------------------------- */

Test(v2_validate, e103_user_table_is_warning, .init = up, .fini = down) {
    hub_v2_findings fs = run(replace(ADT, "19800101|M", "19800101|Q"), NULL, NULL);
    const hub_v2_finding *f = v2_finding_must(&fs, "PID-8", 103, 'W');
    cr_assert(strstr(f->text, "0001"));
    cr_assert_eq(fs.nerrors, 0);
}

Test(v2_validate, e103_hl7_table, .init = up, .fini = down) {
    /* PID-24 Multiple Birth Indicator: ID, table 0136 (Y/N) */
    hub_v2_findings fs = run(replace(ADT, "19800101|M\r", "19800101|M||||||||||||||||Q\r"),
                             NULL, NULL);
    v2_finding_must(&fs, "PID-24", 103, 'W');
    hub_v2_policy pol;
    hub_v2_policy_default(&pol);
    hub_err err;
    cr_assert_eq(hub_v2_policy_set(&pol, "table_hl7", "error", &err), HUB_OK);
    fs = run(replace(ADT, "19800101|M\r", "19800101|M||||||||||||||||Q\r"), NULL, &pol);
    v2_finding_must(&fs, "PID-24", 103, 'E');
}

Test(v2_validate, e103_coded_with_hl7_coding_system, .init = up, .fini = down) {
    /* PID-10 Race CE table 0005: checked only when the system is HL7's */
    hub_v2_findings fs =
        run(replace(ADT, "19800101|M\r", "19800101|M||ZZZ^Zed^HL70005\r"), NULL, NULL);
    v2_finding_must(&fs, "PID-10", 103, 'W');
    fs = run(replace(ADT, "19800101|M\r", "19800101|M||ZZZ^Zed^LOCAL\r"), NULL, NULL);
    cr_assert_null(v2_finding(&fs, "PID-10", 103));
}

/* ---- 104 / too long ------------------------------------------------------------- */

Test(v2_validate, too_long_is_102_before_v27, .init = up, .fini = down) {
    hub_v2_findings fs = run(replace(ADT, "PID|1|", "PID|12345|"), NULL, NULL);
    const hub_v2_finding *f = v2_finding_must(&fs, "PID-1", 102, 'W');
    cr_assert_str_eq(f->text, "value too long (5 > 4)");
}

Test(v2_validate, e104_value_too_long_v27, .init = up, .fini = down) {
    /* v2.7 has no base lengths: a site profile sets one */
    hub_v2_site *s = site_of("{\"name\":\"t\",\"fields\":{\"PID-5.1\":{\"max_len\":2}}}");
    char *m = replace(ADT, "|P|2.5.1\r", "|P|2.7\r");
    hub_v2_findings fs = run(m, s, NULL);
    const hub_v2_finding *f = v2_finding_must(&fs, "PID-5.1", 104, 'W');
    cr_assert_eq(f->loc.comp, 1);
    hub_v2_site_free(s);
}

Test(v2_validate, length_counts_characters_not_escapes, .init = up, .fini = down) {
    hub_v2_site *s = site_of("{\"name\":\"t\",\"fields\":{\"PID-5.1\":{\"max_len\":3}}}");
    hub_v2_findings fs = run(replace(ADT, "DOE^JOHN", "D\\T\\E^JOHN"), s, NULL);
    cr_assert_null(v2_finding(&fs, "PID-5.1", 102));
    hub_v2_site_free(s);
}

Test(v2_validate, length_counts_characters_in_the_charset, .init = up, .fini = down) {
    hub_v2_site *s = site_of("{\"name\":\"t\",\"fields\":{\"PID-5.1\":{\"max_len\":2}}}");
    /* UTF-8: two characters in three bytes */
    char *u = replace(replace(ADT, "|P|2.5.1\r", "|P|2.5.1||||||UNICODE UTF-8\r"), "DOE^", "D\xc3\x89^");
    hub_v2_findings fs = run(u, s, NULL);
    if (fs.n) v2_findings_dump(&fs);
    cr_assert_eq(fs.n, 0);
    /* Latin-1: one byte per character */
    char *l = replace(replace(ADT, "|P|2.5.1\r", "|P|2.5.1||||||8859/1\r"), "DOE^", "D\xc9\xc9^");
    fs = run(l, s, NULL);
    v2_finding_must(&fs, "PID-5.1", 102, 'W');
    hub_v2_site_free(s);
}

Test(v2_validate, length_counts_characters_in_converted_charsets, .init = up, .fini = down) {
    hub_v2_site *s = site_of("{\"name\":\"t\",\"fields\":{\"PID-5.1\":{\"max_len\":2}}}");
    /* 8859/5: one byte per character, bytes 0x80-0xBF included */
    char *c = replace(replace(ADT, "|P|2.5.1\r", "|P|2.5.1||||||8859/5\r"), "DOE^", "\xbf\xbf^");
    hub_v2_findings fs = run(c, s, NULL);
    cr_assert_null(v2_finding(&fs, "PID-5.1", 102));
    c = replace(replace(ADT, "|P|2.5.1\r", "|P|2.5.1||||||8859/5\r"), "DOE^", "\xbf\xbf\xbf^");
    fs = run(c, s, NULL);
    v2_finding_must(&fs, "PID-5.1", 102, 'W');
    /* Big5: two bytes per character */
    c = replace(replace(ADT, "|P|2.5.1\r", "|P|2.5.1||||||BIG-5\r"), "DOE^", "\xa4\xa4\xa4\xa4^");
    fs = run(c, s, NULL);
    cr_assert_null(v2_finding(&fs, "PID-5.1", 102));
    /* ISO IR87 with raw escape sequences: they are no characters */
    c = replace(replace(ADT, "|P|2.5.1\r", "|P|2.5.1||||||~ISO IR87\r"), "DOE^",
                "\x1b$B;3ED\x1b(B^");
    fs = run(c, s, NULL);
    if (fs.n) v2_findings_dump(&fs);
    cr_assert_null(v2_finding(&fs, "PID-5.1", 102));
    hub_v2_site_free(s);
}

/* ---- 200, 201, 202, 203, 207 --------------------------------------------------------- */

Test(v2_validate, e200_unsupported_message_type, .init = up, .fini = down) {
    hub_v2_findings fs = run(replace(ADT, "ADT^A01^ADT_A01", "XYZ^A01"), NULL, NULL);
    const hub_v2_finding *f = v2_finding_must(&fs, "MSH-9.1", 200, 'E');
    cr_assert(strstr(f->text, "XYZ"));
    cr_assert_null(fs.structure);
}

Test(v2_validate, e200_unknown_structure, .init = up, .fini = down) {
    hub_v2_findings fs = run(replace(ADT, "ADT^A01^ADT_A01", "ADT^Z99^ADT_Z99"), NULL, NULL);
    v2_finding_must(&fs, "MSH-9.3", 200, 'E');
}

Test(v2_validate, structure_mismatch_is_warning, .init = up, .fini = down) {
    /* ADT_A08 is not a structure of 2.5.1; the event maps to ADT_A01 */
    hub_v2_findings fs = run(replace(ADT, "ADT^A01^ADT_A01", "ADT^A08^ADT_A08"), NULL, NULL);
    v2_finding_must(&fs, "MSH-9.3", 200, 'W');
    cr_assert_str_eq(fs.structure, "ADT_A01");
    cr_assert_eq(fs.nerrors, 0);
}

Test(v2_validate, e201_unsupported_event, .init = up, .fini = down) {
    hub_v2_findings fs = run(replace(ADT, "ADT^A01^ADT_A01", "ADT^Z99"), NULL, NULL);
    v2_finding_must(&fs, "MSH-9.2", 201, 'E');
}

Test(v2_validate, e202_unsupported_processing_id, .init = up, .fini = down) {
    hub_v2_findings fs = run(replace(ADT, "|MSG1|P|", "|MSG1|X|"), NULL, NULL);
    v2_finding_must(&fs, "MSH-11.1", 202, 'E');
}

Test(v2_validate, e203_unsupported_version, .init = up, .fini = down) {
    hub_v2_findings fs = run(replace(ADT, "|P|2.5.1\r", "|P|3.0\r"), NULL, NULL);
    v2_finding_must(&fs, "MSH-12", 203, 'E');
    fs = run(replace(ADT, "|P|2.5.1\r", "|P|banana\r"), NULL, NULL);
    v2_finding_must(&fs, "MSH-12", 203, 'E');
}

Test(v2_validate, w203_newer_version_falls_back, .init = up, .fini = down) {
    hub_v2_findings fs = run(replace(ADT, "|P|2.5.1\r", "|P|2.9\r"), NULL, NULL);
    const hub_v2_finding *f = v2_finding_must(&fs, "MSH-12", 203, 'W');
    cr_assert(strstr(f->text, "2.8"));
    cr_assert_str_eq(fs.version, "2.8");
    cr_assert_eq(fs.nerrors, 0);
}

Test(v2_validate, newer_segments_warn_after_fallback, .init = up, .fini = down) {
    /* OH1 is not a segment of the newest profile (2.8); with a 2.9
     * message it is a warning, with a 2.5.1 message an error */
    char *m = replace(replace(ADT, "|P|2.5.1\r", "|P|2.9\r"), "PV1|", "OH1|1\rPV1|");
    hub_v2_findings fs = run(m, NULL, strict_order());
    v2_finding_must(&fs, "OH1", 100, 'W');
    cr_assert_eq(fs.nerrors, 0);
    fs = run(replace(ADT, "PV1|", "OH1|1\rPV1|"), NULL, strict_order());
    v2_finding_must(&fs, "OH1", 100, 'E');
}

Test(v2_validate, e207_profile_cannot_be_loaded, .init = up, .fini = down) {
    char dir[] = "/tmp/hub_v2prof_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/base", dir);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/base/versions.txt", dir);
    FILE *f = fopen(path, "w");
    fputs("2.5.1\n", f);
    fclose(f);
    snprintf(path, sizeof path, "%s/base/tables.json", dir);
    f = fopen(path, "w");
    fputs("{}", f);
    fclose(f);
    snprintf(path, sizeof path, "%s/base/v2.5.1.json", dir);
    f = fopen(path, "w");
    fputs("{\"events\": [", f); /* truncated */
    fclose(f);
    hub_v2_profset *bad;
    hub_err err;
    cr_assert_eq(hub_v2_profset_open(dir, &bad, &err), HUB_OK);
    hub_v2_findings fs;
    hub_v2_policy off;
    hub_v2_policy_default(&off);
    for (int r = 0; r < HUB_V2R__COUNT; r++) off.sev[r] = 0; /* 207 ignores it */
    hub_v2_validate_opts o = {.policy = &off};
    cr_assert_eq(hub_v2_validate(&arena, bad, parse(ADT), &o, &fs, &err), HUB_OK);
    cr_assert_eq(fs.n, 1);
    cr_assert_eq(fs.items[0].code, 207);
    cr_assert_eq(fs.items[0].severity, 'E');
    hub_v2_profset_close(bad);
    unlink(path);
    snprintf(path, sizeof path, "%s/base/tables.json", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/base/versions.txt", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/base", dir);
    rmdir(path);
    rmdir(dir);
}

/* ---- site profiles -------------------------------------------------------------------- */

Test(v2_validate, site_requires_assigning_authority, .init = up, .fini = down) {
    hub_v2_site *s = site_of("{\"name\":\"t\",\"fields\":{\"PID-3.4\":{\"usage\":\"R\"}}}");
    hub_v2_findings fs = run(ADT, s, NULL);
    cr_assert_eq(fs.n, 0);
    fs = run(replace(ADT, "12345^^^HOSP^MR", "12345^^^^MR"), s, NULL);
    const hub_v2_finding *f = v2_finding_must(&fs, "PID-3.4", 101, 'E');
    cr_assert_eq(f->loc.rep, 1);
    cr_assert_eq(f->loc.comp, 4);
    /* the second repetition is checked too */
    fs = run(replace(ADT, "12345^^^HOSP^MR", "12345^^^HOSP^MR~678^^^^MR"), s, NULL);
    v2_finding_must(&fs, "PID-3(2).4", 101, 'E');
    /* without the site profile, clean */
    fs = run(replace(ADT, "12345^^^HOSP^MR", "12345^^^^MR"), NULL, NULL);
    cr_assert_eq(fs.n, 0);
    hub_v2_site_free(s);
}

Test(v2_validate, site_restricts_codes, .init = up, .fini = down) {
    hub_v2_site *s = site_of("{\"name\":\"t\",\"fields\":{\"PID-8\":{\"codes\":[\"F\",\"M\"]}}}");
    hub_v2_findings fs = run(replace(ADT, "19800101|M", "19800101|U"), s, NULL);
    v2_finding_must(&fs, "PID-8", 103, 'E');
    fs = run(ADT, s, NULL);
    cr_assert_eq(fs.n, 0);
    hub_v2_site_free(s);
}

Test(v2_validate, site_unsupported_field, .init = up, .fini = down) {
    hub_v2_site *s = site_of("{\"name\":\"t\",\"fields\":{\"PID-19\":{\"usage\":\"X\"}},"
                             "\"policy\":{\"field_unsupported\":\"error\"}}");
    hub_v2_findings fs =
        run(replace(ADT, "19800101|M\r", "19800101|M|||||||||||123\r"), s, NULL);
    v2_finding_must(&fs, "PID-19", 102, 'E');
    hub_v2_site_free(s);
}

Test(v2_validate, site_z_segment_rules, .init = up, .fini = down) {
    char *m = replace(ADT, "PV1|", "ZPI|1\rPV1|");
    hub_v2_site *listed = site_of("{\"name\":\"t\",\"z_segments\":[\"ZPI\"]}");
    hub_v2_findings fs = run(m, listed, NULL);
    cr_assert_eq(fs.n, 0);
    fs = run(replace(m, "ZPI|", "ZXX|"), listed, NULL);
    v2_finding_must(&fs, "ZXX", 100, 'E');
    hub_v2_site *declared = site_of(
        "{\"name\":\"t\",\"z_segments\":\"declared\","
        "\"structures\":{\"ADT_A01\":[\"MSH\",\"EVN\",\"PID\",\"ZPI?\",\"PV1\"]}}");
    fs = run(m, declared, NULL);
    if (fs.n) v2_findings_dump(&fs);
    cr_assert_eq(fs.n, 0);
    /* declared, but before PID: the matcher is greedy, so the ZPI is taken
     * as placed after a missing PID, and the PID that follows is out of
     * order */
    fs = run(replace(ADT, "PID|", "ZPI|1\rPID|"), declared, strict_order());
    v2_finding_must(&fs, "PID", 100, 'E');
    cr_assert_eq(fs.nerrors, 2);
    hub_v2_site_free(listed);
    hub_v2_site_free(declared);
}

Test(v2_validate, site_accepted_messages, .init = up, .fini = down) {
    hub_v2_site *s = site_of("{\"name\":\"t\",\"messages\":[\"ADT^A01\",\"ACK\"]}");
    hub_v2_findings fs = run(ADT, s, NULL);
    cr_assert_eq(fs.n, 0);
    fs = run(replace(ADT, "ADT^A01^ADT_A01", "ADT^A04"), s, NULL);
    v2_finding_must(&fs, "MSH-9.2", 201, 'E');
    fs = run(ORU, s, NULL);
    v2_finding_must(&fs, "MSH-9.1", 200, 'E');
    hub_v2_site_free(s);
}

Test(v2_validate, site_base_version_wins, .init = up, .fini = down) {
    hub_v2_site *s = site_of("{\"name\":\"t\",\"base\":\"2.4\"}");
    hub_v2_findings fs = run(ADT, s, NULL);
    cr_assert_str_eq(fs.version, "2.4");
    hub_v2_site_free(s);
}

Test(v2_validate, shipped_example_site_profile, .init = up, .fini = down) {
    hub_v2_site *s;
    hub_err err;
    cr_assert_eq(hub_v2_site_load(set, CONF "/site/example-lab.json", &s, &err), HUB_OK,
                 "%s: %s", err.where, err.msg);
    cr_assert_str_eq(hub_v2_site_name(s), "example-lab");
    hub_v2_findings fs = run(ADT, s, NULL);
    cr_assert_eq(fs.n, 0);
    fs = run(ORU, s, NULL);
    if (fs.n) v2_findings_dump(&fs);
    cr_assert_eq(fs.n, 0);
    char *bad = replace(ADT, "12345^^^HOSP^MR||DOE^JOHN^^^^^L||19800101|M",
                        "12345^^^^MR||DOEDOEDOEDOEDOEDOEDOEDOEDOEDOEDOEDOEDOEDOEDOEDOEDOEDOE^JOHN"
                        "^^^^^L||19800101|Q");
    fs = run(bad, s, NULL);
    v2_finding_must(&fs, "PID-3.4", 101, 'E');
    v2_finding_must(&fs, "PID-5.1", 102, 'E'); /* too_long raised to error by the site */
    v2_finding_must(&fs, "PID-8", 103, 'E');
    hub_v2_site_free(s);
}

/* ---- policy ------------------------------------------------------------------------------ */

Test(v2_validate, policy_switches_error_and_warning, .init = up, .fini = down) {
    char *m = replace(ADT, "19800101", "20230231");
    hub_v2_policy pol;
    hub_v2_policy_default(&pol);
    hub_err err;
    cr_assert_eq(hub_v2_policy_set(&pol, "date_impossible", "warning", &err), HUB_OK);
    hub_v2_findings fs = run(m, NULL, &pol);
    v2_finding_must(&fs, "PID-7", 102, 'W');
    cr_assert_eq(fs.nerrors, 0);
    cr_assert_eq(fs.nwarnings, 1);
    cr_assert_eq(hub_v2_policy_set(&pol, "date_impossible", "off", &err), HUB_OK);
    fs = run(m, NULL, &pol);
    cr_assert_eq(fs.n, 0);
    /* and back: a warning by default becomes an error */
    hub_v2_policy_default(&pol);
    cr_assert_eq(hub_v2_policy_set(&pol, "too_long", "error", &err), HUB_OK);
    fs = run(replace(ADT, "PID|1|", "PID|12345|"), NULL, &pol);
    v2_finding_must(&fs, "PID-1", 102, 'E');
}

Test(v2_validate, policy_bad_names) {
    hub_v2_policy pol;
    hub_v2_policy_default(&pol);
    hub_err err;
    cr_assert_eq(hub_v2_policy_set(&pol, "nope", "error", &err), HUB_E_ARG);
    cr_assert_str_eq(err.where, "policy");
    cr_assert_eq(hub_v2_policy_set(&pol, "too_long", "fatal", &err), HUB_E_ARG);
    cr_assert_str_eq(err.where, "severity");
    cr_assert_str_eq(hub_v2_rule_name(HUB_V2R_TOO_LONG), "too_long");
    cr_assert_null(hub_v2_rule_name(HUB_V2R__COUNT));
}

Test(v2_validate, max_findings_truncates, .init = up, .fini = down) {
    hub_v2_findings fs;
    hub_err err;
    hub_v2_validate_opts o = {.max = 2};
    char *m = replace(ADT, "PID|1||12345^^^HOSP^MR||DOE^JOHN^^^^^L||19800101|M",
                      "PID|A||||||20230231|Q");
    cr_assert_eq(hub_v2_validate(&arena, set, parse(m), &o, &fs, &err), HUB_OK);
    cr_assert_eq(fs.n, 2);
    cr_assert(fs.truncated);
}

/* ---- values and locations ------------------------------------------------------------------ */

Test(v2_validate, check_value_table) {
    static const struct {
        const char *dt, *v;
        int rule;
    } cases[] = {
        {"DTM", "2023", 0},
        {"DTM", "202301", 0},
        {"DTM", "20230115", 0},
        {"DTM", "2023011512", 0},
        {"DTM", "202301151230", 0},
        {"DTM", "20230115123045", 0},
        {"DTM", "20230115123045.1234", 0},
        {"DTM", "20230115123045.1234+0100", 0},
        {"DTM", "202301151230-0500", 0},
        {"DTM", "20240229", 0},
        {"DTM", "20230229", HUB_V2R_DATE_IMPOSSIBLE},
        {"DTM", "20231301", HUB_V2R_DATE_IMPOSSIBLE},
        {"DTM", "20230100", HUB_V2R_DATE_IMPOSSIBLE},
        {"DTM", "20230431", HUB_V2R_DATE_IMPOSSIBLE},
        {"DTM", "2023011524", HUB_V2R_DATE_IMPOSSIBLE},
        {"DTM", "202301152360", HUB_V2R_DATE_IMPOSSIBLE},
        {"DTM", "20230115235960", HUB_V2R_DATE_IMPOSSIBLE},
        {"DTM", "20230115+2500", HUB_V2R_DATE_IMPOSSIBLE},
        {"DTM", "20230115+0160", HUB_V2R_DATE_IMPOSSIBLE},
        {"DTM", "202", HUB_V2R_DATE_FORMAT},
        {"DTM", "2023011", HUB_V2R_DATE_FORMAT},
        {"DTM", "2023-01-15", HUB_V2R_DATE_FORMAT},
        {"DTM", "202301151230.5", HUB_V2R_DATE_FORMAT},
        {"DTM", "20230115123045.12345", HUB_V2R_DATE_FORMAT},
        {"DTM", "20230115+01", HUB_V2R_DATE_FORMAT},
        {"DTM", "20230115 ", HUB_V2R_DATE_FORMAT},
        {"TS", "20230231", HUB_V2R_DATE_IMPOSSIBLE},
        {"DT", "20230115", 0},
        {"DT", "202301", 0},
        {"DT", "2023011512", HUB_V2R_DATE_FORMAT},
        {"DT", "20230132", HUB_V2R_DATE_IMPOSSIBLE},
        {"TM", "1230", 0},
        {"TM", "123045.12-0500", 0},
        {"TM", "12:30", HUB_V2R_DATE_FORMAT},
        {"TM", "2430", HUB_V2R_DATE_IMPOSSIBLE},
        {"NM", "12", 0},
        {"NM", "-12.5", 0},
        {"NM", "+.5", 0},
        {"NM", "1e5", HUB_V2R_NUMBER},
        {"NM", "-", HUB_V2R_NUMBER},
        {"NM", "1.2.3", HUB_V2R_NUMBER},
        {"SI", "0", 0},
        {"SI", "12", 0},
        {"SI", "-1", HUB_V2R_NUMBER},
        {"ST", "anything", 0},
        {"DTM", "", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *why;
        int r = hub_v2_check_value(cases[i].dt, hub_slice_cstr(cases[i].v), &why);
        cr_expect_eq(r, cases[i].rule, "%s '%s': got %d (%s), want %d", cases[i].dt,
                     cases[i].v, r, why, cases[i].rule);
    }
}

/* ---- the ACK builder takes the findings ------------------------------------------------------- */

Test(v2_validate, findings_feed_the_ack, .init = up, .fini = down) {
    hub_v2_msg *m = parse(replace(ADT, "19800101", "20230231"));
    hub_v2_findings fs;
    hub_err err;
    cr_assert_eq(hub_v2_validate(&arena, set, m, NULL, &fs, &err), HUB_OK);
    cr_assert_eq(fs.nerrors, 1);
    hub_v2_ack_req req = {.status = HUB_V2_ACK_ERROR, .findings = fs.items,
                          .nfindings = fs.n, .control_id = "ACK1",
                          .timestamp = "20230115120001"};
    hub_buf out;
    hub_buf_init(&out);
    cr_assert_eq(hub_v2_ack_build(m, &req, &out, &err), HUB_OK);
    cr_assert_not_null(memmem(out.p, out.n, "MSA|AE|MSG1", 11));
    cr_assert_not_null(memmem(out.p, out.n, "\rERR|", 5));
    cr_assert_not_null(memmem(out.p, out.n, "102", 3));
    cr_assert_null(memmem(out.p, out.n, "20230231", 8), "no patient data in the ACK");
    hub_buf_release(&out);
}

/* ---- out of memory ---------------------------------------------------------------------------- */

Test(v2_validate, nomem_is_reported_without_leaks, .init = up, .fini = down) {
    const hub_v2_profile *p;
    hub_err err;
    cr_assert_eq(hub_v2_profset_get(set, "2.5.1", &p, &err), HUB_OK); /* preload */
    char *m = replace(ADT, "19800101", "20230231");
    hub_v2_msg *msg = parse(m);
    int ok = 0, nomem = 0;
    for (long n = 1; n < 200; n++) {
        hub_arena a;
        hub_arena_init(&a, 256);
        hub_v2_findings fs;
        hub_mem_fail_after(n);
        hub_status rc = hub_v2_validate(&a, set, msg, NULL, &fs, &err);
        hub_mem_fail_after(0);
        cr_assert(rc == HUB_OK || rc == HUB_E_NOMEM, "n=%ld rc=%d", n, rc);
        if (rc == HUB_OK) {
            ok++;
            cr_assert_eq(fs.nerrors, 1);
        } else {
            nomem++;
        }
        hub_arena_release(&a);
    }
    cr_assert_gt(nomem, 0);
    cr_assert_gt(ok, 0);
}

/* ---- corpus ------------------------------------------------------------------------------------- */

static long by_code[1000][3];
static size_t nfiles, nmsgs, nfailed;

static void walk(const char *dir, hub_v2_profset *s) {
    DIR *d = opendir(dir);
    if (d == NULL) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(path, &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) {
            walk(path, s);
            continue;
        }
        size_t L = strlen(e->d_name);
        if (L > 3 && (strcmp(e->d_name + L - 3, ".md") == 0 ||
                      strcmp(e->d_name + L - 4, ".tsv") == 0))
            continue;
        FILE *f = fopen(path, "rb");
        if (f == NULL) continue;
        char *buf = malloc((size_t)st.st_size + 1);
        size_t n = fread(buf, 1, (size_t)st.st_size, f);
        fclose(f);
        nfiles++;
        hub_arena a;
        hub_arena_init(&a, 1 << 16);
        hub_v2_batch b;
        hub_err err;
        if (hub_v2_batch_parse(&a, buf, n, NULL, &b, &err) == HUB_OK) {
            for (size_t k = 0; k < b.nmsgs; k++) {
                if (b.msgs[k] == NULL) {
                    nfailed++;
                    continue;
                }
                nmsgs++;
                hub_v2_findings fs;
                cr_assert_eq(hub_v2_validate(&a, s, b.msgs[k], NULL, &fs, &err), HUB_OK,
                             "%s", path);
                for (size_t i = 0; i < fs.n; i++) {
                    int c = fs.items[i].code;
                    int sv = fs.items[i].severity == 'E' ? 0 : fs.items[i].severity == 'W' ? 1 : 2;
                    if (c >= 0 && c < 1000) by_code[c][sv]++;
                    cr_assert_not_null(fs.items[i].text);
                    cr_assert(c >= 100 && c <= 207, "%s: code %d", path, c);
                }
            }
        } else {
            nfailed++;
        }
        hub_arena_release(&a);
        free(buf);
    }
    closedir(d);
}

Test(v2_validate, corpus_validates_without_crashing, .init = up, .fini = down, .timeout = 300) {
    const char *dir = HUB_SHARED_DIR "/corpus/hl7v2";
    struct stat st;
    if (stat(dir, &st) != 0) cr_skip_test("corpus absent: %s", dir);
    walk(dir, set);
    printf("v2_validate corpus: %zu files, %zu messages validated, %zu not parsed\n", nfiles,
           nmsgs, nfailed);
    printf("  code   errors warnings    infos  (%s)\n", hub_v2_errcode_text(0));
    for (int c = 0; c < 1000; c++)
        if (by_code[c][0] || by_code[c][1] || by_code[c][2])
            printf("  %4d %8ld %8ld %8ld  %s\n", c, by_code[c][0], by_code[c][1], by_code[c][2],
                   hub_v2_errcode_text(c));
    cr_assert_gt(nmsgs, 0);
}

/* ---- hub validate ------------------------------------------------------------------------------- */

static char tmpdir[64];

static void cli_up(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/hub_validate_XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
}

static void cli_down(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    cr_assert_eq(system(cmd), 0);
}

static const char *tmpfile_with(const char *name, const char *text) {
    static char path[8][160];
    static int k;
    char *p = path[k++ % 8];
    snprintf(p, 160, "%s/%s", tmpdir, name);
    FILE *f = fopen(p, "wb");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    return p;
}

/* Runs `hub validate ARGS` in the temp dir; stdout into out, stderr into
 * err; returns the exit status. */
static int cli(const char *args, char *out, size_t outn, char *err, size_t errn) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' validate %s 2>stderr.txt", tmpdir, HUB_BIN, args);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t n = fread(out, 1, outn - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    char ep[160];
    snprintf(ep, sizeof ep, "%s/stderr.txt", tmpdir);
    FILE *f = fopen(ep, "rb");
    n = f ? fread(err, 1, errn - 1, f) : 0;
    err[n] = '\0';
    if (f) fclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(v2_validate_cli, clean_file_exits_0, .init = cli_up, .fini = cli_down) {
    tmpfile_with("adt.hl7", ADT);
    char out[4096], err[1024];
    cr_assert_eq(cli("adt.hl7", out, sizeof out, err, sizeof err), 0, "%s%s", out, err);
    cr_assert_str_eq(out, "");
}

Test(v2_validate_cli, line_format_and_exit_1, .init = cli_up, .fini = cli_down) {
    hub_arena_init(&arena, 4096);
    char *bad = replace(ADT, "19800101", "20230231");
    bad = replace(bad, PV1, "");
    tmpfile_with("adt.hl7", bad);
    hub_arena_release(&arena);
    char out[4096], err[1024];
    cr_assert_eq(cli("adt.hl7", out, sizeof out, err, sizeof err), 1, "%s%s", out, err);
    cr_assert(strstr(out, "adt.hl7:PID@3:PID-7: error: impossible date (102)\n"), "%s", out);
    cr_assert(strstr(out, "adt.hl7:PV1:PV1: error: required segment 'PV1' missing (100)\n"),
              "%s", out);
    cr_assert_null(strstr(out, "20230231"), "no patient data");
}

Test(v2_validate_cli, warnings_only_exit_0_and_quiet, .init = cli_up, .fini = cli_down) {
    hub_arena_init(&arena, 4096);
    tmpfile_with("w.hl7", replace(ADT, "PID|1|", "PID|12345|"));
    hub_arena_release(&arena);
    char out[4096], err[1024];
    cr_assert_eq(cli("w.hl7", out, sizeof out, err, sizeof err), 0);
    cr_assert(strstr(out, "w.hl7:PID@3:PID-1: warning: value too long (5 > 4) (102)"), "%s", out);
    cr_assert_eq(cli("--quiet w.hl7", out, sizeof out, err, sizeof err), 0);
    cr_assert_str_eq(out, "");
    cr_assert_eq(cli("--policy too_long=error w.hl7", out, sizeof out, err, sizeof err), 1);
    cr_assert(strstr(out, "PID-1: error: value too long"), "%s", out);
}

Test(v2_validate_cli, site_profile_flag, .init = cli_up, .fini = cli_down) {
    hub_arena_init(&arena, 4096);
    tmpfile_with("a.hl7", replace(ADT, "12345^^^HOSP^MR", "12345^^^^MR"));
    hub_arena_release(&arena);
    char out[4096], err[1024];
    cr_assert_eq(cli("a.hl7", out, sizeof out, err, sizeof err), 0);
    cr_assert_eq(cli("--profile " CONF "/site/example-lab.json a.hl7", out, sizeof out, err,
                     sizeof err),
                 1);
    cr_assert(strstr(out, "a.hl7:PID@3:PID-3.4: error:"), "%s", out);
    cr_assert(strstr(out, "(101)"), "%s", out);
    tmpfile_with("bad.json", "{\"name\":\"x\",\"oops\":1}");
    cr_assert_eq(cli("--profile bad.json a.hl7", out, sizeof out, err, sizeof err), 1);
    cr_assert(strstr(err, "unknown key 'oops'"), "%s", err);
}

Test(v2_validate_cli, several_messages_are_numbered, .init = cli_up, .fini = cli_down) {
    hub_arena_init(&arena, 4096);
    char *two = hub_arena_sprintf(&arena, "%s%s", ADT, replace(ADT, "19800101", "19800132"));
    tmpfile_with("two.hl7", two);
    hub_arena_release(&arena);
    char out[4096], err[1024];
    cr_assert_eq(cli("two.hl7", out, sizeof out, err, sizeof err), 1);
    cr_assert(strstr(out, "two.hl7#2:PID@3:PID-7: error: impossible date (102)"), "%s", out);
    cr_assert_null(strstr(out, "two.hl7#1:"), "%s", out);
}

Test(v2_validate_cli, unparsable_and_unreadable, .init = cli_up, .fini = cli_down) {
    tmpfile_with("junk.hl7", "this is not hl7\r");
    char out[4096], err[1024];
    cr_assert_eq(cli("junk.hl7", out, sizeof out, err, sizeof err), 1);
    cr_assert(strstr(out, "junk.hl7:-:-: error: cannot parse"), "%s", out);
    cr_assert_eq(cli("missing.hl7", out, sizeof out, err, sizeof err), 1);
    cr_assert(strstr(err, "missing.hl7: cannot read"), "%s", err);
}

Test(v2_validate_cli, usage_errors_exit_2_with_one_line, .init = cli_up, .fini = cli_down) {
    char out[4096], err[1024];
    const char *bad[] = {"", "--bogus x.hl7", "--profile", "--policy nope=error x.hl7",
                         "--policy too_long=fatal x.hl7", "--policy too_long x.hl7"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cr_assert_eq(cli(bad[i], out, sizeof out, err, sizeof err), 2, "'%s'", bad[i]);
        char *nl = strchr(err, '\n');
        cr_assert(nl && nl[1] == '\0', "'%s': one line, got '%s'", bad[i], err);
        cr_assert(strncmp(err, "hub validate: ", 14) == 0, "%s", err);
    }
    cr_assert_eq(cli("--help", out, sizeof out, err, sizeof err), 0);
    cr_assert(strstr(out, "usage: hub validate"));
}
