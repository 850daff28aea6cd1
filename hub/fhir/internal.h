/* fhir internals shared by the files of hub/fhir. */
#ifndef HUB_FHIR_INTERNAL_H
#define HUB_FHIR_INTERNAL_H

#include "hub/fhir.h"

#define HUB__FHIR_NONE UINT32_MAX

typedef enum {
    HUB__FK_RESOURCE,
    HUB__FK_ABSTRACT_RESOURCE,
    HUB__FK_COMPLEX,
    HUB__FK_ABSTRACT_COMPLEX,
    HUB__FK_PRIMITIVE
} hub__fhir_kind;

/* The lexical form a primitive's value is checked against (validate.c). */
typedef enum {
    HUB__FP_NONE, /* not a primitive */
    HUB__FP_BOOLEAN,
    HUB__FP_INTEGER,
    HUB__FP_UNSIGNED,
    HUB__FP_POSITIVE,
    HUB__FP_DECIMAL,
    HUB__FP_STRING,
    HUB__FP_MARKDOWN,
    HUB__FP_URI,
    HUB__FP_URL,
    HUB__FP_CANONICAL,
    HUB__FP_BASE64,
    HUB__FP_INSTANT,
    HUB__FP_DATE,
    HUB__FP_DATETIME,
    HUB__FP_TIME,
    HUB__FP_CODE,
    HUB__FP_OID,
    HUB__FP_ID,
    HUB__FP_UUID,
    HUB__FP_XHTML,
    HUB__FP_OTHER /* a primitive this build has no lexical check for */
} hub__fhir_prim;

typedef struct {
    const char *name;
    uint8_t kind; /* hub__fhir_kind */
    uint8_t json; /* hub_fhir_json_kind */
    uint8_t prim; /* hub__fhir_prim */
    uint32_t group; /* the group of its elements, or HUB__FHIR_NONE */
} hub__fhir_type;

/* The children of one key ("Patient", "Patient.contact"): elems[start..+n). */
typedef struct {
    const char *key;
    uint32_t keylen;
    uint32_t start, n;
} hub__fhir_group;

/* 8 bytes: the table is probed for every property validated. */
typedef struct {
    uint16_t hash; /* high bits of the hash */
    uint16_t group, elem, tidx; /* elem == HUB__FHIR_SLOT_EMPTY: empty */
} hub__fhir_child_slot;
#define HUB__FHIR_SLOT_EMPTY UINT16_MAX

typedef struct {
    const char *url;
    bool complete;
} hub__fhir_vs;

typedef struct {
    uint32_t hash, vs;
    const char *code, *system;
} hub__fhir_code_slot;

struct hub_fhir_defs {
    char *text[3]; /* the three files, tokenized in place: every string */
    char version[16];

    hub_fhir_elem *elems;
    size_t nelems;
    uint32_t *elem_group;            /* children group of each elem, or NONE */
    const char **typenames;          /* backs elems[i].types */
    const hub__fhir_type **elemtype; /* parallel to typenames */

    hub__fhir_type *types;
    size_t ntypes;
    uint32_t *type_slots; /* name -> index + 1 */
    uint32_t type_mask;

    const char **resources; /* sorted */
    size_t nresources;

    hub__fhir_group *groups;
    size_t ngroups, capgroups;
    uint32_t *group_slots; /* key -> index + 1 */
    uint32_t group_mask;

    hub__fhir_child_slot *child_slots;
    uint32_t child_mask;

    hub__fhir_vs *vs;
    size_t nvs, capvs;
    uint32_t *vs_slots;
    uint32_t vs_mask;
    hub__fhir_code_slot *code_slots; /* code == NULL: empty */
    uint32_t code_mask;
};

/* Type info by name (NUL-terminated or `n` bytes); NULL when unknown. */
const hub__fhir_type *hub__fhir_type_get(const hub_fhir_defs *d, const char *name,
                                         size_t n);
/* The group of a key; HUB__FHIR_NONE when unknown. */
uint32_t hub__fhir_group_get(const hub_fhir_defs *d, const char *key, size_t n);
/* The child of group `g` that JSON name (p, n) denotes: elem index and the
 * index of the chosen type; HUB__FHIR_NONE when none. */
uint32_t hub__fhir_child_get(const hub_fhir_defs *d, uint32_t g, const char *p,
                             size_t n, uint32_t *tidx);

static inline size_t hub__fhir_elem_index(const hub_fhir_defs *d,
                                          const hub_fhir_elem *e) {
    return (size_t)(e - d->elems);
}

#endif
