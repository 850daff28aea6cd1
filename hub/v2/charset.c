/* Character sets: MSH-18 names (HL7 table 0211), the ISO 2022 designations
 * \Cxxyy\ and \Mxxyyzz\ name (or a raw ESC sequence in an ISO 2022 message),
 * and conversion of their bytes to UTF-8 through glibc's iconv. */
#include "internal.h"

#include <string.h>

/* ---- MSH-18 ---------------------------------------------------------------- */

static const struct {
    const char *name;
    hub_v2_charset cs;
} msh18_names[] = {
    {"UNICODE UTF-8", HUB_V2_CS_UTF8},  {"ASCII", HUB_V2_CS_ASCII},
    {"8859/1", HUB_V2_CS_LATIN1},        {"ISO IR6", HUB_V2_CS_ASCII},
    {"ISO-8859-1", HUB_V2_CS_LATIN1},    {"ISO IR100", HUB_V2_CS_LATIN1},
    {"UTF-8", HUB_V2_CS_UTF8},           {"UNICODE", HUB_V2_CS_UTF8},
    {"ISO IR192", HUB_V2_CS_UTF8},       {"8859/2", HUB_V2_CS_8859_2},
    {"8859/3", HUB_V2_CS_8859_3},        {"8859/4", HUB_V2_CS_8859_4},
    {"8859/5", HUB_V2_CS_8859_5},        {"8859/6", HUB_V2_CS_8859_6},
    {"8859/7", HUB_V2_CS_8859_7},        {"8859/8", HUB_V2_CS_8859_8},
    {"8859/9", HUB_V2_CS_8859_9},        {"8859/15", HUB_V2_CS_8859_15},
    {"ISO IR14", HUB_V2_CS_JIS_X0201},   {"ISO IR87", HUB_V2_CS_JIS_X0208},
    {"ISO IR159", HUB_V2_CS_JIS_X0212},  {"GB 18030-2000", HUB_V2_CS_GB18030},
    {"KS X 1001", HUB_V2_CS_KS_X1001},   {"CNS 11643-1992", HUB_V2_CS_CNS11643},
    {"BIG-5", HUB_V2_CS_BIG5},           {"UNICODE UTF-16", HUB_V2_CS_WIDE},
    {"UNICODE UTF-32", HUB_V2_CS_WIDE},
};

hub_v2_charset hub__v2_charset_of(hub_slice v) {
    if (v.p == NULL || v.n == 0) return HUB_V2_CS_ASCII;
    for (size_t i = 0; i < sizeof msh18_names / sizeof msh18_names[0]; i++)
        if (hub_slice_eq_nocase(v, msh18_names[i].name)) return msh18_names[i].cs;
    return HUB_V2_CS_OTHER;
}

bool hub__v2_charset_iso2022(hub_v2_charset cs) {
    return cs == HUB_V2_CS_JIS_X0201 || cs == HUB_V2_CS_JIS_X0208 ||
           cs == HUB_V2_CS_JIS_X0212;
}

/* ---- graphic sets ------------------------------------------------------------ */

/* 8-bit single-byte sets, by the ISO-IR registration HL7 table 0211 and
 * DICOM name them; the iconv name is glibc's. */
const hub__v2_gset hub__v2_g_ascii = {HUB__G_ASCII, NULL};
const hub__v2_gset hub__v2_g_none = {HUB__G_NONE, NULL};
const hub__v2_gset hub__v2_g_latin1 = {HUB__G_LATIN1, NULL};
const hub__v2_gset hub__v2_g_kana = {HUB__G_KANA, NULL};
static const hub__v2_gset g_roman = {HUB__G_JIS_ROMAN, NULL};
static const hub__v2_gset g_8859[] = {
    {HUB__G_SB, "ISO-8859-2"}, {HUB__G_SB, "ISO-8859-3"}, {HUB__G_SB, "ISO-8859-4"},
    {HUB__G_SB, "ISO-8859-5"}, {HUB__G_SB, "ISO-8859-6"}, {HUB__G_SB, "ISO-8859-7"},
    {HUB__G_SB, "ISO-8859-8"}, {HUB__G_SB, "ISO-8859-9"}, {HUB__G_SB, "ISO-8859-15"},
    {HUB__G_SB, "TIS-620"},
};
/* 94x94 sets: a pair of bytes 0x21-0x7E (or 0xA1-0xFE), read through the
 * EUC form of the set (each byte with its high bit set). */
static const hub__v2_gset g_jis0208 = {HUB__G_DB, "EUC-JP"};
static const hub__v2_gset g_jis0212 = {HUB__G_DB3, "EUC-JP"};
static const hub__v2_gset g_ksx1001 = {HUB__G_DB, "EUC-KR"};
static const hub__v2_gset g_gb2312 = {HUB__G_DB, "EUC-CN"};

/* The escape bytes after ESC (the \C or \M escape's hex), the G set they
 * designate (0 or 1) and what. */
static const struct {
    unsigned char seq[3];
    uint8_t len, g;
    const hub__v2_gset *set;
} designations[] = {
    {{0x28, 0x42}, 2, 0, &hub__v2_g_ascii},   /* ESC ( B  ISO-IR 6 */
    {{0x28, 0x4A}, 2, 0, &g_roman},           /* ESC ( J  ISO-IR 14 JIS X 0201 */
    {{0x28, 0x49}, 2, 0, &hub__v2_g_kana},    /* ESC ( I  ISO-IR 13, in G0 */
    {{0x29, 0x49}, 2, 1, &hub__v2_g_kana},    /* ESC ) I  ISO-IR 13 JIS X 0201 */
    {{0x2D, 0x41}, 2, 1, &hub__v2_g_latin1},  /* ESC - A  ISO-IR 100 8859-1 */
    {{0x2D, 0x42}, 2, 1, &g_8859[0]},         /* ISO-IR 101, 8859-2 */
    {{0x2D, 0x43}, 2, 1, &g_8859[1]},         /* ISO-IR 109, 8859-3 */
    {{0x2D, 0x44}, 2, 1, &g_8859[2]},         /* ISO-IR 110, 8859-4 */
    {{0x2D, 0x4C}, 2, 1, &g_8859[3]},         /* ISO-IR 144, 8859-5 Cyrillic */
    {{0x2D, 0x47}, 2, 1, &g_8859[4]},         /* ISO-IR 127, 8859-6 Arabic */
    {{0x2D, 0x46}, 2, 1, &g_8859[5]},         /* ISO-IR 126, 8859-7 Greek */
    {{0x2D, 0x48}, 2, 1, &g_8859[6]},         /* ISO-IR 138, 8859-8 Hebrew */
    {{0x2D, 0x4D}, 2, 1, &g_8859[7]},         /* ISO-IR 148, 8859-9 */
    {{0x2D, 0x62}, 2, 1, &g_8859[8]},         /* ISO-IR 203, 8859-15 */
    {{0x2D, 0x54}, 2, 1, &g_8859[9]},         /* ISO-IR 166, TIS-620 Thai */
    {{0x24, 0x42}, 2, 0, &g_jis0208},         /* ESC $ B  ISO-IR 87 JIS X 0208 */
    {{0x24, 0x40}, 2, 0, &g_jis0208},         /* ESC $ @  ISO-IR 42 (1978) */
    {{0x24, 0x28, 0x42}, 3, 0, &g_jis0208},   /* ESC $ ( B */
    {{0x24, 0x28, 0x44}, 3, 0, &g_jis0212},   /* ESC $ ( D  ISO-IR 159 JIS X 0212 */
    {{0x24, 0x41}, 2, 0, &g_gb2312},          /* ESC $ A  ISO-IR 58 GB 2312 */
    {{0x24, 0x29, 0x41}, 3, 1, &g_gb2312},    /* ESC $ ) A */
    {{0x24, 0x28, 0x43}, 3, 0, &g_ksx1001},   /* ESC $ ( C  ISO-IR 149 KS X 1001 */
    {{0x24, 0x29, 0x43}, 3, 1, &g_ksx1001},   /* ESC $ ) C */
};

const hub__v2_gset *hub__v2_designation(const unsigned char *seq, size_t n, int *g) {
    for (size_t i = 0; i < sizeof designations / sizeof designations[0]; i++) {
        if (designations[i].len == n && memcmp(designations[i].seq, seq, n) == 0) {
            *g = designations[i].g;
            return designations[i].set;
        }
    }
    return NULL;
}

void hub__v2_cs_initial(hub_v2_charset cs, hub__v2_cstate *st) {
    if (cs == HUB_V2_CS_UTF8) { /* the common case first */
        st->mode = HUB__MODE_UTF8;
        st->g0 = &hub__v2_g_ascii;
        st->g1 = &hub__v2_g_none;
        st->whole = NULL;
        return;
    }
    st->mode = HUB__MODE_ISO;
    st->g0 = &hub__v2_g_ascii;
    st->g1 = &hub__v2_g_none;
    st->whole = NULL;
    switch (cs) {
    case HUB_V2_CS_ASCII:
    case HUB_V2_CS_JIS_X0208:
    case HUB_V2_CS_JIS_X0212: break;
    case HUB_V2_CS_LATIN1: st->g1 = &hub__v2_g_latin1; break;
    case HUB_V2_CS_8859_2: case HUB_V2_CS_8859_3: case HUB_V2_CS_8859_4:
    case HUB_V2_CS_8859_5: case HUB_V2_CS_8859_6: case HUB_V2_CS_8859_7:
    case HUB_V2_CS_8859_8: case HUB_V2_CS_8859_9:
        st->g1 = &g_8859[cs - HUB_V2_CS_8859_2];
        break;
    case HUB_V2_CS_8859_15: st->g1 = &g_8859[8]; break;
    case HUB_V2_CS_JIS_X0201: st->g1 = &hub__v2_g_kana; break;
    case HUB_V2_CS_GB18030: st->mode = HUB__MODE_WHOLE; st->whole = "GB18030"; break;
    case HUB_V2_CS_KS_X1001: st->mode = HUB__MODE_WHOLE; st->whole = "EUC-KR"; break;
    case HUB_V2_CS_CNS11643: st->mode = HUB__MODE_WHOLE; st->whole = "EUC-TW"; break;
    case HUB_V2_CS_BIG5: st->mode = HUB__MODE_WHOLE; st->whole = "BIG5"; break;
    default: st->mode = HUB__MODE_UTF8; break;
    }
}

const char *hub__v2_cs_iconv_name(hub_v2_charset cs) {
    hub__v2_cstate st;
    hub__v2_cs_initial(cs, &st);
    if (st.mode == HUB__MODE_WHOLE) return st.whole;
    if (st.mode == HUB__MODE_ISO && st.g1->kind == HUB__G_SB) return st.g1->iconv;
    return NULL;
}

/* ---- iconv ------------------------------------------------------------------ */

void hub__v2_conv_init(hub__v2_conv *c) { c->n = 0; }

void hub__v2_conv_release(hub__v2_conv *c) {
    for (size_t i = 0; i < c->n; i++)
        if (c->cd[i] != (iconv_t)-1) iconv_close(c->cd[i]);
    c->n = 0;
}

/* The descriptor for `from` -> `to` (opened on first use; (iconv_t)-1 when
 * glibc has no such converter). */
static iconv_t conv_get(hub__v2_conv *c, const char *from, const char *to) {
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->from[i], from) == 0 && strcmp(c->to[i], to) == 0) return c->cd[i];
    iconv_t cd = iconv_open(to, from);
    if (c->n < HUB__V2_MAX_CONV) {
        c->from[c->n] = from;
        c->to[c->n] = to;
        c->cd[c->n++] = cd;
    } else if (cd != (iconv_t)-1) {
        iconv_close(cd); /* more sets in one value than we cache: refuse */
        cd = (iconv_t)-1;
    }
    return cd;
}

size_t hub__v2_conv_run(hub__v2_conv *c, const char *from, const char *to,
                        const unsigned char *in, size_t n, char *out, size_t room) {
    iconv_t cd = conv_get(c, from, to);
    if (cd == (iconv_t)-1) return SIZE_MAX;
    char *ip = (char *)(uintptr_t)in, *op = out;
    size_t il = n, ol = room;
    size_t r = iconv(cd, &ip, &il, &op, &ol);
    size_t flushed = iconv(cd, NULL, NULL, &op, &ol); /* back to the initial state */
    if (r == (size_t)-1 || il != 0 || flushed == (size_t)-1) {
        iconv(cd, NULL, NULL, NULL, NULL);
        return SIZE_MAX;
    }
    return (size_t)(op - out);
}
