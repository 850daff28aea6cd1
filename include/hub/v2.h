/* v2: the HL7 v2 engine: ER7 parse (zero-copy), escapes and charsets,
 * navigation by index or terse path, message-structure groups, encode,
 * batches, and acknowledgements.
 *
 * Model. A parsed message is an index of slices into the caller's buffer,
 * allocated from one arena: nothing is copied, nothing is decoded until a
 * value is read (hub_v2_text). The buffer must outlive the message; the
 * message lives until its arena is reset.
 *
 * Positions. Segments are addressed by a 0-based index in the message
 * (`seg`); fields, repetitions, components and sub-components are 1-based as
 * in HL7. In the hub_v2_at family, 0 for rep/comp/sub means "the whole
 * level": hub_v2_at(m, s, 3, 0, 0, 0) is PID-3 with all repetitions,
 * hub_v2_at(m, s, 3, 2, 0, 0) its second repetition, (3, 2, 4, 0) the 4th
 * component of that repetition, (3, 2, 4, 2) its 2nd sub-component.
 * MSH-1 (the field separator) and MSH-2 (the encoding characters) are
 * single values that are never split; the same holds for FHS and BHS.
 *
 * Absent vs empty vs null. A slice with p == NULL is absent (beyond the
 * last field, rep, component, ...). A slice with p != NULL and n == 0 is
 * present but empty ("leave the stored value"). A value of exactly `""`
 * (two double quotes) is the explicit null ("delete the stored value"):
 * hub_v2_is_null() tells it apart; hub_v2_text() returns it as "" with
 * HUB_V2_TEXT_NULL set in its flags.
 *
 * Raw slices returned by navigation are the bytes as sent (escapes and
 * charset not decoded). Errors (hub_err) never quote message content. */
#ifndef HUB_V2_H
#define HUB_V2_H

#include "hub/core.h"
#include "hub/limits.h"

/* ---- delimiters ------------------------------------------------------- */

typedef struct {
    char field; /* MSH-1, usually '|' */
    char comp;  /* MSH-2[0], '^' */
    char rep;   /* MSH-2[1], '~' */
    char esc;   /* MSH-2[2], '\\'; 0 when the message declares none */
    char sub;   /* MSH-2[3], '&'; 0 when the message declares none */
    char trunc; /* MSH-2[4], '#' (v2.7+); 0 when absent */
} hub_v2_delims;

/* "|^~\\&", no truncation character. */
hub_v2_delims hub_v2_delims_default(void);

/* ---- charsets ----------------------------------------------------------- */

typedef enum {
    HUB_V2_CS_ASCII,   /* MSH-18 empty or "ASCII" */
    HUB_V2_CS_LATIN1,  /* "8859/1" */
    HUB_V2_CS_UTF8,    /* "UNICODE UTF-8" (also "UNICODE", "UTF-8") */
    HUB_V2_CS_OTHER,   /* unknown name: read as UTF-8 where valid, with
                        * a warning per contradicting byte */
    /* Converted to UTF-8 with glibc's iconv (HL7 table 0211 names): */
    HUB_V2_CS_8859_2, HUB_V2_CS_8859_3, HUB_V2_CS_8859_4, HUB_V2_CS_8859_5,
    HUB_V2_CS_8859_6, HUB_V2_CS_8859_7, HUB_V2_CS_8859_8, HUB_V2_CS_8859_9,
    HUB_V2_CS_8859_15,
    HUB_V2_CS_JIS_X0201, /* "ISO IR14": ASCII plus 8-bit half-width katakana */
    HUB_V2_CS_JIS_X0208, /* "ISO IR87": ISO 2022, ASCII until an escape
                          * (\M2442\ or a raw ESC $ B) selects JIS X 0208 */
    HUB_V2_CS_JIS_X0212, /* "ISO IR159": the same, JIS X 0212 (ESC $ ( D) */
    HUB_V2_CS_GB18030,   /* "GB 18030-2000" */
    HUB_V2_CS_KS_X1001,  /* "KS X 1001": EUC-KR */
    HUB_V2_CS_CNS11643,  /* "CNS 11643-1992": EUC-TW */
    HUB_V2_CS_BIG5,      /* "BIG-5" */
    HUB_V2_CS_WIDE       /* "UNICODE UTF-16"/"UTF-32": ER7's one-byte
                          * delimiters cannot carry them; read as UTF-8
                          * with a parser warning */
} hub_v2_charset;

/* ---- findings (warnings, errors) ------------------------------------------ */

/* HL7 table 0357, message error condition codes (ERR-3). */
typedef enum {
    HUB_V2_E_OK = 0,
    HUB_V2_E_SEGMENT_SEQUENCE = 100,
    HUB_V2_E_REQUIRED_MISSING = 101,
    HUB_V2_E_DATA_TYPE = 102,
    HUB_V2_E_TABLE_VALUE = 103,
    HUB_V2_E_VALUE_TOO_LONG = 104, /* v2.7+; earlier versions use 102 */
    HUB_V2_E_UNSUPPORTED_MSG_TYPE = 200,
    HUB_V2_E_UNSUPPORTED_EVENT = 201,
    HUB_V2_E_UNSUPPORTED_PROCESSING_ID = 202,
    HUB_V2_E_UNSUPPORTED_VERSION = 203,
    HUB_V2_E_UNKNOWN_KEY = 204,
    HUB_V2_E_DUPLICATE_KEY = 205,
    HUB_V2_E_RECORD_LOCKED = 206,
    HUB_V2_E_INTERNAL = 207
} hub_v2_errcode;

/* "Required field missing" etc.; "Unknown error" for other values. */
const char *hub_v2_errcode_text(int code);

/* ERR-4 severity (HL7 table 0516). */
typedef enum {
    HUB_V2_SEV_ERROR = 'E',
    HUB_V2_SEV_WARNING = 'W',
    HUB_V2_SEV_INFO = 'I'
} hub_v2_severity;

/* A location in a message, as ERR-2 (ERL) carries it. 0 in field, rep,
 * comp or sub means "not that precise". `seg_seq` is the 1-based
 * occurrence of that segment id in the message (ERL-2); `seg` is the
 * 0-based segment index in the message, or UINT32_MAX when unknown. */
typedef struct {
    char seg_id[4]; /* NUL-terminated, "" when the finding is about the
                     * whole message */
    uint32_t seg;
    uint32_t seg_seq;
    uint16_t field, rep, comp, sub;
} hub_v2_loc;

/* One problem: parser/charset warnings, validator findings, and the input
 * of the ACK builder. `text` is a human-readable diagnosis that never
 * contains message content (ERR-8); borrowed (a literal or arena text).
 * `offset` is the byte position in the parsed buffer, or SIZE_MAX. */
typedef struct {
    hub_v2_loc loc;
    int code;          /* hub_v2_errcode (table 0357) */
    char severity;     /* hub_v2_severity */
    const char *text;
    size_t offset;
} hub_v2_finding;

/* ---- parse -------------------------------------------------------------- */

typedef struct hub_v2_msg hub_v2_msg;

/* The MSH fields the transport, journal and ACK layers need, as raw slices
 * (absent: p == NULL). Components are split already where noted. */
typedef struct {
    hub_slice sending_app;     /* MSH-3 (whole HD) */
    hub_slice sending_fac;     /* MSH-4 */
    hub_slice receiving_app;   /* MSH-5 */
    hub_slice receiving_fac;   /* MSH-6 */
    hub_slice datetime;        /* MSH-7 */
    hub_slice msg_code;        /* MSH-9.1, e.g. "ORU" */
    hub_slice trigger;         /* MSH-9.2, e.g. "R01" */
    hub_slice structure;       /* MSH-9.3, e.g. "ORU_R01" (often absent) */
    hub_slice control_id;      /* MSH-10 */
    hub_slice processing_id;   /* MSH-11.1 */
    hub_slice version;         /* MSH-12.1, e.g. "2.5.1" */
    hub_slice accept_ack;      /* MSH-15: AL, NE, ER, SU */
    hub_slice app_ack;         /* MSH-16 */
    hub_slice charset;         /* MSH-18, first repetition */
} hub_v2_msh;

/* Parse options; a zeroed struct is the default. */
typedef struct {
    /* Fail (HUB_E_PARSE, where "MSH-9"/"MSH-10") when MSH-9 or MSH-10 is
     * empty; by default such a message parses and validation reports it. */
    bool require_msh9_10;
} hub_v2_parse_opts;

/* Parses one message (ER7) from `p`/`n` into `*out`, allocated from `a`.
 * Accepts a UTF-8 BOM before MSH, CR, LF or CRLF segment terminators (each
 * segment keeps its own), blank lines between segments, trailing field
 * separators and empty trailing fields, any delimiter set declared by
 * MSH-1/MSH-2 (3 to 5 encoding characters, whatever MSH-12 says).
 * `p` is borrowed and must outlive *out; NULL opts means defaults.
 * Errors (err->where names the place):
 *   HUB_E_PARSE  empty input ("message"), no MSH at the start ("MSH"),
 *                missing or invalid MSH-1 / MSH-2 ("MSH-1", "MSH-2": fewer
 *                than 2 encoding characters, a repeated delimiter, a
 *                delimiter that is a letter, digit, CR or LF), a segment
 *                whose id is not 3 upper-case letters or digits ("seg N"),
 *                a second MSH in one message ("seg N": use the batch
 *                parser).
 *   HUB_E_LIMIT  over HUB_MAX_SEGMENTS ("message"), HUB_MAX_FIELDS (the
 *                segment id, "PID"), HUB_MAX_REPS, HUB_MAX_COMPONENTS,
 *                HUB_MAX_SUBCOMPONENTS or HUB_MAX_FIELD (the field, "PID-5").
 *   HUB_E_NOMEM  the arena could not grow. */
hub_status hub_v2_parse(hub_arena *a, const char *p, size_t n,
                        const hub_v2_parse_opts *opts, hub_v2_msg **out,
                        hub_err *err);

/* The buffer the message was parsed from (for offsets), and its length. */
hub_slice hub_v2_msg_input(const hub_v2_msg *m);
hub_v2_delims hub_v2_msg_delims(const hub_v2_msg *m);
/* Borrowed from the message. Always non-NULL for a parsed message. */
const hub_v2_msh *hub_v2_msg_msh(const hub_v2_msg *m);
hub_v2_charset hub_v2_msg_charset(const hub_v2_msg *m);
/* True when the input started with a UTF-8 byte-order mark. */
bool hub_v2_msg_has_bom(const hub_v2_msg *m);

/* Warnings found while parsing (e.g. five encoding characters with a
 * version before 2.7, unknown MSH-18 charset). Borrowed; count in *n. */
const hub_v2_finding *hub_v2_msg_warnings(const hub_v2_msg *m, size_t *n);

/* ---- navigate by index ------------------------------------------------- */

size_t hub_v2_seg_count(const hub_v2_msg *m);
/* The segment id ("PID", "ZPX"), 3 bytes; absent for seg out of range. */
hub_slice hub_v2_seg_id(const hub_v2_msg *m, size_t seg);
/* The segment's bytes without its terminator. */
hub_slice hub_v2_seg_raw(const hub_v2_msg *m, size_t seg);
/* Index of the `occurrence`-th (1-based) segment with id `id` at or after
 * segment `from`, or SIZE_MAX. */
size_t hub_v2_seg_find(const hub_v2_msg *m, const char *id, size_t from,
                       unsigned occurrence);
/* 1-based occurrence of segment `seg`'s id up to and including it (ERL-2). */
uint32_t hub_v2_seg_seq(const hub_v2_msg *m, size_t seg);

/* Number of fields after the segment id (the highest field number present,
 * trailing empty fields included); MSH counts MSH-1 and MSH-2. */
size_t hub_v2_field_count(const hub_v2_msg *m, size_t seg);
/* Repetitions in a field (0 when the field is absent, 1 when empty). */
size_t hub_v2_rep_count(const hub_v2_msg *m, size_t seg, size_t field);
/* Components of a repetition (0 when absent, 1 when empty). */
size_t hub_v2_comp_count(const hub_v2_msg *m, size_t seg, size_t field,
                         size_t rep);
/* Sub-components of a component (0 when absent, 1 when empty). */
size_t hub_v2_sub_count(const hub_v2_msg *m, size_t seg, size_t field,
                        size_t rep, size_t comp);
/* The raw value at a position; see "Positions" above. Absent: p == NULL.
 * rep == 0 with comp > 0 means the first repetition. */
hub_slice hub_v2_at(const hub_v2_msg *m, size_t seg, size_t field, size_t rep,
                    size_t comp, size_t sub);
/* True for the explicit null `""`. */
bool hub_v2_is_null(hub_slice raw);

/* Splits a raw value at `sep` without allocating: the `i`-th (1-based)
 * piece, absent when there are fewer; *count (if not NULL) receives the
 * number of pieces (0 for an absent value). */
hub_slice hub_v2_split(hub_slice raw, char sep, size_t i, size_t *count);

/* ---- terse paths -------------------------------------------------------- */

/* A parsed terse path. Forms: `PID`, `PID-3`, `PID-3(2)`, `PID-3(2).4`,
 * `PID-3(2).4.2`, `OBX(3)-5`, `MSH-9.2`; components may also be written
 * with '-' (`PID-3-1`), repetitions also as `[n]`. A segment occurrence of
 * 0 in the text is invalid; omitted means 1. Groups may prefix the segment:
 * `PATIENT_RESULT(1)/ORDER_OBSERVATION(2)/OBX(1)-5` (needs a group tree,
 * see hub_v2_group_get). */
typedef struct {
    char seg_id[4];
    uint32_t seg_occ;         /* 1-based; 1 when omitted */
    uint16_t field, rep, comp, sub; /* 0 = whole level; rep 0 = all reps */
    bool rep_given;           /* "(n)" was written after the field */
    uint8_t ngroups;          /* group prefixes */
    struct {
        char name[40];
        uint32_t occ;         /* 1-based */
    } groups[4];
} hub_v2_path;

/* Errors: HUB_E_ARG (where = "path", msg names the column) for a bad path,
 * HUB_E_LIMIT for a path over HUB_MAX_PATH bytes or an index over the
 * HUB_MAX_* limits. */
hub_status hub_v2_path_parse(const char *text, hub_v2_path *out, hub_err *err);
/* Writes the path in canonical form (`PID-3(2).4.2`) into out[size]. */
void hub_v2_path_format(const hub_v2_path *p, char *out, size_t size);
/* Writes a finding's location as a terse path into out[size]: "PID-3(2).1",
 * "OBX(3)-5", "PID" without a field, "" for the whole message. */
void hub_v2_loc_format(const hub_v2_loc *l, char *out, size_t size);

/* The raw value at `path` (group prefixes ignored); absent when the
 * segment or any level is missing or the path does not parse. */
hub_slice hub_v2_get(const hub_v2_msg *m, const char *path);
hub_slice hub_v2_get_path(const hub_v2_msg *m, const hub_v2_path *path);
/* The segment index `path` resolves to, or SIZE_MAX. */
size_t hub_v2_path_seg(const hub_v2_msg *m, const hub_v2_path *path);

/* ---- reading values (escapes, charset) ------------------------------------ */

enum {
    HUB_V2_TEXT_NULL = 1,       /* the value was the explicit null `""` */
    HUB_V2_TEXT_BAD_BYTES = 2,  /* bytes contradicted the charset (each
                                 * became U+FFFD) */
    HUB_V2_TEXT_BAD_ESCAPE = 4, /* an escape was malformed or unknown; its
                                 * text was kept verbatim */
    HUB_V2_TEXT_TRUNCATED = 8   /* contained the truncation character */
};

/* Result of decoding one value. */
typedef struct {
    hub_slice text;     /* UTF-8, NUL-terminated (text.p[text.n] == 0),
                         * allocated in the arena (a static "" for absent,
                         * empty and null values) */
    unsigned flags;     /* HUB_V2_TEXT_* */
    size_t bad_offset;  /* first offending byte in the message's input
                         * buffer, SIZE_MAX when none */
} hub_v2_text_out;

/* Decodes `raw` (a slice of m's input, or any slice using m's delimiters):
 * escapes \F\ \S\ \T\ \R\ \E\ \P\ become the delimiters, \Xhh..\ bytes (any
 * even number of hex digits, read in the current charset), \Cxxyy\ and
 * \Mxxyy[zz]\ switch the charset until the next switch or the value's
 * end (ISO 2022 designations: ASCII, the ISO 8859 parts, JIS X 0201,
 * JIS X 0208/0212, KS X 1001, GB 2312, \C2547\ UTF-8, \C2540\ back to
 * MSH-18's set; conformance/v2/README.md lists them; an unknown one keeps
 * its text and sets BAD_ESCAPE), and so do raw ESC sequences when MSH-18
 * names ISO IR14/87/159,
 * \.br\ and \.sp\ (\.sp n\) become line breaks, \H\ \N\ and the other
 * formatting commands (\.in\ \.ti\ \.fi\ \.nf\ \.ce\ \.sk\) are dropped,
 * \Zxx\ is kept verbatim. Delimiters inside raw (the value of a whole field
 * or repetition) are kept as they are. Output is UTF-8: Latin-1 bytes are
 * converted, and so are the other MSH-18 charsets (glibc iconv); bytes
 * that contradict the current charset (or that iconv refuses) set
 * HUB_V2_TEXT_BAD_BYTES and bad_offset: a valid UTF-8 sequence in an ASCII
 * or Latin-1 message is kept as UTF-8, anything else becomes U+FFFD.
 * Errors: HUB_E_NOMEM, HUB_E_LIMIT (raw over HUB_MAX_FIELD). */
hub_status hub_v2_decode(hub_arena *a, const hub_v2_msg *m, hub_slice raw,
                         hub_v2_text_out *out, hub_err *err);
/* Convenience: the decoded value as a NUL-terminated string in `a`; ""
 * for absent values; NULL only when the arena cannot grow. */
const char *hub_v2_text(hub_arena *a, const hub_v2_msg *m, hub_slice raw);

/* Escapes UTF-8 text with delimiters `d` and appends it to `out`: the
 * field, component, repetition, sub-component, escape and truncation
 * characters become \F\ \S\ \R\ \T\ \E\ \P\; CR and LF become \X0D\
 * \X0A\. Other bytes, non-ASCII ones too, are kept as they are
 * (hub_v2_set also writes non-ASCII text in the message's charset).
 * Errors: HUB_E_NOMEM. */
hub_status hub_v2_escape(hub_slice text, const hub_v2_delims *d, hub_buf *out);

/* Scans every value of the message for bytes that contradict its declared
 * charset (or malformed escapes); appends one finding per problem (severity
 * W, code 102, loc and offset filled) to *out (arena array of *n, capacity
 * grows in `a`), at most `max` findings. Returns the number found. */
size_t hub_v2_charset_check(hub_arena *a, const hub_v2_msg *m,
                            hub_v2_finding **out, size_t max);

/* ---- build and change ---------------------------------------------------- */

/* A new empty message with delimiters `d` (NULL: defaults), to which
 * segments are added. The first segment added should be MSH; MSH-1/MSH-2
 * are filled from `d` when it is added. Errors: HUB_E_NOMEM. */
hub_status hub_v2_msg_new(hub_arena *a, const hub_v2_delims *d,
                          hub_v2_msg **out, hub_err *err);
/* Appends a segment with id `id` (3 upper-case letters/digits), no fields;
 * *seg (if not NULL) receives its index. Errors: HUB_E_ARG, HUB_E_LIMIT,
 * HUB_E_NOMEM. */
hub_status hub_v2_seg_add(hub_arena *a, hub_v2_msg *m, const char *id,
                          size_t *seg, hub_err *err);
/* Sets the value at a position (as in hub_v2_at; rep 0 means 1) from UTF-8
 * `text`, escaping it with the message's delimiters; missing fields, reps,
 * components are created empty. `text` NULL writes the explicit null `""`.
 * MSH-1 and MSH-2 cannot be set (HUB_E_ARG); text that holds a delimiter,
 * CR or LF is HUB_E_ARG when the message declares no escape character, as
 * is a sub-component position without a sub-component separator.
 * Non-ASCII characters are written in the message's charset (MSH-18): as
 * they are in UTF-8, as their byte in an ISO 8859 part that has them,
 * otherwise as \Xhh..\ (their UTF-8 bytes) between \C2547\ and \C2540\;
 * text that is not UTF-8, or that needs such an escape in a message
 * without an escape character, is HUB_E_ARG.
 * Errors: HUB_E_ARG, HUB_E_LIMIT, HUB_E_NOMEM. */
hub_status hub_v2_set(hub_arena *a, hub_v2_msg *m, size_t seg, size_t field,
                      size_t rep, size_t comp, size_t sub, const char *text,
                      hub_err *err);
/* Same, addressed by a terse path; the segment must exist. */
hub_status hub_v2_set_path(hub_arena *a, hub_v2_msg *m, const char *path,
                           const char *text, hub_err *err);
/* Sets a raw (already escaped) value, taken as is; borrowed, must outlive
 * the message. */
hub_status hub_v2_set_raw(hub_arena *a, hub_v2_msg *m, size_t seg,
                          size_t field, hub_slice raw, hub_err *err);

/* ---- encode --------------------------------------------------------------- */

/* Appends the message in ER7 to `out`. Unchanged segments are written as
 * they were read (terminators, BOM and blank lines included), so an
 * unmodified parsed message encodes byte-identical; changed segments are
 * joined from their fields and keep their terminator; new segments end
 * with CR. Errors: HUB_E_NOMEM. */
hub_status hub_v2_encode(const hub_v2_msg *m, hub_buf *out, hub_err *err);

/* ---- batches ---------------------------------------------------------------- */

/* One FHS..FTS or BHS..BTS envelope. Messages outside any envelope (a
 * file of bare MSH) belong to none. */
typedef struct {
    bool is_file;        /* FHS (true) or BHS (false) */
    int parent;          /* index of the enclosing envelope, -1 at top */
    hub_slice header;    /* the FHS/BHS segment, absent when implicit */
    hub_slice trailer;   /* the FTS/BTS segment, absent when missing */
    size_t first_msg;    /* index in hub_v2_batch.msgs */
    size_t nmsgs;        /* messages directly inside (not in children) */
    size_t nchildren;    /* directly nested envelopes */
} hub_v2_envelope;

typedef struct {
    size_t nmsgs;
    hub_v2_msg **msgs;        /* in file order; NULL entries for messages
                               * that failed to parse (see errors) */
    hub_err *msg_errs;        /* per message: code HUB_OK or why it failed */
    hub_slice *msg_raw;       /* per message: its bytes */
    size_t nenv;
    hub_v2_envelope *env;
    size_t nfindings;
    hub_v2_finding *findings; /* trailer count mismatches, missing or
                               * unexpected trailers (severity E, code 100
                               * for structure, 102 for a bad count) */
} hub_v2_batch;

/* Parses a file that may hold FHS/BHS/BTS/FTS envelopes (each optional,
 * BHS inside FHS, nested up to HUB_MAX_BATCH_DEPTH) or several MSH with no
 * envelope. A message that fails to parse does not stop the rest; its
 * error is in msg_errs. FTS-1 and BTS-1 counts are checked.
 * Lines of only spaces or tabs count as blank.
 * Errors: HUB_E_PARSE: empty input or no message at all ("file"), a first
 * segment other than FHS/BHS/MSH ("file"), a segment outside any message,
 * e.g. after BHS with no MSH ("seg N", N counting non-blank lines), FHS
 * anywhere but first ("FHS"), bad FHS/BHS delimiters ("BHS-1", "BHS-2");
 * HUB_E_LIMIT: over HUB_MAX_BATCH_MESSAGES ("file") or HUB_MAX_BATCH_DEPTH
 * ("BHS"); HUB_E_NOMEM. */
hub_status hub_v2_batch_parse(hub_arena *a, const char *p, size_t n,
                              const hub_v2_parse_opts *opts, hub_v2_batch *out,
                              hub_err *err);

/* ---- message structures and groups ------------------------------------------- */

/* A node of a message-structure definition (as in the HL7 message
 * tables): a segment or a group of nodes, with cardinality. The profiles
 * engineer generates these from hl7-dictionary; the engine has a small
 * built-in fallback (hub_v2_struct_builtin). */
typedef struct hub_v2_struct_node {
    const char *name;  /* "OBX" or "ORDER_OBSERVATION" */
    bool is_group;
    uint32_t min;      /* 0 optional, 1 required */
    uint32_t max;      /* 1, or 0 for unbounded */
    const struct hub_v2_struct_node *children; /* groups only */
    size_t nchildren;
} hub_v2_struct_node;

typedef struct {
    const char *name;    /* "ORU_R01" */
    const char *version; /* "2.5.1", or NULL for any */
    hub_v2_struct_node root; /* a group holding the message's top level */
} hub_v2_struct_def;

/* Built-in fallback definitions: ORU_R01 and ADT_A01 (also used for
 * ADT_A04/A08...). NULL for others. */
const hub_v2_struct_def *hub_v2_struct_builtin(const char *name);
/* The structure name for a message: MSH-9.3 when present, else MSH-9.1 +
 * "_" + MSH-9.2, into out[size] (empty when MSH-9 is absent). */
void hub_v2_struct_name(const hub_v2_msg *m, char *out, size_t size);

/* A matched group or segment instance. */
typedef struct hub_v2_group hub_v2_group;
struct hub_v2_group {
    const hub_v2_struct_node *def; /* NULL for unexpected segments */
    const char *name;        /* def->name, or the segment id */
    bool is_segment;
    uint32_t occ;            /* 1-based occurrence under its parent */
    size_t seg;              /* segment index (segments only) */
    size_t first_seg, end_seg; /* [first, end) segment range covered */
    hub_v2_group *parent, *first_child, *next;
};

/* Result of matching a message against a structure definition. */
typedef struct {
    hub_v2_group *root;
    hub_v2_group **seg_node; /* per segment index: its node */
    size_t nunexpected;      /* segments that matched no place in the
                              * definition (Z-segments included); they are
                              * attached to the innermost open group */
    size_t *unexpected;      /* their segment indices */
} hub_v2_groups;

/* Matches the segments of `m` against `def`, greedily in order (a segment
 * repeats in its own place before starting a new group instance).
 * Cardinality is not judged here (the validator does); order is followed.
 * Errors: HUB_E_NOMEM. */
hub_status hub_v2_group_match(hub_arena *a, const hub_v2_msg *m,
                              const hub_v2_struct_def *def, hub_v2_groups *out,
                              hub_err *err);
/* The innermost group containing segment `seg` (root when top level). */
const hub_v2_group *hub_v2_group_parent(const hub_v2_groups *g, size_t seg);
/* The segment index a group-prefixed path names (e.g.
 * PATIENT_RESULT(1)/ORDER_OBSERVATION(2)/OBX(3)): the n-th such segment
 * inside the named group instances; SIZE_MAX when there is none. Without
 * group prefixes, the same as hub_v2_path_seg. */
size_t hub_v2_group_find_seg(const hub_v2_groups *g, const hub_v2_msg *m,
                             const hub_v2_path *path);
/* The raw value at a group-prefixed path (plain paths work too). */
hub_slice hub_v2_group_get(const hub_v2_groups *g, const hub_v2_msg *m,
                           const hub_v2_path *path);

/* ---- acknowledgements ---------------------------------------------------------- */

typedef enum {
    HUB_V2_ACK_ACCEPT, /* AA / CA */
    HUB_V2_ACK_ERROR,  /* AE / CE: the message was understood, not applied */
    HUB_V2_ACK_REJECT  /* AR / CR: the message was not accepted at all */
} hub_v2_ack_status;

typedef enum {
    HUB_V2_ACKMODE_ORIGINAL,    /* MSA-1 AA/AE/AR */
    HUB_V2_ACKMODE_ENHANCED     /* MSA-1 CA/CE/CR (accept ack) */
} hub_v2_ack_mode;

/* Enhanced mode when MSH-15 or MSH-16 is non-empty, else original. */
hub_v2_ack_mode hub_v2_msg_ack_mode(const hub_v2_msg *m);
/* In enhanced mode, whether MSH-15 asks for an accept ACK for `status`
 * (AL always, NE never, ER on error/reject, SU on accept; empty: always).
 * Always true in original mode. */
bool hub_v2_ack_wanted(const hub_v2_msg *m, hub_v2_ack_status status);

typedef struct {
    hub_v2_ack_status status;
    const hub_v2_finding *findings; /* ERR segments, at most
                                     * HUB_MAX_ACK_ERRORS written */
    size_t nfindings;
    const char *app;        /* ACK MSH-3; NULL: original MSH-5 or "HUB" */
    const char *facility;   /* ACK MSH-4; NULL: original MSH-6 */
    const char *control_id; /* ACK MSH-10; NULL: a generated id */
    const char *timestamp;  /* ACK MSH-7 (DTM); NULL: now, UTC */
    const char *text;       /* MSA-3 text (not patient data) or NULL */
    bool force_original;    /* AA/AE/AR even when MSH-15/16 are set */
} hub_v2_ack_req;

/* Builds the ACK for `m` into `out` (appended; segments end with CR):
 * MSH (sender/receiver swapped, MSH-9 ACK^<trigger>^ACK, MSH-11/-12 echoed,
 * the message's own delimiters), MSA (MSA-1 from status and mode, MSA-2 =
 * MSH-10), and one ERR per finding: for v2.5+ ERR-2 location, ERR-3
 * code^text^HL70357, ERR-4 severity, ERR-8 text; before v2.5, ERR-1
 * (ELD) with the same content. Values are escaped. Errors: HUB_E_NOMEM. */
hub_status hub_v2_ack_build(const hub_v2_msg *m, const hub_v2_ack_req *req,
                            hub_buf *out, hub_err *err);
/* The best ACK that can be built from bytes that did not parse (broken
 * MSH, no MSH, empty input, garbage): salvages the delimiters, MSH-3..6,
 * MSH-9, MSH-10, MSH-11, MSH-12 where they can be found (printable bytes
 * only, at most 80 per value), and always writes MSA-1 AR (CR when MSH-15
 * or MSH-16 are salvaged and set; req->status is ignored). `p` may be NULL
 * when n is 0; `req` may be NULL (no findings, defaults). Never fails
 * except HUB_E_NOMEM. */
hub_status hub_v2_ack_build_raw(const char *p, size_t n,
                                const hub_v2_ack_req *req, hub_buf *out,
                                hub_err *err);

/* ==== conformance profiles and the validator ============================
 *
 * Base profiles, one per HL7 version, are generated into
 * conformance/v2/base/ (see conformance/v2/README.md): message structures,
 * trigger-event to structure map, segments, datatypes, and one shared file
 * of HL7 tables. A profile set opens that directory and loads each version
 * on first use, so start-up costs nothing; tables load with the first
 * version.
 *
 * A site profile is a JSON file bound to a sender by configuration. It
 * names a base version (or follows the message's MSH-12), and tightens
 * rules: field and component usage, allowed codes, lengths, extra or
 * replaced message structures, Z-segment handling and severity overrides.
 * Format: conformance/v2/README.md; example: conformance/v2/site/.
 *
 * The validator reports hub_v2_finding values (hub/v2.h): location, HL7
 * table 0357 code, severity from a policy, and a diagnosis that never
 * quotes patient data. The same findings feed hub_v2_ack_build. */


/* ---- profile set (base profiles) ----------------------------------------- */

typedef struct hub_v2_profset hub_v2_profset;
typedef struct hub_v2_profile hub_v2_profile; /* one base version */

/* Opens the base profiles under `dir` (a directory holding base/ such as
 * HUB_SOURCE_DIR "/conformance/v2"). Reads only base/versions.txt; each
 * version's file is read on first use. Thread-safe after open.
 * Errors: HUB_E_IO (where = the file) when versions.txt cannot be read,
 * HUB_E_NOMEM. */
hub_status hub_v2_profset_open(const char *dir, hub_v2_profset **out,
                               hub_err *err);
void hub_v2_profset_close(hub_v2_profset *s); /* NULL is a no-op */

/* The base profile of `version` ("2.5.1"), loaded on first call; borrowed
 * until the set is closed. Errors: HUB_E_NOTFOUND (version not shipped),
 * HUB_E_IO / HUB_E_PARSE (file missing or malformed; where = file name),
 * HUB_E_NOMEM. */
hub_status hub_v2_profset_get(hub_v2_profset *s, const char *version,
                              const hub_v2_profile **out, hub_err *err);
/* The shipped versions, oldest first; *n receives the count. Borrowed. */
const char *const *hub_v2_profset_versions(const hub_v2_profset *s, size_t *n);

/* Picks the version whose base profile validates a message declaring
 * `declared` (MSH-12.1): itself when shipped; the newest shipped version
 * for a newer 2.x (e.g. 2.8.2 -> 2.8); the oldest for an older 2.x.
 * Writes it to out[size]; returns 0 for an exact match, 1 for a fallback,
 * -1 when `declared` is not a 2.x version id (nothing written). */
int hub_v2_profset_pick(const hub_v2_profset *s, hub_slice declared,
                        char *out, size_t size);

/* Profile queries (used by the validator, tests and tools). */
const char *hub_v2_profile_version(const hub_v2_profile *p);
size_t hub_v2_profile_nstructs(const hub_v2_profile *p);
/* The structure for MSH-9 parts (any may be absent): `structure` (MSH-9.3)
 * when known, else the one the event map names for code^trigger, else
 * code alone ("ACK"). NULL when none. Borrowed. */
const char *hub_v2_profile_struct_for(const hub_v2_profile *p, hub_slice code,
                                      hub_slice trigger, hub_slice structure);
/* The structure `name` as the v2 engine's definition type, for
 * hub_v2_group_match (navigation by group, `hub inspect`). A choice of
 * segments (<OBR|RXO>) becomes a group named "<OBR|RXO>" whose
 * alternatives are each optional. NULL when unknown. Borrowed until the
 * set is closed. */
const hub_v2_struct_def *hub_v2_profile_struct_def(const hub_v2_profile *p,
                                                   const char *name);
/* True when the profile defines any event of message code `code`. */
bool hub_v2_profile_knows_code(const hub_v2_profile *p, hub_slice code);

/* A field or component definition. */
typedef struct {
    const char *name;     /* "Patient Identifier List" */
    const char *datatype; /* "CX" */
    char usage;           /* 'R' required, 'O' optional, 'C' conditional,
                           * 'B' backward compatible, 'X' not supported,
                           * 'W' withdrawn by the version (base profiles) */
    bool repeats;         /* fields only */
    uint32_t max_len;     /* 0: no limit known */
    uint16_t table;       /* HL7 table number, 0: none */
    uint8_t table_comp;   /* fields: the component `table` applies to
                           * (CDO-4's units, CQ.2, take table 0924);
                           * 0: the field itself */
} hub_v2_item_def;

/* Definition of field `field` (1-based) of segment `seg_id`, or NULL. */
const hub_v2_item_def *hub_v2_profile_field(const hub_v2_profile *p,
                                            const char *seg_id, size_t field);
/* Component `comp` (1-based) of datatype `dt`, or NULL (also for
 * primitive datatypes). */
const hub_v2_item_def *hub_v2_profile_comp(const hub_v2_profile *p,
                                           const char *dt, size_t comp);
/* True when `code` is in HL7 table `table`; -1 when the table is unknown
 * or has no codes (nothing to check). */
int hub_v2_profile_table_has(const hub_v2_profile *p, unsigned table,
                             hub_slice code);

/* ---- policy: which findings are errors -------------------------------------- */

/* Every kind of finding the validator makes; each has a default severity
 * (see hub_v2_policy_default and conformance/v2/README.md). */
#define HUB_V2_RULE_LIST(X)                                                 \
    X(VERSION_UNKNOWN, "version_unknown", 203, 'E')                         \
    X(VERSION_FALLBACK, "version_fallback", 203, 'W')                       \
    X(MSG_TYPE_UNKNOWN, "msg_type_unknown", 200, 'E')                       \
    X(EVENT_UNKNOWN, "event_unknown", 201, 'E')                             \
    X(STRUCT_UNKNOWN, "struct_unknown", 200, 'E')                           \
    X(STRUCT_MISMATCH, "struct_mismatch", 200, 'W')                         \
    X(PROCESSING_ID, "processing_id", 202, 'E')                             \
    X(SEG_MISSING, "seg_missing", 100, 'E')                                 \
    X(SEG_UNEXPECTED, "seg_unexpected", 100, 'W')                           \
    X(SEG_Z, "seg_z", 100, 'E')                                             \
    X(SEG_NEWER, "seg_newer", 100, 'W')                                     \
    X(FIELD_MISSING, "field_missing", 101, 'E')                             \
    X(COMP_MISSING, "comp_missing", 101, 'W')                               \
    X(FIELD_REPEAT, "field_repeat", 102, 'W')                               \
    X(FIELD_UNSUPPORTED, "field_unsupported", 102, 'W')                     \
    X(FIELD_EXTRA, "field_extra", 102, 'I')                                 \
    X(DATE_IMPOSSIBLE, "date_impossible", 102, 'E')                         \
    X(DATE_FORMAT, "date_format", 102, 'E')                                 \
    X(NUMBER, "number", 102, 'E')                                           \
    X(TABLE_HL7, "table_hl7", 103, 'W')                                     \
    X(TABLE_USER, "table_user", 103, 'W')                                   \
    X(TABLE_CODED, "table_coded", 103, 'W')                                 \
    X(TABLE_SITE, "table_site", 103, 'E')                                   \
    X(TOO_LONG, "too_long", 104, 'W')                                       \
    X(CHARSET, "charset", 102, 'W')

typedef enum {
#define HUB__V2R_ENUM(id, name, code, sev) HUB_V2R_##id,
    HUB_V2_RULE_LIST(HUB__V2R_ENUM)
#undef HUB__V2R_ENUM
    HUB_V2R__COUNT
} hub_v2_rule;

/* Severity per rule: 'E', 'W', 'I', or 0 (the check is off). */
typedef struct {
    char sev[HUB_V2R__COUNT];
} hub_v2_policy;

void hub_v2_policy_default(hub_v2_policy *p);
/* "too_long" etc.; NULL for an out-of-range rule. */
const char *hub_v2_rule_name(hub_v2_rule r);
/* Sets rule `name` to `sev` ("error", "warning", "info", "off").
 * Errors: HUB_E_ARG (where = the rule name or "severity"). */
hub_status hub_v2_policy_set(hub_v2_policy *p, const char *name,
                             const char *sev, hub_err *err);

/* ---- site profiles ------------------------------------------------------- */

typedef struct hub_v2_site hub_v2_site;

/* Loads a site profile from `path` (JSON, at most HUB_MAX_CONFIG_FILE
 * bytes). Its base version, when given, must be in `s`.
 * Errors: HUB_E_IO (cannot read; where = path), HUB_E_PARSE (not JSON;
 * msg has line and column), HUB_E_CONFIG (a bad key or value; where =
 * the key, e.g. "fields.PID-3.4"), HUB_E_NOTFOUND (unknown base version),
 * HUB_E_NOMEM. */
hub_status hub_v2_site_load(hub_v2_profset *s, const char *path,
                            hub_v2_site **out, hub_err *err);
/* The same from JSON text in memory (`p`/`n`, need not be NUL-terminated);
 * `where` names it in errors. */
hub_status hub_v2_site_parse(hub_v2_profset *s, const char *p, size_t n,
                             const char *where, hub_v2_site **out,
                             hub_err *err);
void hub_v2_site_free(hub_v2_site *site); /* NULL is a no-op */
/* Applies the site profile's own "policy" overrides to `p`. */
void hub_v2_site_policy(const hub_v2_site *site, hub_v2_policy *p);
/* A structure the site profile defines (as hub_v2_profile_struct_def),
 * or NULL. */
const hub_v2_struct_def *hub_v2_site_struct_def(const hub_v2_site *site,
                                                const char *name);
/* The profile's "name"; borrowed. */
const char *hub_v2_site_name(const hub_v2_site *site);

/* ---- validate -------------------------------------------------------------- */

typedef struct {
    hub_v2_finding *items; /* arena array */
    size_t n;
    size_t nerrors, nwarnings, ninfos;
    bool truncated;        /* more than `max` findings: the rest dropped */
    const char *version;   /* base version used (borrowed), NULL if none */
    const char *structure; /* structure validated against, NULL if none */
} hub_v2_findings;

typedef struct {
    const hub_v2_site *site;     /* NULL: base profile only */
    const hub_v2_policy *policy; /* NULL: the defaults with the site's
                                  * own overrides; else used as is */
    size_t max;                  /* findings kept; 0 means 1000 */
} hub_v2_validate_opts;

/* Validates parsed message `m`: version (MSH-12), message type and event
 * (MSH-9), processing id (MSH-11), structure (segment order, groups,
 * cardinality, Z-segments), required fields and components, datatypes
 * (DTM/DT/TM, NM, SI), coded values (ID, IS, CE/CWE/CNE with an HL7 coding
 * system), lengths, and the parser's charset warnings. Findings are
 * allocated in `a` and sorted by segment. A failure to load the base
 * profile is a finding (207), not an error.
 * Errors: HUB_E_NOMEM only. */
hub_status hub_v2_validate(hub_arena *a, hub_v2_profset *s,
                           const hub_v2_msg *m,
                           const hub_v2_validate_opts *opts,
                           hub_v2_findings *out, hub_err *err);

/* Checks one value against a datatype, as the validator does: 0 when
 * valid, else the rule it breaks (HUB_V2R_DATE_IMPOSSIBLE,
 * HUB_V2R_DATE_FORMAT or HUB_V2R_NUMBER) with a literal reason in *why.
 * Known datatypes: DTM, TS (first component), DT, TM, NM, SI. */
int hub_v2_check_value(const char *datatype, hub_slice v, const char **why);

#endif
