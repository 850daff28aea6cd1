/* Reading values: each escape, charsets, and escaping for writing. */
#include "v2_test.h"

static hub_arena A;
static void setup(void) { hub_arena_init(&A, 4096); }
static void teardown(void) { hub_arena_release(&A); }
TestSuite(v2_escape, .init = setup, .fini = teardown);

/* Decodes OBX-5 of a message whose OBX-5 is `value`. */
static hub_v2_text_out dec_in(const char *msh, const char *value) {
    char *s = hub_arena_sprintf(&A, "%s\rOBX|1|TX|||%s|x\r", msh, value);
    hub_v2_msg *m = v2_parse_ok(&A, s);
    hub_v2_text_out t;
    hub_err err;
    cr_assert_eq(hub_v2_decode(&A, m, hub_v2_at(m, 1, 5, 0, 0, 0), &t, &err), HUB_OK);
    cr_assert_eq(t.text.p[t.text.n], '\0');
    return t;
}
static hub_v2_text_out dec(const char *value) { return dec_in("MSH|^~\\&#|A||||||||P|2.7", value); }

#define expect_text(value, want)                                                \
    do {                                                                        \
        hub_v2_text_out t_ = dec(value);                                        \
        cr_assert_str_eq(t_.text.p, want);                                      \
        cr_assert_eq(t_.flags & ~(unsigned)HUB_V2_TEXT_TRUNCATED, 0, "flags %u", t_.flags); \
    } while (0)

Test(v2_escape, field_sep) { expect_text("a\\F\\b", "a|b"); }
Test(v2_escape, comp_sep) { expect_text("a\\S\\b", "a^b"); }
Test(v2_escape, sub_sep) { expect_text("a\\T\\b", "a&b"); }
Test(v2_escape, rep_sep) { expect_text("a\\R\\b", "a~b"); }
Test(v2_escape, escape_char) { expect_text("a\\E\\b", "a\\b"); }
Test(v2_escape, truncation_char) { expect_text("a\\P\\b", "a#b"); }
Test(v2_escape, hex_short) { expect_text("x\\X0D0A\\y", "x\r\ny"); }
Test(v2_escape, hex_long) { expect_text("\\X48656C6C6F2C20776F726C64\\", "Hello, world"); }
Test(v2_escape, hex_lower_case) { expect_text("\\X6a6b\\", "jk"); }
Test(v2_escape, line_break) { expect_text("one\\.br\\two", "one\ntwo"); }
Test(v2_escape, highlight_dropped) { expect_text("\\H\\bold\\N\\ text", "bold text"); }
Test(v2_escape, space_lines) {
    expect_text("a\\.sp\\b", "a\nb");
    expect_text("a\\.sp 3\\b", "a\n\n\nb");
    expect_text("a\\.sp3\\b", "a\n\n\nb");
}
Test(v2_escape, skip_and_indent) {
    expect_text("a\\.sk 2\\b", "a  b");
    expect_text("\\.in +4\\a\\.ti -2\\\\.fi\\\\.nf\\\\.ce\\b", "ab");
}

Test(v2_escape, local_escape_kept_verbatim) {
    hub_v2_text_out t = dec("a\\Zabc\\b");
    cr_assert_str_eq(t.text.p, "a\\Zabc\\b");
    cr_assert_eq(t.flags, 0);
}

Test(v2_escape, malformed_kept_and_flagged) {
    hub_v2_text_out t = dec("a\\Q\\b");
    cr_assert_str_eq(t.text.p, "a\\Q\\b");
    cr_assert(t.flags & HUB_V2_TEXT_BAD_ESCAPE);
    t = dec("unterminated \\F");
    cr_assert_str_eq(t.text.p, "unterminated \\F");
    cr_assert(t.flags & HUB_V2_TEXT_BAD_ESCAPE);
    t = dec("odd \\X414\\");
    cr_assert_str_eq(t.text.p, "odd \\X414\\");
    cr_assert(t.flags & HUB_V2_TEXT_BAD_ESCAPE);
    t = dec("empty \\\\ x");
    cr_assert(t.flags & HUB_V2_TEXT_BAD_ESCAPE);
}

Test(v2_escape, charset_switch_latin1) {
    /* ESC - A selects ISO-IR 100: \XE9\ is then e-acute */
    hub_v2_text_out t = dec("caf\\C2D41\\\\XE9\\\\C2842\\!");
    cr_assert_str_eq(t.text.p, "caf\xC3\xA9!");
    cr_assert_eq(t.flags, 0);
}

Test(v2_escape, charset_switch_utf8) {
    /* ESC % G selects ISO-IR 192 (UTF-8): the bytes after it are UTF-8 even
     * in an ASCII message; ESC % @ goes back */
    hub_v2_text_out t = dec("\\C2547\\\xC2\xB5g \\XE2809C\\q\\C2540\\.");
    cr_assert_str_eq(t.text.p, "\xC2\xB5g \xE2\x80\x9Cq.");
    cr_assert_eq(t.flags, 0);
    /* after returning to ASCII, a high byte is flagged again */
    t = dec("\\C2547\\\\C2540\\\xC2\xB5");
    cr_assert(t.flags & HUB_V2_TEXT_BAD_BYTES);
    /* ISO-IR 13/14 (JIS X 0201) and other single-byte sets: kept, flagged */
    t = dec("\\C2949\\x");
    cr_assert_str_eq(t.text.p, "\\C2949\\x");
    cr_assert(t.flags & HUB_V2_TEXT_BAD_ESCAPE);
}

Test(v2_escape, charset_multibyte_unsupported) {
    hub_v2_text_out t = dec("\\M2442\\x");
    cr_assert_str_eq(t.text.p, "\\M2442\\x");
    cr_assert(t.flags & HUB_V2_TEXT_BAD_ESCAPE);
    t = dec("\\C2842\\ok");
    cr_assert_eq(t.flags, 0);
    t = dec("\\C1234\\x");
    cr_assert(t.flags & HUB_V2_TEXT_BAD_ESCAPE);
}

Test(v2_escape, custom_delimiters) {
    char s[] = "MSH#!@%*#A\rOBX#1#TX###a%F%b%S%c%E%d%T%e%R%f\r";
    hub_v2_msg *m = v2_parse_ok(&A, s);
    cr_assert_str_eq(hub_v2_text(&A, m, hub_v2_at(m, 1, 5, 0, 0, 0)), "a#b!c%d*e@f");
}

Test(v2_escape, no_escape_char_declared) {
    hub_v2_msg *m = v2_parse_ok(&A, "MSH|^~|A\rOBX|1|TX|||a\\F\\b\r");
    cr_assert_str_eq(hub_v2_text(&A, m, hub_v2_at(m, 1, 5, 0, 0, 0)), "a\\F\\b");
}

Test(v2_escape, truncation_flag) {
    hub_v2_text_out t = dec("long valu#");
    cr_assert_str_eq(t.text.p, "long valu#");
    cr_assert(t.flags & HUB_V2_TEXT_TRUNCATED);
}

Test(v2_escape, absent_empty_null) {
    hub_v2_msg *m = v2_parse_ok(&A, "MSH|^~\\&\rOBX|\"\"||\r");
    cr_assert_str_eq(hub_v2_text(&A, m, hub_v2_at(m, 1, 9, 0, 0, 0)), "");
    cr_assert_str_eq(hub_v2_text(&A, m, hub_v2_at(m, 1, 2, 0, 0, 0)), "");
    cr_assert_str_eq(hub_v2_text(&A, m, hub_v2_at(m, 1, 1, 0, 0, 0)), "");
}

/* ---- charsets ---- */

#define MSH18(cs) "MSH|^~\\&||||||||||||||||" cs

Test(v2_escape, latin1_to_utf8) {
    hub_v2_text_out t = dec_in(MSH18("8859/1"), "Jos\xE9 M\xFCller");
    cr_assert_str_eq(t.text.p, "Jos\xC3\xA9 M\xC3\xBCller");
    cr_assert_eq(t.flags, 0);
}

Test(v2_escape, latin1_declared_but_utf8_bytes) {
    hub_v2_text_out t = dec_in(MSH18("8859/1"), "Jos\xC3\xA9");
    cr_assert_str_eq(t.text.p, "Jos\xC3\xA9");
    cr_assert(t.flags & HUB_V2_TEXT_BAD_BYTES);
    /* offset of the first offending byte in the whole input */
    size_t msh_len = strlen(MSH18("8859/1")) + 1;
    cr_assert_eq(t.bad_offset, msh_len + strlen("OBX|1|TX|||Jos"));
}

Test(v2_escape, latin1_c1_control_replaced) {
    hub_v2_text_out t = dec_in(MSH18("8859/1"), "a\x85" "b");
    cr_assert_str_eq(t.text.p, "a\xEF\xBF\xBD" "b");
    cr_assert(t.flags & HUB_V2_TEXT_BAD_BYTES);
}

Test(v2_escape, utf8_valid) {
    hub_v2_text_out t = dec_in(MSH18("UNICODE UTF-8"), "\xC2\xB5g/L \xE2\x80\x9Cq\xE2\x80\x9D");
    cr_assert_str_eq(t.text.p, "\xC2\xB5g/L \xE2\x80\x9Cq\xE2\x80\x9D");
    cr_assert_eq(t.flags, 0);
}

Test(v2_escape, utf8_invalid_replaced_with_position) {
    hub_v2_text_out t = dec_in(MSH18("UNICODE UTF-8"), "ab\xFF\xC3");
    cr_assert_str_eq(t.text.p, "ab\xEF\xBF\xBD\xEF\xBF\xBD");
    cr_assert(t.flags & HUB_V2_TEXT_BAD_BYTES);
    size_t msh_len = strlen(MSH18("UNICODE UTF-8")) + 1;
    cr_assert_eq(t.bad_offset, msh_len + strlen("OBX|1|TX|||ab"));
}

Test(v2_escape, ascii_declared_with_utf8_warns) {
    hub_v2_text_out t = dec_in("MSH|^~\\&", "\xC2\xB5g");
    cr_assert_str_eq(t.text.p, "\xC2\xB5g");
    cr_assert(t.flags & HUB_V2_TEXT_BAD_BYTES);
}

Test(v2_escape, overlong_and_surrogate_rejected) {
    hub_v2_text_out t = dec_in(MSH18("UNICODE UTF-8"), "\xC0\xAF\xED\xA0\x80");
    cr_assert(t.flags & HUB_V2_TEXT_BAD_BYTES);
    cr_assert_null(strstr(t.text.p, "\xC0"));
}

Test(v2_escape, charset_check_reports_positions) {
    const char *s = MSH18("UNICODE UTF-8") "\rPID|1||x\xFF\rOBX|1|TX||\\Q\\\r";
    hub_v2_msg *m = v2_parse_ok(&A, s);
    hub_v2_finding *f;
    size_t n = hub_v2_charset_check(&A, m, &f, 10);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(f[0].loc.seg_id, "PID");
    cr_assert_eq(f[0].loc.field, 3);
    cr_assert_eq(f[0].offset, (size_t)(strchr(s, '\xFF') - s));
    cr_assert_eq(f[0].severity, 'W');
    cr_assert_str_eq(f[1].loc.seg_id, "OBX");
    cr_assert_eq(f[1].loc.field, 4);
    cr_assert_eq(hub_v2_charset_check(&A, m, &f, 1), 1);
}

/* ---- escaping for writing ---- */

Test(v2_escape, escape_round_trip) {
    hub_v2_delims d = {'|', '^', '~', '\\', '&', '#'};
    hub_buf b;
    hub_buf_init(&b);
    cr_assert_eq(hub_v2_escape(hub_slice_cstr("a|b^c~d\\e&f#g\r\nh"), &d, &b), HUB_OK);
    cr_assert_str_eq(b.p, "a\\F\\b\\S\\c\\R\\d\\E\\e\\T\\f\\P\\g\\X0D\\\\X0A\\h");
    char *s = hub_arena_sprintf(&A, "MSH|^~\\&#|A||||||||P|2.7\rNTE|1||%s\r", b.p);
    hub_v2_msg *m = v2_parse_ok(&A, s);
    cr_assert_str_eq(hub_v2_text(&A, m, hub_v2_at(m, 1, 3, 0, 0, 0)), "a|b^c~d\\e&f#g\r\nh");
    hub_buf_release(&b);
}

Test(v2_escape, escape_custom_delims) {
    hub_v2_delims d = {'#', '!', '@', '%', '*', 0};
    hub_buf b;
    hub_buf_init(&b);
    cr_assert_eq(hub_v2_escape(hub_slice_cstr("1#2!3|^~&"), &d, &b), HUB_OK);
    cr_assert_str_eq(b.p, "1%F%2%S%3|^~&");
    hub_buf_release(&b);
}
