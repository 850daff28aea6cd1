/* ingest: the path of a received HL7 v2 message, from its frame to its
 * ACK. Parse, validate against the channel's profile, map to a FHIR
 * transaction Bundle (hub/map.h) and prepare it (hub_record_bundle_prepare),
 * then in one writer job: the duplicate check, the Bundle's apply and the
 * journal row, in one transaction; then acknowledge: an AA means the
 * record has it (journal status "processed"). A mapping failure, or a
 * Bundle the record refuses, is an AE with an ERR naming the field; the
 * message is journaled as "errored" and `hub replay` re-runs it.
 *
 * Threads: hub_ingest_on_frame runs on the MLLP loop thread and does the
 * CPU work (parse, validate, map, prepare, build the ACK); at the end of
 * the loop's round the round's jobs are one commit group, run on the loop
 * thread itself when the store's writer is idle (no thread hand-off per
 * message) or else by the writer thread; each reply is queued to the MLLP
 * server when its commit has returned. */
#ifndef HUB_INGEST_H
#define HUB_INGEST_H

#include "hub/core.h"
#include "hub/mllp.h"
#include "hub/store.h"
#include "hub/map.h"
#include "hub/record.h"
#include "hub/v2.h"

typedef struct hub_ingest hub_ingest;

/* A channel's ingest settings. */
typedef struct {
    const char *name;
    const char *identity;   /* configured sender identity, or NULL */
    const hub_v2_site *site; /* site profile, or NULL for the base one */
    hub_v2_policy policy;   /* which findings are errors */
    bool validate;          /* false: parse only */
    bool force_original;    /* ack_mode "original": always AA/AE/AR, even
                             * when MSH-15/16 ask for enhanced mode */
    bool map;               /* map to FHIR and apply (default on; needs
                             * hub_ingest_cfg.map and .record) */
    const char *const *local_codes; /* the sender's local-code tables */
    size_t nlocal;
} hub_ingest_channel;

typedef struct {
    hub_store *store;
    hub_v2_profset *profiles;      /* borrowed */
    const hub_ingest_channel *channels; /* indexed like the MLLP channels */
    size_t nchannels;
    const char *ack_app;           /* ACK MSH-3, default "HUB" */
    const char *ack_facility;      /* ACK MSH-4, default "HUB" */
    const hub_map *map;            /* mapping tables, or NULL: no mapping */
    hub_record *record;            /* where mapped Bundles are applied */
    struct hub_audit *audit;       /* every message received or rejected
                                      gets an audit row in its journal
                                      transaction; may be NULL */
} hub_ingest_cfg;

hub_status hub_ingest_new(const hub_ingest_cfg *c, hub_ingest **out,
                          hub_err *err);
/* The MLLP server this ingest replies through; set once, before frames. */
void hub_ingest_set_server(hub_ingest *in, hub_mllp_server *srv);
/* The MLLP on_frame callback (ud is the hub_ingest): builds the job
 * (parse, validate, map, ACK) and keeps it for hub_ingest_on_round. */
void hub_ingest_on_frame(void *ud, const hub_mllp_frame_ctx *ctx,
                         const char *frame, size_t n);
/* The MLLP on_round callback: the round's jobs go to the store as one
 * group (hub_store_run: committed on the loop thread when the writer is
 * idle, else queued for it); each reply goes out after its commit. */
void hub_ingest_on_round(void *ud);
/* Messages submitted and not yet answered. */
int64_t hub_ingest_in_flight(const hub_ingest *in);
/* Frees; the store must have finished (closed) first so that no job still
 * points here. NULL is a no-op. */
void hub_ingest_free(hub_ingest *in);

#endif
