/* Internals shared by hub/v2/profile.c and hub/v2/validate.c. */
#ifndef HUB_V2_PROFILE_INTERNAL_H
#define HUB_V2_PROFILE_INTERNAL_H

#include "hub/v2.h"

#include <jansson.h>
#include <pthread.h>

/* A node of a message structure: a segment, a group (children in order)
 * or a choice (one of the alternatives, each a segment node). */
enum { HUB__PN_SEG, HUB__PN_GROUP, HUB__PN_CHOICE };

typedef struct hub__pnode {
    uint8_t kind;
    uint8_t min;       /* 0 or 1 */
    bool unbounded;    /* max is * (else 1) */
    const char *name;  /* segment id, group name, or "OBR|RXO" */
    struct hub__pnode *kids;
    uint32_t nkids;
    /* Resolved when parsed, for the validator: a segment's id as
     * hub__seg_key; for a group, the sorted keys of every segment inside
     * it (ids) and of those that can start it (starts). */
    uint32_t key;
    uint32_t nids, nstarts;
    const uint32_t *ids, *starts;
} hub__pnode;

/* A 3-byte segment id as a number. */
static inline uint32_t hub__seg_key(const char *id) {
    return (uint32_t)(unsigned char)id[0] << 16 | (uint32_t)(unsigned char)id[1] << 8 |
           (uint32_t)(unsigned char)id[2];
}

typedef struct {
    const char *name;
    hub__pnode root; /* a group */
    hub_v2_struct_def def; /* the same, as the engine's type */
} hub__pstruct;

typedef struct {
    const char *key; /* "ADT^A04" or "ACK" */
    const char *structure;
} hub__pevent;

typedef struct hub__pres hub__pres;

typedef struct {
    char id[4];
    hub_v2_item_def *items;
    hub__pres *res; /* per item, resolved at load */
    size_t n;
    uint16_t *req;  /* numbers of the required fields, ascending */
    size_t nreq;
} hub__pseg;

typedef struct hub__pdt {
    const char *name;
    hub_v2_item_def *items;
    hub__pres *res; /* per item, resolved at load */
    size_t n;
    uint16_t *req;  /* numbers of the required components, ascending */
    size_t nreq;
} hub__pdt;

typedef struct {
    uint16_t id;
    const char **codes; /* sorted by strcmp */
    size_t n;
    uint16_t *lens;     /* strlen of each code */
    uint32_t *slots;    /* open addressing: code index + 1, 0 empty */
    uint32_t mask;      /* slots - 1 (a power of 2 minus 1) */
} hub__ptable;

/* The value check a datatype gets (hub_v2_check_value). */
enum { HUB__VK_NONE, HUB__VK_DTM, HUB__VK_DT, HUB__VK_TM, HUB__VK_NM, HUB__VK_SI };
/* Kind of a leaf datatype for table checks. */
enum { HUB__LK_OTHER, HUB__LK_ID, HUB__LK_IS };

/* What the validator needs of an item definition, resolved once when the
 * version loads instead of per value: its datatype's definition, the
 * leading primitive it is checked as, and its table. */
struct hub__pres {
    const hub__pdt *pdt;        /* the datatype's definition, NULL if none */
    const char *leaf;           /* leading primitive (the datatype itself
                                 * when primitive) */
    const hub__ptable *table;   /* NULL: no table, unknown or without codes */
    bool composite;             /* pdt has components and is not TS */
    bool coded;                 /* CE, CWE, CNE */
    uint8_t leaf_check;         /* HUB__VK_* */
    uint8_t leaf_kind;          /* HUB__LK_* */
    bool leaf_plain;            /* as a leaf, only its length can be
                                 * wrong: no value check, no table */
    /* A field whose table binds one of its components (table_comp): that
     * component's definition and resolution with the table in place of
     * the datatype's; NULL otherwise. */
    const hub_v2_item_def *bound_def;
    const struct hub__pres *bound_res;
};

typedef struct {
    hub__ptable *items; /* sorted by id */
    size_t n;
} hub__ptables;

struct hub_v2_profile {
    hub_arena arena;
    char version[16];
    const hub__ptables *tables; /* the set's, shared; or `own` when the
                                 * version adds codes ("tables" section) */
    hub__ptables own;
    hub__pevent *events;
    size_t nevents;
    hub__pstruct *structs;
    size_t nstructs;
    hub__pseg *segs;
    size_t nsegs;
    hub__pdt *dts;
    size_t ndts;
    uint16_t *seg_slots; /* open addressing by id: index in segs + 1 */
    uint32_t seg_mask;
};

/* A site rule: tightens one field, component or sub-component. */
typedef struct {
    char seg[4];
    uint16_t field, comp, sub; /* comp/sub 0: the field itself */
    char usage;                /* 0: unchanged */
    uint32_t max_len;          /* 0: unchanged */
    const char **codes;        /* sorted; NULL: unchanged */
    size_t ncodes;
} hub__srule;

enum { HUB__Z_ANYWHERE, HUB__Z_DECLARED, HUB__Z_LISTED };

struct hub_v2_site {
    hub_arena arena;
    const char *name;
    char base[16];             /* "" follows the message's version */
    char pol_sev[HUB_V2R__COUNT];
    bool pol_set[HUB_V2R__COUNT];
    int z_mode;
    const char **z_ids;        /* HUB__Z_LISTED */
    size_t nz;
    const char **messages;     /* accepted "TYPE^EVENT" (or "TYPE"); NULL: any */
    size_t nmessages;
    hub__srule *rules;
    size_t nrules;
    hub__pstruct *structs;     /* replace or add structures */
    size_t nstructs;
};

/* Parses one structure (the JSON array form) into `out`, nodes in `a`.
 * Errors: HUB_E_CONFIG (where = `where`), HUB_E_NOMEM. */
hub_status hub__pstruct_parse(hub_arena *a, json_t *arr, const char *where,
                              hub__pnode *out, hub_err *err);
const hub__pstruct *hub__profile_struct(const hub_v2_profile *p,
                                        const char *name);
const hub__pdt *hub__profile_dt(const hub_v2_profile *p, const char *name);
const hub__pseg *hub__profile_seg(const hub_v2_profile *p, const char *id);
/* hub_v2_profile_table_has for a resolved table: true when `code` is in
 * it (t must not be NULL). */
bool hub__table_has(const hub__ptable *t, hub_slice code);
/* The value check of datatype `dt` (HUB__VK_*). */
int hub__value_kind(const char *dt);
/* hub_v2_check_value with the datatype's check resolved (HUB__VK_*). */
int hub__check_kind(int kind, hub_slice v, const char **why);
/* Looks a code up in a sorted array. */
bool hub__codes_has(const char *const *codes, size_t n, hub_slice code);
/* "2.5.1" -> 20501 (major*10000 + minor*100 + patch); -1 if not a version */
int hub__version_num(hub_slice v);

#endif
