/* v2 internals shared by the files of hub/v2. */
#ifndef HUB_V2_INTERNAL_H
#define HUB_V2_INTERNAL_H

#include "hub/v2.h"

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

#endif
