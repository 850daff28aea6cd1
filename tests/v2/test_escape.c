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
}

/* ---- ISO 2022 switches: \Cxxyy\ (single-byte sets), \Mxxyy[zz]\ ---- */

#define expect_flagless(value, want)                                            \
    do {                                                                        \
        hub_v2_text_out t_ = dec(value);                                        \
        cr_assert_str_eq(t_.text.p, want, "%s", value);                         \
        cr_assert_eq(t_.flags, 0, "%s: flags %u", value, t_.flags);             \
    } while (0)

Test(v2_escape, switch_8859_parts) {
    /* each ISO 8859 part HL7 table 0211 lists, by its ISO-IR designation */
    expect_flagless("\\C2D42\\\\XA3\\", "\xC5\x81");         /* IR 101: L stroke */
    expect_flagless("\\C2D43\\\\XA1\\", "\xC4\xA6");         /* IR 109: H stroke */
    expect_flagless("\\C2D44\\\\XA1\\", "\xC4\x84");         /* IR 110: A ogonek */
    expect_flagless("\\C2D4C\\\\XBF\\x", "\xD0\x9Fx");       /* IR 144: Cyrillic Pe */
    expect_flagless("\\C2D47\\\\XC7\\", "\xD8\xA7");         /* IR 127: Arabic alef */
    expect_flagless("\\C2D46\\\\XD9\\", "\xCE\xA9");         /* IR 126: Greek Omega */
    expect_flagless("\\C2D48\\\\XE0\\", "\xD7\x90");         /* IR 138: Hebrew alef */
    expect_flagless("\\C2D4D\\\\XDD\\", "\xC4\xB0");         /* IR 148: dotted I */
    expect_flagless("\\C2D62\\\\XA4\\", "\xE2\x82\xAC");     /* IR 203: euro */
    expect_flagless("\\C2D54\\\\XA1\\", "\xE0\xB8\x81");     /* IR 166: Thai ko kai */
}

Test(v2_escape, switch_lasts_until_next_switch) {
    /* Cyrillic, then Greek, then back to the message's ASCII */
    hub_v2_text_out t = dec("\\C2D4C\\\\XBF\\\\C2D46\\\\XD9\\\\C2540\\\\XD9\\");
    cr_assert_str_eq(t.text.p, "\xD0\x9F\xCE\xA9\xEF\xBF\xBD");
    cr_assert(t.flags & HUB_V2_TEXT_BAD_BYTES);
    /* a switch ends with its value: the next value starts in ASCII again */
    hub_v2_msg *m = v2_parse_ok(&A, "MSH|^~\\&\rNTE|1|\\C2D4C\\x|\\XBF\\\r");
    hub_v2_text_out u;
    cr_assert_eq(hub_v2_decode(&A, m, hub_v2_at(m, 1, 3, 0, 0, 0), &u, NULL), HUB_OK);
    cr_assert_str_eq(u.text.p, "\xEF\xBF\xBD");
    cr_assert(u.flags & HUB_V2_TEXT_BAD_BYTES);
}

Test(v2_escape, switch_jis_x0201) {
    /* ISO-IR 13 katakana: into G1 (8-bit bytes) or G0 (7-bit) */
    expect_flagless("\\C2949\\\\XB1\\a", "\xEF\xBD\xB1" "a");
    expect_flagless("\\C2849\\1\\C2842\\1", "\xEF\xBD\xB1" "1");
    /* ISO-IR 14 roman: 0x5C is the yen sign, unless it is a delimiter */
    hub_v2_msg *m = v2_parse_ok(&A, "MSH|^!%&\rNTE|1||%C284A%a\\b%C2842%\\\r");
    cr_assert_str_eq(hub_v2_text(&A, m, hub_v2_at(m, 1, 3, 0, 0, 0)),
                     "a\xC2\xA5" "b\\");
}

Test(v2_escape, switch_multibyte) {
    /* \M2442\ ESC $ B: JIS X 0208, two 7-bit bytes a character */
    expect_flagless("\\M2442\\;3ED\\C2842\\ Taro", "\xE5\xB1\xB1\xE7\x94\xB0 Taro");
    expect_flagless("\\M242842\\;3\\C2842\\", "\xE5\xB1\xB1");
    /* \M242844\ ESC $ ( D: JIS X 0212 */
    expect_flagless("\\M242844\\0!", "\xE4\xB8\x82");
    /* \M242943\ ESC $ ) C: KS X 1001 into G1, 8-bit pairs */
    expect_flagless("\\M242943\\\\XB0A1\\", "\xEA\xB0\x80");
    /* \M242941\ ESC $ ) A: GB 2312 into G1 */
    expect_flagless("\\M242941\\\\XD6D0\\", "\xE4\xB8\xAD");
    /* spaces stay spaces inside a two-byte set */
    expect_flagless("\\M2442\\;3 ED", "\xE5\xB1\xB1 \xE7\x94\xB0");
}

Test(v2_escape, switch_bad_bytes_and_unknown) {
    /* half a character: U+FFFD and the position */
    hub_v2_text_out t = dec("\\M2442\\;3E");
    cr_assert_str_eq(t.text.p, "\xE5\xB1\xB1\xEF\xBF\xBD");
    cr_assert(t.flags & HUB_V2_TEXT_BAD_BYTES);
    size_t msh_len = strlen("MSH|^~\\&#|A||||||||P|2.7") + 1;
    cr_assert_eq(t.bad_offset, msh_len + strlen("OBX|1|TX|||\\M2442\\;3"));
    /* a byte the designated set does not define (8859-7 0xAE) */
    t = dec("\\C2D46\\\\XAE\\");
    cr_assert_str_eq(t.text.p, "\xEF\xBF\xBD");
    cr_assert(t.flags & HUB_V2_TEXT_BAD_BYTES);
    /* a C1 control in an 8859 part */
    t = dec("\\C2D4C\\\\X85\\");
    cr_assert(t.flags & HUB_V2_TEXT_BAD_BYTES);
    /* katakana outside its range */
    t = dec("\\C2949\\\\XE0\\");
    cr_assert(t.flags & HUB_V2_TEXT_BAD_BYTES);
    /* unknown designations: kept verbatim, flagged */
    t = dec("\\C1234\\x");
    cr_assert_str_eq(t.text.p, "\\C1234\\x");
    cr_assert(t.flags & HUB_V2_TEXT_BAD_ESCAPE);
    t = dec("\\M2443\\x");
    cr_assert(t.flags & HUB_V2_TEXT_BAD_ESCAPE);
    t = dec("\\M24\\x");
    cr_assert(t.flags & HUB_V2_TEXT_BAD_ESCAPE);
    t = dec("\\C2842\\ok");
    cr_assert_eq(t.flags, 0);
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

/* Each MSH-18 value of table 0211 beyond ASCII/8859-1/UTF-8: known bytes. */
#define expect_cs(cs, value, want)                                              \
    do {                                                                        \
        hub_v2_text_out t_ = dec_in(MSH18(cs), value);                          \
        cr_assert_str_eq(t_.text.p, want, "%s", cs);                            \
        cr_assert_eq(t_.flags, 0, "%s: flags %u", cs, t_.flags);                \
    } while (0)

Test(v2_escape, msh18_8859_parts) {
    expect_cs("8859/2", "\xA3" "odz", "\xC5\x81odz");
    expect_cs("8859/3", "\xA1", "\xC4\xA6");
    expect_cs("8859/4", "\xA1", "\xC4\x84");
    expect_cs("8859/5", "\xBF\xE0", "\xD0\x9F\xD1\x80");
    expect_cs("8859/6", "\xC7", "\xD8\xA7");
    expect_cs("8859/7", "\xD9", "\xCE\xA9");
    expect_cs("8859/8", "\xE0", "\xD7\x90");
    expect_cs("8859/9", "\xDD", "\xC4\xB0");
    expect_cs("8859/15", "\xA4", "\xE2\x82\xAC");
}

Test(v2_escape, msh18_japanese) {
    /* ISO IR14: JIS X 0201, 8-bit half-width katakana */
    expect_cs("ISO IR14", "\xB1" "a", "\xEF\xBD\xB1" "a");
    /* ISO IR87 (often the second repetition): ISO 2022, raw ESC sequences
     * switch to JIS X 0208 and back */
    expect_cs("~ISO IR87", "\x1B$B;3ED\x1B(B Taro", "\xE5\xB1\xB1\xE7\x94\xB0 Taro");
    expect_cs("ISO IR87", "\\M2442\\;3\\C2842\\x", "\xE5\xB1\xB1x");
    expect_cs("ISO IR87~ISO IR159", "\x1B$(D0!\x1B(B", "\xE4\xB8\x82");
    /* an ESC that designates nothing known is flagged and kept */
    hub_v2_text_out t = dec_in(MSH18("~ISO IR87"), "\x1B$Zx");
    cr_assert(t.flags & HUB_V2_TEXT_BAD_ESCAPE);
    /* without an ISO 2022 set in MSH-18, an ESC byte is just a byte */
    t = dec_in(MSH18(""), "\x1B$B;3");
    cr_assert_str_eq(t.text.p, "\x1B$B;3");
}

Test(v2_escape, msh18_multibyte_8bit) {
    expect_cs("GB 18030-2000", "\xD6\xD0" "a\x81\x30\x8B\x37", "\xE4\xB8\xAD" "a\xC3\xBF");
    expect_cs("KS X 1001", "\xB0\xA1", "\xEA\xB0\x80");
    expect_cs("CNS 11643-1992", "\xC4\xE3", "\xE4\xB8\xAD");
    /* Big5: a trail byte equal to the escape character stays in its character */
    expect_cs("BIG-5", "\xA4\xA4\xB3\\x", "\xE4\xB8\xAD\xE8\xA8\xB1x");
}

Test(v2_escape, hex_bytes_of_one_long_utf8_run) {
    /* 40 two-byte characters in one \X..\ (80 bytes): none is split */
    char v[400] = "\\C2547\\\\X";
    for (int i = 0; i < 40; i++) strcat(v, "C3A9");
    strcat(v, "\\");
    hub_v2_text_out t = dec(v);
    cr_assert_eq(t.flags, 0, "flags %u", t.flags);
    cr_assert_eq(t.text.n, 80);
    for (size_t i = 0; i < 80; i += 2) cr_assert(t.text.p[i] == '\xC3' && t.text.p[i + 1] == '\xA9');
}

Test(v2_escape, utf8_switch_returns_to_the_messages_multibyte_set) {
    expect_cs("BIG-5", "\\C2547\\\\XC3A9\\\\C2540\\\xA4\xA4", "\xC3\xA9\xE4\xB8\xAD");
    expect_cs("8859/7", "\xD9\\C2547\\\xE2\x82\xAC\\C2540\\\xD9", "\xCE\xA9\xE2\x82\xAC\xCE\xA9");
}

Test(v2_escape, msh18_bad_bytes_flagged_with_position) {
    hub_v2_text_out t = dec_in(MSH18("KS X 1001"), "ab\xFF\xFF");
    cr_assert(t.flags & HUB_V2_TEXT_BAD_BYTES);
    cr_assert_eq(t.bad_offset, strlen(MSH18("KS X 1001")) + 1 + strlen("OBX|1|TX|||ab"));
    cr_assert_null(strstr(t.text.p, "\xFF"));
    t = dec_in(MSH18("8859/7"), "\xAE");
    cr_assert_str_eq(t.text.p, "\xEF\xBF\xBD");
    cr_assert(t.flags & HUB_V2_TEXT_BAD_BYTES);
    t = dec_in(MSH18("BIG-5"), "x\xA4"); /* a lead byte without its trail */
    cr_assert(t.flags & HUB_V2_TEXT_BAD_BYTES);
    /* the validator reports it as a charset warning at that field */
    const char *s = MSH18("KS X 1001") "\rNTE|1||\xFF\xFF\r";
    hub_v2_msg *m = v2_parse_ok(&A, s);
    hub_v2_finding *f;
    cr_assert_eq(hub_v2_charset_check(&A, m, &f, 10), 1);
    cr_assert_eq(f[0].offset, (size_t)(strchr(s, '\xFF') - s));
}

Test(v2_escape, msh18_names_and_warnings) {
    struct { const char *name; hub_v2_charset cs; } names[] = {
        {"8859/2", HUB_V2_CS_8859_2}, {"8859/9", HUB_V2_CS_8859_9},
        {"8859/15", HUB_V2_CS_8859_15}, {"ISO IR14", HUB_V2_CS_JIS_X0201},
        {"ISO IR87", HUB_V2_CS_JIS_X0208}, {"ISO IR159", HUB_V2_CS_JIS_X0212},
        {"GB 18030-2000", HUB_V2_CS_GB18030}, {"KS X 1001", HUB_V2_CS_KS_X1001},
        {"CNS 11643-1992", HUB_V2_CS_CNS11643}, {"BIG-5", HUB_V2_CS_BIG5},
        {"UNICODE UTF-16", HUB_V2_CS_WIDE},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char *s = hub_arena_sprintf(&A, MSH18("%s"), names[i].name);
        cr_assert_eq(hub_v2_msg_charset(v2_parse_ok(&A, s)), names[i].cs, "%s", names[i].name);
    }
    size_t n;
    hub_v2_msg *m = v2_parse_ok(&A, MSH18("UNICODE UTF-32"));
    const hub_v2_finding *w = hub_v2_msg_warnings(m, &n);
    cr_assert_eq(n, 1);
    cr_assert(strstr(w[0].text, "UTF-16") != NULL);
    m = v2_parse_ok(&A, MSH18("KS X 1001"));
    hub_v2_msg_warnings(m, &n);
    cr_assert_eq(n, 0);
}

/* ---- writing non-ASCII text: in the message's charset, or escaped ---- */

/* Sets NTE-3 of a message with MSH-18 `cs` to `text`; returns the raw
 * field written (NULL when refused) and checks it reads back as `text`. */
static const char *set_nte3(const char *msh, const char *text, hub_status want) {
    char *s = hub_arena_sprintf(&A, "%s\rNTE|1||x\r", msh);
    hub_v2_msg *m = v2_parse_ok(&A, s);
    hub_err err;
    hub_err_clear(&err);
    hub_status rc = hub_v2_set(&A, m, 1, 3, 0, 0, 0, text, &err);
    cr_assert_eq(rc, want, "%s: %s", hub_status_name(rc), err.msg);
    if (rc != HUB_OK) return NULL;
    hub_buf b;
    hub_buf_init(&b);
    cr_assert_eq(hub_v2_encode(m, &b, &err), HUB_OK);
    hub_v2_msg *m2 = v2_parse_ok(&A, hub_arena_strndup(&A, b.p, b.n));
    hub_buf_release(&b);
    hub_v2_text_out t;
    cr_assert_eq(hub_v2_decode(&A, m2, hub_v2_at(m2, 1, 3, 0, 0, 0), &t, NULL), HUB_OK);
    cr_assert_str_eq(t.text.p, text);
    cr_assert_eq(t.flags, 0, "flags %u", t.flags);
    hub_slice raw = hub_v2_at(m2, 1, 3, 0, 0, 0);
    return hub_arena_strndup(&A, raw.p, raw.n);
}

Test(v2_escape, write_non_ascii_in_ascii_message_escapes) {
    cr_assert_str_eq(set_nte3("MSH|^~\\&", "M\xC3\xBCller|1", HUB_OK),
                     "M\\C2547\\\\XC3BC\\\\C2540\\ller\\F\\1");
    cr_assert_str_eq(set_nte3("MSH|^~\\&", "\xE5\xB1\xB1\xE7\x94\xB0", HUB_OK),
                     "\\C2547\\\\XE5B1B1\\\\XE794B0\\\\C2540\\");
}

Test(v2_escape, write_in_the_messages_charset) {
    /* Latin-1 has u-umlaut, not the euro sign */
    cr_assert_str_eq(set_nte3(MSH18("8859/1"), "M\xC3\xBCller \xE2\x82\xAC", HUB_OK),
                     "M\xFCller \\C2547\\\\XE282AC\\\\C2540\\");
    /* 8859-5 has Cyrillic */
    cr_assert_str_eq(set_nte3(MSH18("8859/5"), "\xD0\x9F\xD1\x80", HUB_OK), "\xBF\xE0");
    /* UTF-8 as it is */
    cr_assert_str_eq(set_nte3(MSH18("UNICODE UTF-8"), "\xE2\x82\xAC", HUB_OK),
                     "\xE2\x82\xAC");
    /* multi-byte sets: escaped, read back the same */
    cr_assert_str_eq(set_nte3(MSH18("BIG-5"), "\xE4\xB8\xAD", HUB_OK),
                     "\\C2547\\\\XE4B8AD\\\\C2540\\");
}

Test(v2_escape, write_refused) {
    /* an ASCII message without an escape character cannot carry it */
    set_nte3("MSH|^~", "M\xC3\xBCller", HUB_E_ARG);
    /* but can carry ASCII, and Latin-1 can carry its own characters */
    set_nte3("MSH|^~", "Muller", HUB_OK);
    set_nte3("MSH|^~||||||||||||||||8859/1", "M\xC3\xBCller", HUB_OK);
    /* text that is not UTF-8 */
    set_nte3("MSH|^~\\&", "M\xFCller", HUB_E_ARG);
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
