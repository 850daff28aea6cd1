/* cli: the start-up shared by hub serve, hub replay and hub reindex. */
#ifndef HUB_CLI_STARTUP_H
#define HUB_CLI_STARTUP_H

#include "hub/core.h"
#include "hub/fhir.h"
#include "hub/record.h"
#include "hub/store.h"

struct hub_mpi;
struct hub_audit;
struct hub_route;

/* Defaults, then the --config file, then the environment into cfg (flags
 * come after, from the command's own loop). 0, or 2 after an error. */
int hub__cli_config(const char *cmd, int argc, char **argv, hub_cfg *cfg);
/* True (and *i past its value) when argv[*i] is --config, which
 * hub__cli_config has read. */
bool hub__cli_is_config(const char *cmd, int argc, char **argv, int *i);
/* The conformance directory cfg names, or the source tree's. */
const char *hub__cli_conformance(const hub_cfg *cfg);

/* The listeners every change goes through, as the configuration asks:
 * the patient index (mpi.enabled, on by default), the audit trail (audit),
 * the router (always; it delivers only when `deliver`: without, the
 * events wait in the durable outbox for the next hub serve). */
typedef struct {
    struct hub_mpi *mpi;
    struct hub_audit *audit;
    struct hub_route *route;
} hub__listeners;
/* After the record opened, before it takes writes. Returns 0, or the exit
 * code (2 a bad configuration, 1 otherwise) after printing why; what was
 * opened is in *l either way (close it). */
int hub__listeners_open(const char *cmd, const hub_cfg *cfg, hub_store *store,
                        hub_record *record, bool deliver, hub__listeners *l);
/* Before the store closes: the router, then the audit trail (which writes
 * what it holds). */
void hub__listeners_close_route(hub__listeners *l);
void hub__listeners_close(hub__listeners *l);
/* After the store closed. */
void hub__listeners_close_mpi(hub__listeners *l);

/* The FHIR tables, the store, the record and (with `listeners`) the
 * listeners, delivery off: what hub replay and hub reindex write with. */
typedef struct {
    hub_fhir_defs *defs;
    hub_fhir_sps *sps;
    hub_store *store;
    hub_record *record;
    hub__listeners l;
} hub__core;
int hub__core_open(const char *cmd, const hub_cfg *cfg, bool listeners, hub__core *c);
void hub__core_close(hub__core *c); /* what was opened; a zeroed one is a no-op */

#endif
