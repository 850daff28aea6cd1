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
} hub__pnode;

typedef struct {
    const char *name;
    hub__pnode root; /* a group */
    hub_v2_struct_def def; /* the same, as the engine's type */
} hub__pstruct;

typedef struct {
    const char *key; /* "ADT^A04" or "ACK" */
    const char *structure;
} hub__pevent;

typedef struct {
    char id[4];
    hub_v2_item_def *items;
    size_t n;
} hub__pseg;

typedef struct {
    const char *name;
    hub_v2_item_def *items;
    size_t n;
} hub__pdt;

typedef struct {
    uint16_t id;
    const char **codes; /* sorted by strcmp */
    size_t n;
} hub__ptable;

typedef struct {
    hub__ptable *items; /* sorted by id */
    size_t n;
} hub__ptables;

struct hub_v2_profile {
    hub_arena arena;
    char version[16];
    const hub__ptables *tables; /* the set's, shared */
    hub__pevent *events;
    size_t nevents;
    hub__pstruct *structs;
    size_t nstructs;
    hub__pseg *segs;
    size_t nsegs;
    hub__pdt *dts;
    size_t ndts;
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
/* Looks a code up in a sorted array. */
bool hub__codes_has(const char *const *codes, size_t n, hub_slice code);
/* "2.5.1" -> 20501 (major*10000 + minor*100 + patch); -1 if not a version */
int hub__version_num(hub_slice v);

#endif
