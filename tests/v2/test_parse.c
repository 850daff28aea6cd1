/* Parsing: delimiters, terminators, structure, errors, limits. */
#include "v2_test.h"

#include <stdlib.h>

static hub_arena A;
static void setup(void) { hub_arena_init(&A, 4096); }
static void teardown(void) { hub_arena_release(&A); }
TestSuite(v2_parse, .init = setup, .fini = teardown);

#define ADT                                                                    \
    "MSH|^~\\&|SND|FAC|RCV|RFAC|20260101120000||ADT^A01^ADT_A01|CTRL1|P|2.5.1\r" \
    "EVN|A01|20260101120000\r"                                                 \
    "PID|1||123^^^MRN~456^^^SSN||DOE^JOHN^Q||19800101|M|||1 MAIN ST^^TOWN^ST^12345\r" \
    "PV1|1|I\r"

Test(v2_parse, basic_structure) {
    hub_v2_msg *m = v2_parse_ok(&A, ADT);
    cr_assert_eq(hub_v2_seg_count(m), 4);
    v2_assert_slice(hub_v2_seg_id(m, 2), "PID");
    cr_assert_eq(hub_v2_field_count(m, 0), 12);
    v2_assert_slice(hub_v2_at(m, 0, 1, 0, 0, 0), "|");
    v2_assert_slice(hub_v2_at(m, 0, 2, 0, 0, 0), "^~\\&");
    cr_assert_eq(hub_v2_rep_count(m, 0, 2), 1);
    cr_assert_eq(hub_v2_comp_count(m, 0, 2, 1), 1);
    const hub_v2_msh *h = hub_v2_msg_msh(m);
    v2_assert_slice(h->sending_app, "SND");
    v2_assert_slice(h->msg_code, "ADT");
    v2_assert_slice(h->trigger, "A01");
    v2_assert_slice(h->structure, "ADT_A01");
    v2_assert_slice(h->control_id, "CTRL1");
    v2_assert_slice(h->processing_id, "P");
    v2_assert_slice(h->version, "2.5.1");
    cr_assert_null(h->accept_ack.p);
    cr_assert_eq(hub_v2_msg_charset(m), HUB_V2_CS_ASCII);
    v2_assert_slice(hub_v2_seg_raw(m, 3), "PV1|1|I");
    cr_assert_eq(hub_v2_seg_find(m, "PV1", 0, 1), 3);
    cr_assert_eq(hub_v2_seg_find(m, "OBX", 0, 1), SIZE_MAX);
}

Test(v2_parse, reps_components_subcomponents) {
    hub_v2_msg *m = v2_parse_ok(&A, "MSH|^~\\&|A|B\rPID|1||1^^^X&Y&Z~2^^^W||\r");
    cr_assert_eq(hub_v2_rep_count(m, 1, 3), 2);
    cr_assert_eq(hub_v2_comp_count(m, 1, 3, 1), 4);
    cr_assert_eq(hub_v2_sub_count(m, 1, 3, 1, 4), 3);
    v2_assert_slice(hub_v2_at(m, 1, 3, 0, 0, 0), "1^^^X&Y&Z~2^^^W");
    v2_assert_slice(hub_v2_at(m, 1, 3, 1, 0, 0), "1^^^X&Y&Z");
    v2_assert_slice(hub_v2_at(m, 1, 3, 2, 1, 0), "2");
    v2_assert_slice(hub_v2_at(m, 1, 3, 1, 4, 2), "Y");
    v2_assert_slice(hub_v2_at(m, 1, 3, 1, 2, 0), "");
    v2_assert_slice(hub_v2_at(m, 1, 3, 3, 0, 0), NULL);
    v2_assert_slice(hub_v2_at(m, 1, 3, 1, 5, 0), NULL);
    v2_assert_slice(hub_v2_at(m, 1, 3, 1, 4, 4), NULL);
    /* trailing empty fields are kept and counted */
    cr_assert_eq(hub_v2_field_count(m, 1), 5);
    v2_assert_slice(hub_v2_at(m, 1, 5, 0, 0, 0), "");
    v2_assert_slice(hub_v2_at(m, 1, 6, 0, 0, 0), NULL);
    cr_assert_eq(hub_v2_rep_count(m, 1, 5), 1);
    cr_assert_eq(hub_v2_rep_count(m, 1, 6), 0);
}

Test(v2_parse, null_is_not_empty) {
    hub_v2_msg *m = v2_parse_ok(&A, "MSH|^~\\&\rPID|\"\"||x\r");
    hub_slice null = hub_v2_at(m, 1, 1, 0, 0, 0), empty = hub_v2_at(m, 1, 2, 0, 0, 0);
    cr_assert(hub_v2_is_null(null));
    cr_assert_not(hub_v2_is_null(empty));
    cr_assert_not_null(empty.p);
    cr_assert_eq(empty.n, 0);
    hub_v2_text_out t;
    cr_assert_eq(hub_v2_decode(&A, m, null, &t, NULL), HUB_OK);
    cr_assert_eq(t.flags, HUB_V2_TEXT_NULL);
    cr_assert_eq(hub_v2_decode(&A, m, empty, &t, NULL), HUB_OK);
    cr_assert_eq(t.flags, 0);
}

/* ---- delimiter sets ---- */

Test(v2_parse, delims_standard) {
    hub_v2_delims d = hub_v2_msg_delims(v2_parse_ok(&A, "MSH|^~\\&|A\r"));
    cr_assert(d.field == '|' && d.comp == '^' && d.rep == '~' && d.esc == '\\' &&
              d.sub == '&' && d.trunc == 0);
}

Test(v2_parse, delims_custom) {
    hub_v2_msg *m = v2_parse_ok(&A, "MSH#!@%*#SND#FAC\rPID#1##12!!!MRN@34\r");
    hub_v2_delims d = hub_v2_msg_delims(m);
    cr_assert(d.field == '#' && d.comp == '!' && d.rep == '@' && d.esc == '%' &&
              d.sub == '*');
    v2_assert_slice(hub_v2_at(m, 0, 3, 0, 0, 0), "SND");
    v2_assert_slice(hub_v2_at(m, 1, 3, 1, 4, 0), "MRN");
    v2_assert_slice(hub_v2_at(m, 1, 3, 2, 0, 0), "34");
}

Test(v2_parse, delims_truncation_v27) {
    hub_v2_msg *m = v2_parse_ok(&A, "MSH|^~\\&#|A||||||||P|2.7\r");
    cr_assert_eq(hub_v2_msg_delims(m).trunc, '#');
    size_t n;
    hub_v2_msg_warnings(m, &n);
    cr_assert_eq(n, 0);
}

Test(v2_parse, delims_truncation_before_v27_warns) {
    hub_v2_msg *m = v2_parse_ok(&A, "MSH|^~\\&#|A||||||||P|2.5.1\r");
    cr_assert_eq(hub_v2_msg_delims(m).trunc, '#');
    size_t n;
    const hub_v2_finding *w = hub_v2_msg_warnings(m, &n);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(w[0].loc.seg_id, "MSH");
    cr_assert_eq(w[0].loc.field, 2);
    cr_assert_eq(w[0].severity, 'W');
}

Test(v2_parse, delims_three_and_two_chars) {
    hub_v2_delims d = hub_v2_msg_delims(v2_parse_ok(&A, "MSH|^~\\|A\r"));
    cr_assert(d.esc == '\\' && d.sub == 0);
    d = hub_v2_msg_delims(v2_parse_ok(&A, "MSH|^~|A\r"));
    cr_assert(d.comp == '^' && d.rep == '~' && d.esc == 0 && d.sub == 0);
}

Test(v2_parse, delims_doubled_escape_quirk) {
    hub_v2_msg *m = v2_parse_ok(&A, "MSH|^~\\\\&|A\rPID|1|a&b\r");
    hub_v2_delims d = hub_v2_msg_delims(m);
    cr_assert(d.esc == '\\' && d.sub == '&' && d.trunc == 0);
    v2_assert_slice(hub_v2_at(m, 1, 2, 1, 1, 2), "b");
    size_t n;
    hub_v2_msg_warnings(m, &n);
    cr_assert_eq(n, 1);
}

static void expect_err(const char *s, size_t n, hub_status code, const char *where) {
    hub_v2_msg *m = (hub_v2_msg *)1;
    hub_err err;
    hub_err_clear(&err);
    cr_assert_eq(hub_v2_parse(&A, s, n, NULL, &m, &err), code, "got %s (%s: %s)",
                 hub_status_name(err.code), err.where, err.msg);
    cr_assert_null(m);
    cr_assert_str_eq(err.where, where);
}

Test(v2_parse, delims_invalid) {
    expect_err("MSH|^^\\&|A\r", 11, HUB_E_PARSE, "MSH-2");     /* repeated */
    expect_err("MSH|^|A\r", 8, HUB_E_PARSE, "MSH-2");          /* one char */
    expect_err("MSH||A\r", 7, HUB_E_PARSE, "MSH-2");           /* empty */
    expect_err("MSH|", 4, HUB_E_PARSE, "MSH-2");               /* nothing */
    expect_err("MSH|^A\\&|A\r", 11, HUB_E_PARSE, "MSH-2");     /* letter */
    expect_err("MSH1^~\\&|A\r", 11, HUB_E_PARSE, "MSH-1");    /* digit */
    expect_err("MSH\r^~\\&|A\r", 11, HUB_E_PARSE, "MSH-1");   /* CR */
}

/* ---- terminators, BOM, blank lines ---- */

static void check_three_segs(const char *s) {
    hub_v2_msg *m = v2_parse_ok(&A, s);
    cr_assert_eq(hub_v2_seg_count(m), 3, "segments: %zu", hub_v2_seg_count(m));
    v2_assert_slice(hub_v2_seg_id(m, 1), "PID");
    v2_assert_slice(hub_v2_at(m, 2, 1, 0, 0, 0), "1");
    hub_buf b;
    hub_buf_init(&b);
    cr_assert_eq(hub_v2_encode(m, &b, NULL), HUB_OK);
    cr_assert_eq(b.n, strlen(s));
    cr_assert_eq(memcmp(b.p, s, b.n), 0);
    hub_buf_release(&b);
}

Test(v2_parse, terminator_cr) { check_three_segs("MSH|^~\\&|A\rPID|1\rPV1|1\r"); }
Test(v2_parse, terminator_lf) { check_three_segs("MSH|^~\\&|A\nPID|1\nPV1|1\n"); }
Test(v2_parse, terminator_crlf) { check_three_segs("MSH|^~\\&|A\r\nPID|1\r\nPV1|1\r\n"); }
Test(v2_parse, trailing_separator_at_end_of_input) {
    /* found by fuzz_v2: an empty last field right at the end */
    hub_v2_msg *m = v2_parse_ok(&A, "MSH|^~|");
    cr_assert_eq(hub_v2_seg_count(m), 1);
    cr_assert_eq(hub_v2_field_count(m, 0), 3);
    m = v2_parse_ok(&A, "MSH|^~\\&|A\rPID|");
    cr_assert_eq(hub_v2_seg_count(m), 2);
    cr_assert_eq(hub_v2_field_count(m, 1), 1);
    check_three_segs("MSH|^~\\&|A\rPID|1\rPV1|1|");
}

Test(v2_parse, terminator_mixed_and_none_at_end) {
    check_three_segs("MSH|^~\\&|A\r\nPID|1\nPV1|1");
}
Test(v2_parse, blank_and_space_lines) {
    check_three_segs("\r\nMSH|^~\\&|A\r\n\r\nPID|1\r\n \r\nPV1|1\n\n\n");
}
Test(v2_parse, bom_skipped_and_kept) {
    const char *s = "\xEF\xBB\xBFMSH|^~\\&|A\rPID|1\rPV1|1\r";
    check_three_segs(s);
    cr_assert(hub_v2_msg_has_bom(v2_parse_ok(&A, s)));
}

Test(v2_parse, charset_from_msh18) {
    cr_assert_eq(hub_v2_msg_charset(v2_parse_ok(&A, "MSH|^~\\&||||||||||||||||8859/1\r")),
                 HUB_V2_CS_LATIN1);
    cr_assert_eq(hub_v2_msg_charset(
                     v2_parse_ok(&A, "MSH|^~\\&||||||||||||||||UNICODE UTF-8\r")),
                 HUB_V2_CS_UTF8);
    hub_v2_msg *m = v2_parse_ok(&A, "MSH|^~\\&||||||||||||||||EBCDIC\r");
    cr_assert_eq(hub_v2_msg_charset(m), HUB_V2_CS_OTHER);
    size_t n;
    const hub_v2_finding *w = hub_v2_msg_warnings(m, &n);
    cr_assert_eq(n, 1);
    cr_assert_eq(w[0].loc.field, 18);
}

/* ---- structural errors ---- */

Test(v2_parse, empty_input) {
    expect_err("", 0, HUB_E_PARSE, "message");
    expect_err("\r\n\r\n", 4, HUB_E_PARSE, "message");
    expect_err("\xEF\xBB\xBF", 3, HUB_E_PARSE, "message");
}

Test(v2_parse, no_msh) {
    expect_err("PID|1\r", 6, HUB_E_PARSE, "MSH");
    expect_err("MS", 2, HUB_E_PARSE, "MSH");
}

Test(v2_parse, bad_segment_id) {
    expect_err("MSH|^~\\&|A\rPIDX|1\r", 18, HUB_E_PARSE, "seg 2");
    expect_err("MSH|^~\\&|A\rPV|1\r", 16, HUB_E_PARSE, "seg 2");
    expect_err("MSH|^~\\&|A\rpid|1\r", 17, HUB_E_PARSE, "seg 2");
    /* an LF inside a field splits the segment: the rest is no segment */
    expect_err("MSH|^~\\&|A\rOBR|1|Newborn\npanel x|2\r", 34, HUB_E_PARSE, "seg 3");
}

Test(v2_parse, second_msh_needs_batch_parser) {
    expect_err("MSH|^~\\&|A\rMSH|^~\\&|B\r", 22, HUB_E_PARSE, "seg 2");
    expect_err("MSH|^~\\&|A\rBTS|1\r", 17, HUB_E_PARSE, "seg 2");
}

Test(v2_parse, require_msh9_10) {
    hub_v2_parse_opts o = {.require_msh9_10 = true};
    hub_v2_msg *m;
    hub_err err;
    const char *s = "MSH|^~\\&|A|B|C|D|20260101||||P|2.5\r";
    cr_assert_eq(hub_v2_parse(&A, s, strlen(s), &o, &m, &err), HUB_E_PARSE);
    cr_assert_str_eq(err.where, "MSH-9");
    s = "MSH|^~\\&|A|B|C|D|20260101||ADT^A01||P|2.5\r";
    cr_assert_eq(hub_v2_parse(&A, s, strlen(s), &o, &m, &err), HUB_E_PARSE);
    cr_assert_str_eq(err.where, "MSH-10");
    cr_assert_eq(hub_v2_parse(&A, s, strlen(s), NULL, &m, &err), HUB_OK);
}

/* ---- limits ---- */

static char *repeat_build(const char *head, const char *unit, size_t times,
                          const char *tail) {
    size_t hl = strlen(head), ul = strlen(unit), tl = strlen(tail);
    char *s = malloc(hl + ul * times + tl + 1);
    memcpy(s, head, hl);
    for (size_t i = 0; i < times; i++) memcpy(s + hl + i * ul, unit, ul);
    memcpy(s + hl + ul * times, tail, tl + 1);
    return s;
}

Test(v2_parse, limit_fields) {
    char *ok = repeat_build("MSH|^~\\&\rPID", "|", HUB_MAX_FIELDS, "\r");
    hub_v2_msg *m = v2_parse_ok(&A, ok);
    cr_assert_eq(hub_v2_field_count(m, 1), HUB_MAX_FIELDS);
    char *bad = repeat_build("MSH|^~\\&\rPID", "|", HUB_MAX_FIELDS + 1, "\r");
    expect_err(bad, strlen(bad), HUB_E_LIMIT, "PID");
    free(ok);
    free(bad);
}

Test(v2_parse, limit_repetitions) {
    char *bad = repeat_build("MSH|^~\\&\rPID|1||", "x~", HUB_MAX_REPS, "x\r");
    expect_err(bad, strlen(bad), HUB_E_LIMIT, "PID-3");
    free(bad);
}

Test(v2_parse, limit_components) {
    char *bad = repeat_build("MSH|^~\\&\rOBX|1|ST|", "^", HUB_MAX_COMPONENTS, "\r");
    expect_err(bad, strlen(bad), HUB_E_LIMIT, "OBX-3");
    char *subs = repeat_build("MSH|^~\\&\rOBX|1|ST|", "&", HUB_MAX_SUBCOMPONENTS, "\r");
    expect_err(subs, strlen(subs), HUB_E_LIMIT, "OBX-3");
    free(bad);
    free(subs);
}

Test(v2_parse, limit_field_bytes) {
    size_t n = HUB_MAX_FIELD + 32;
    char *s = malloc(n);
    memcpy(s, "MSH|^~\\&\rOBX|1|ED|", 18);
    memset(s + 18, 'A', n - 18);
    expect_err(s, n, HUB_E_LIMIT, "OBX-3");
    free(s);
}

Test(v2_parse, limit_segments) {
    char *s = repeat_build("MSH|^~\\&", "\rNTE", HUB_MAX_SEGMENTS, "\r");
    expect_err(s, strlen(s), HUB_E_LIMIT, "message");
    free(s);
}

Test(v2_parse, out_of_memory_every_allocation) {
    /* Each allocation in turn fails: the answer is HUB_E_NOMEM, never a
     * crash, and the arena frees everything. */
    for (long k = 1; k < 40; k++) {
        hub_arena a;
        hub_arena_init(&a, 256);
        hub_mem_fail_after(k);
        hub_v2_msg *m;
        hub_err err;
        hub_status rc = hub_v2_parse(&a, ADT, strlen(ADT), NULL, &m, &err);
        hub_mem_fail_after(0);
        cr_assert(rc == HUB_OK || rc == HUB_E_NOMEM, "k=%ld rc=%s", k,
                  hub_status_name(rc));
        hub_arena_release(&a);
        if (rc == HUB_OK) break;
    }
}
