/* FHIR REST helpers for the e2e tests: one HTTP/1.1 request with any
 * headers, the answer's status, headers and body, and JSON helpers. */
#ifndef HUB_FHIR_TEST_H
#define HUB_FHIR_TEST_H

#include "hub/core.h"
#include <jansson.h>

typedef struct {
    int status;
    hub_buf headers; /* the raw header block */
    hub_buf body;    /* NUL-terminated */
} ft_resp;

/* `hdrs` is "Name: value\r\n..." or NULL. Returns the status (-1 on a
 * transport failure); `out` is released by ft_release. */
int ft_req(int port, const char *method, const char *path, const char *hdrs,
           const char *body, size_t n, ft_resp *out);
void ft_release(ft_resp *r);
/* A header's value (case-insensitive name) into `out`; NULL when absent. */
const char *ft_header(const ft_resp *r, const char *name, char *out, size_t cap);
/* The body as JSON (a new reference) or NULL. */
json_t *ft_json(const ft_resp *r);
/* The first issue's field ("code", "diagnostics", "expression" -> the first
 * expression) of an OperationOutcome body, or "" (static storage). */
const char *ft_issue(const ft_resp *r, const char *field);
/* A deep copy of `res` without meta (and without id when drop_id). */
json_t *ft_strip_meta(const json_t *res, bool drop_id);
/* The patient index (docs/mpi.md) stores every Patient a client writes
 * with one link of type `refer` to its golden Patient: removes that link
 * from `res` (and `link` when nothing else is left in it). Returns the
 * golden's reference ("Patient/<id>", static storage) or NULL when there
 * was not exactly one such link. */
const char *ft_drop_golden_link(json_t *res);

/* How many events an AuditEvent stands for: 1, or the count detail of a
 * grouped row's entity (one party's reads or refusals in one batch). */
int ft_audit_events(const json_t *ae);

#endif
