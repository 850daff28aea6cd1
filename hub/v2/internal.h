/* v2 internals shared by the files of hub/v2. */
#ifndef HUB_V2_INTERNAL_H
#define HUB_V2_INTERNAL_H

#include "hub/v2.h"

#include <iconv.h>

/* One segment: its bytes, the bytes that end it (terminator plus any blank
 * lines up to the next segment), and its fields. fields[0] is the segment
 * id; for MSH/FHS/BHS fields[1] is the field separator itself and
 * fields[2] the encoding characters. */
typedef struct {
    hub_slice raw;
    hub_slice term;
    hub_slice *fields;
    uint32_t nfields; /* entries in fields, id included */
    uint32_t cap;     /* capacity of fields when owned by the arena */
    bool dirty;       /* changed since parse: encode joins fields */
} hub__v2_seg;

struct hub_v2_msg {
    const char *in;
    size_t n;
    hub_v2_delims d;
    hub_v2_charset cs;
    bool bom;
    bool iso2022;   /* MSH-18 names an ISO 2022 Japanese set (any repetition):
                     * raw ESC sequences in values switch sets */
    hub_slice head; /* bytes before the first segment (BOM, blank lines) */
    hub__v2_seg *segs;
    size_t nseg, capseg;
    hub_v2_msh msh;
    hub_v2_finding *warn;
    size_t nwarn, capwarn;
    char delim_text[8]; /* MSH-1 and MSH-2 of a message built in code */
};

/* Refreshes m->msh and m->cs from the MSH segment (after parse or a set). */
void hub__v2_fill_msh(hub_v2_msg *m);

/* True for MSH, FHS, BHS: segments whose field 1 is the separator. */
static inline bool hub__v2_is_header(hub_slice id) {
    if (id.n != 3) return false;
    return (id.p[0] == 'M' && id.p[1] == 'S' && id.p[2] == 'H') ||
           (id.p[0] == 'F' && id.p[1] == 'H' && id.p[2] == 'S') ||
           (id.p[0] == 'B' && id.p[1] == 'H' && id.p[2] == 'S');
}

/* Validates delimiters read from a header segment at p (pointing at the
 * field separator); fills d and the length of the encoding characters.
 * Returns false with err set (where = "<SEG>-1"/"-2"). */
bool hub__v2_read_delims(const char *p, size_t n, const char *seg,
                         hub_v2_delims *d, size_t *enc_len, hub_err *err);

/* Adds a parser warning to the message (kept to a small fixed number). */
void hub__v2_warn(hub_arena *a, hub_v2_msg *m, size_t seg, uint16_t field,
                  int code, size_t offset, const char *text);

/* Fills a loc for segment seg of m. */
void hub__v2_loc(const hub_v2_msg *m, size_t seg, uint16_t field,
                 hub_v2_loc *out);

/* Appends UTF-8 for code point cp to out (4 bytes room needed). */
size_t hub__v2_utf8_put(uint32_t cp, char *out);

/* Length of a valid UTF-8 sequence at p (1..4), or 0 if invalid. */
size_t hub__v2_utf8_len(const unsigned char *p, size_t n);

hub_v2_charset hub__v2_charset_of(hub_slice msh18);
/* Escapes UTF-8 `text` for a value of m (hub_v2_escape) and writes its
 * non-ASCII characters in m's charset: as they are in UTF-8, as the
 * charset's bytes where it has them (8859 parts), otherwise as \Xhh..\
 * between \C2547\ and \C2540\. Errors: HUB_E_ARG (text not UTF-8, or an
 * escape needed and MSH-2 declares no escape character), HUB_E_NOMEM. */
hub_status hub__v2_escape_for(const hub_v2_msg *m, const char *text, hub_buf *out,
                              const char *where, hub_err *err);
/* True for the MSH-18 sets that travel as ISO 2022 with raw ESC sequences
 * (ISO IR14, ISO IR87, ISO IR159). */
bool hub__v2_charset_iso2022(hub_v2_charset cs);

/* ---- charset state while a value is decoded (charset.c) ---- */

/* What a graphic set G0 (bytes < 0x80) or G1 (bytes >= 0x80) reads. */
enum {
    HUB__G_NONE,      /* nothing designated: a byte is a contradiction */
    HUB__G_ASCII,     /* ISO-IR 6 */
    HUB__G_LATIN1,    /* ISO-IR 100, converted inline */
    HUB__G_SB,        /* another 8-bit single-byte set, through iconv */
    HUB__G_JIS_ROMAN, /* ISO-IR 14: ASCII but 0x5C yen, 0x7E overline */
    HUB__G_KANA,      /* ISO-IR 13: half-width katakana */
    HUB__G_DB,        /* 94x94 set, a byte pair read as its EUC form */
    HUB__G_DB3        /* JIS X 0212: EUC-JP's 0x8F + pair */
};
typedef struct {
    uint8_t kind;
    const char *iconv; /* glibc name, for SB, DB and DB3 */
} hub__v2_gset;

extern const hub__v2_gset hub__v2_g_ascii, hub__v2_g_none, hub__v2_g_latin1,
    hub__v2_g_kana;

enum {
    HUB__MODE_ISO,   /* ISO 2022: G0 and G1 as designated */
    HUB__MODE_UTF8,  /* ISO-IR 192 (ESC % G) or a UTF-8 message */
    HUB__MODE_WHOLE  /* an 8-bit multi-byte encoding (GB 18030, Big5, EUC) */
};
typedef struct {
    uint8_t mode;
    const hub__v2_gset *g0, *g1;
    const char *whole; /* iconv name in MODE_WHOLE */
} hub__v2_cstate;

/* The state a value of a message in charset cs starts in. */
void hub__v2_cs_initial(hub_v2_charset cs, hub__v2_cstate *st);
/* The set an ISO 2022 designation (the bytes after ESC) selects, and into
 * which G (0 or 1); NULL when unknown. */
const hub__v2_gset *hub__v2_designation(const unsigned char *seq, size_t n, int *g);
/* iconv name of an 8-bit charset the encoder can write (8859-n other than
 * Latin-1, GB 18030, Big5, EUC), NULL for the others. */
const char *hub__v2_cs_iconv_name(hub_v2_charset cs);

/* iconv descriptors opened while one value is decoded or encoded. */
#define HUB__V2_MAX_CONV 8
typedef struct {
    size_t n;
    const char *from[HUB__V2_MAX_CONV], *to[HUB__V2_MAX_CONV];
    iconv_t cd[HUB__V2_MAX_CONV];
} hub__v2_conv;
void hub__v2_conv_init(hub__v2_conv *c);
void hub__v2_conv_release(hub__v2_conv *c);
/* Converts in[0..n) with iconv from `from` to `to` (glibc names; each
 * pair opened once per hub__v2_conv, at most HUB__V2_MAX_CONV pairs) into
 * out (room bytes). Returns the bytes written, or SIZE_MAX when the
 * converter is missing or the input is invalid or incomplete in `from`. */
size_t hub__v2_conv_run(hub__v2_conv *c, const char *from, const char *to,
                        const unsigned char *in, size_t n, char *out, size_t room);

#endif
