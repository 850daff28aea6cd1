/* map internals: the loaded tables, shared by load.c, run.c and conv.c. */
#ifndef HUB_MAP_INTERNAL_H
#define HUB_MAP_INTERNAL_H

#include "hub/map.h"

/* The interpreter's JSON tree (tree.c): nodes in an arena, members and
 * elements in insertion order. Strings and keys are borrowed: they must
 * outlive the tree (the message's arena, the map's tables, literals), and
 * every string is NUL-terminated at its length. */
typedef enum { MJ_NULL, MJ_TRUE, MJ_FALSE, MJ_INT, MJ_REAL, MJ_STR, MJ_OBJ, MJ_ARR } mj_kind;
typedef struct mj {
    uint8_t kind;
    uint8_t flags;      /* MJ_KEY_PLAIN, MJ_STR_PLAIN */
    uint16_t klen;      /* the key's length, with MJ_KEY_PLAIN */
    uint32_t n;         /* members or elements */
    const char *key;    /* as a member of an object */
    struct mj *next;    /* the next member or element */
    union {
        struct { struct mj *head, *tail; } k;
        struct { const char *p; size_t n; } s;
        long long i;
        double d;
    } u;
} mj;

/* Where a tree's nodes come from: its arena, in slabs of nodes (one
 * arena call per slab, not per node: a Bundle has some 2,400 nodes).
 * Initialise with {arena}; the slab lives as long as the arena is not
 * reset. */
typedef struct {
    hub_arena *a;
    mj *next, *end;
} mj_heap;

/* Constructors: NULL on allocation failure, for a string that is not
 * UTF-8 and for a real that is not finite (as jansson refuses them). */
mj *hub__mj_obj(mj_heap *h);
mj *hub__mj_arr(mj_heap *h);
mj *hub__mj_bool(mj_heap *h, bool v);
mj *hub__mj_int(mj_heap *h, long long v);
mj *hub__mj_real(mj_heap *h, double v);
mj *hub__mj_str(mj_heap *h, const char *s);                /* borrowed */
mj *hub__mj_strn(mj_heap *h, const char *p, size_t n);     /* borrowed; p[n] == 0 */
mj *hub__mj_strdup(mj_heap *h, const char *p, size_t n);   /* copied */
/* A string the caller made of characters JSON writes as they are (ASCII
 * letters, digits, "-._~:/?=|%": a literal, an id, a url or query this
 * interpreter encoded): neither checked for UTF-8 nor for escapes. */
mj *hub__mj_plain(mj_heap *h, const char *p, size_t n);    /* borrowed; p[n] == 0 */
#define MJ_PLAIN_LIT(h, s) hub__mj_plain((h), "" s "", sizeof(s) - 1)
const char *hub__mj_sval(const mj *v); /* NULL unless a string */
/* Objects: set replaces a member where it stands or appends it (v NULL,
 * or o no object: nothing happens); update moves src's members into dst. */
mj *hub__mj_get(const mj *o, const char *k);
void hub__mj_set(mj *o, const char *k, mj *v);
/* The same, for a key the caller knows JSON writes as it is (letters,
 * digits, '_', '-', ...: a table's element name, a literal) and whose
 * length it knows: the text writer copies it without looking. */
#define MJ_KEY_PLAIN 1u
/* A string JSON writes as it is (no control character, '"' or '\\'):
 * found when the string is checked for UTF-8, so the writer only copies. */
#define MJ_STR_PLAIN 2u
void hub__mj_setk(mj *o, const char *k, size_t klen, mj *v);
#define MJ_SET_LIT(o, k, v) hub__mj_setk((o), "" k "", sizeof(k) - 1, (v))
/* hub__mj_setk for a key o is known not to have: appended, no search. */
void hub__mj_addk(mj *o, const char *k, size_t klen, mj *v);
/* Sets v under the key it has already (a copied member). */
void hub__mj_set_keyed(mj *o, mj *v);
void hub__mj_del(mj *o, const char *k);
void hub__mj_update(mj *dst, mj *src);
/* Arrays. */
void hub__mj_append(mj *arr, mj *v);
void hub__mj_prepend(mj *arr, mj *v);
mj *hub__mj_at(const mj *arr, size_t i);
void hub__mj_set_at(mj *arr, size_t i, mj *v);
size_t hub__mj_size(const mj *v); /* members or elements; 0 otherwise */
mj *hub__mj_copy(mj_heap *h, const mj *v);
/* Removes empty objects and arrays below v; true when v is one. */
bool hub__mj_prune(mj *v);
mj *hub__mj_from_json(mj_heap *h, const json_t *j);
json_t *hub__mj_to_json(const mj *v); /* a new reference, NULL: no memory */
/* Appends compact JSON text (hub_json_dumps's form). */
hub_status hub__mj_dump(const mj *v, hub_buf *out);

typedef enum { TK_MESSAGE, TK_SEGMENT, TK_DATATYPE, TK_VOCAB, TK_LOCAL } table_kind;

/* A position: a field of a segment (segment tables) or a component of the
 * current value (datatype tables). seg[0] == 0: the current segment or
 * value. */
typedef struct {
    char seg[4];
    uint16_t field, rep, comp, sub; /* rep 0: every repetition */
} mpos;

/* A source: one position, or a concatenation of positions and literals.
 * Rows keep their variable parts (terms, clauses, values, links) in the
 * map's arena, sized to what the row has: a row is ~200 bytes, not ~1 KB
 * of mostly empty slots, which start-up paid for in page faults. */
typedef struct {
    bool lit;
    const char *text; /* literal */
    mpos pos;
} mterm;

typedef struct {
    bool self;        /* "." or empty: the current value itself */
    uint8_t nterms;   /* at most 8 */
    const mterm *terms;
} msrc;

typedef enum { C_VALUED, C_NOT_VALUED, C_EQ, C_NE, C_IN, C_NOT_IN } cop;

/* A table's clauses that read the same position share a slot: running
 * the table over one value reads that position once (an OBX's rows test
 * OBX-2 some thirty times). MAP_NO_SLOT: read each time. */
#define MAP_SLOTS 32
#define MAP_NO_SLOT 0xFF

typedef struct {
    mpos pos;
    bool self;
    uint8_t slot;
    uint8_t rslot; /* clauses alike in a table share a result slot (at
                    * most 64; MAP_NO_SLOT: evaluated each time) */
    cop op;
    uint8_t nvals;    /* at most 12 */
    const char **vals;
} mclause;

typedef struct {
    uint8_t n;        /* at most 6, ANDed */
    const mclause *c;
} mcond;

/* One step of a target path: name, and how the array index is chosen. */
typedef enum { IX_NONE, IX_APPEND, IX_AT, IX_SELECT } ixkind;
typedef struct {
    const char *name;
    uint16_t nlen;  /* strlen(name): names are letters, digits and '_' */
    ixkind ix;
    unsigned at;
    const char *key, *val; /* IX_SELECT: [key=val] */
} mstep;

/* A message-table link: this resource's `elem` refers to resource `name`,
 * or (back) resource `name`'s `elem` refers to this one. */
typedef struct {
    const char *name;
    bool back;
    mstep *steps;
    uint8_t nsteps;
} mlink;

typedef enum { MK_NONE, MK_TABLE, MK_PRIM, MK_FIXED, MK_REF } mkind;

typedef enum {
    P_STRING, P_CODE, P_ID, P_URI, P_DATE, P_DATETIME, P_TIMESTAMP, P_INSTANT, P_TIME,
    P_DECIMAL, P_INTEGER, P_POSINT, P_UNSIGNED, P_BOOLEAN, P_MARKDOWN,
    P_SYSTEM, /* a coding-system name (CWE-3) as a URI */
    P_BASE64, /* text, encoded as base64 (Attachment.data of a text) */
    P_B64BIN, /* a value already base64 (ED-5): checked, kept */
    P_B64HEX  /* a value sent as hexadecimal (ED-4 Hex): its bytes, as base64 */
} prim;

struct mtable;

typedef struct mrow {
    int line;
    /* segment and datatype tables */
    msrc src;
    mcond cond;
    mstep *steps;
    uint8_t nsteps;
    mkind kind;
    prim prim;
    const char *table_name;
    struct mtable *table;   /* resolved MK_TABLE */
    json_t *fixed;          /* MK_FIXED, as loaded */
    mj *fixed_mj;           /* the same, as the interpreter copies it */
    const char *ref;        /* MK_REF: a resource name */
    const char *vocab_name;
    struct mtable *vocab;   /* resolved */
    bool each;              /* the source's repetitions each map */
    bool strict;            /* "date!": a bad value fails the message */
    /* message tables */
    char seg[4];
    const char *group;      /* "ORDER_OBSERVATION" or NULL */
    const char *rtype;      /* resource type */
    bool into;              /* "@name": into an existing resource */
    const char *name;       /* the resource's name in the message */
    const char *key;        /* identifier, content, message */
    const mlink *links; /* at most 6 */
    uint8_t nlinks;
    /* vocab and local tables */
    const char *from, *code, *display, *system;
} mrow;

typedef struct mtable {
    char *file;        /* "segments/PID.map" */
    char *name;        /* "PID[Patient]" */
    table_kind kind;
    const char *resource;   /* segment/datatype tables making a resource */
    const char *key;        /* datatype tables making a resource */
    const char *system;     /* vocab: default target system */
    const char *source_system; /* local: CWE-3 covered ("*": any) */
    const char *extends;    /* message tables: rows appended to that table */
    const char *structures[16];
    size_t nstructures;
    const char *events[32];
    size_t nevents;
    mrow *rows;         /* the map's arena */
    size_t nrows, cap;
    /* vocab and local: rows sorted by `from` for bsearch, and hashed
     * (hidx[hash & hmask]: a row's index + 1, 0 empty; NULL: none) */
    bool sorted;
    uint32_t *hidx;
    size_t hmask;
} mtable;

struct hub_map {
    hub_arena arena;   /* every string and row */
    mj_heap fixed;     /* the fixed values' nodes (mrow.fixed_mj), in arena */
    mtable **tables;
    size_t ntables, cap;
    size_t nrows;
    const mtable *coding_systems; /* vocab "CodingSystem" */
};

const mtable *hub__map_find(const hub_map *m, const char *name, int kind);
/* Looks up `code` (and `system` when the row names one). */
const mrow *hub__map_vocab(const mtable *t, const char *code, size_t n);

#endif
