/* Channels of `hub serve` (cli internal). */
#ifndef HUB_CLI_CHANNELS_H
#define HUB_CLI_CHANNELS_H

#include "hub/ingest.h"
#include "hub/mllp.h"

#define HUB_SERVE_MAX_CHANNELS 64

typedef struct {
    size_t n;
    hub_mllp_channel_cfg mllp[HUB_SERVE_MAX_CHANNELS];
    hub_ingest_channel ingest[HUB_SERVE_MAX_CHANNELS];
    hub_v2_site *sites[HUB_SERVE_MAX_CHANNELS];
    const char **allow[HUB_SERVE_MAX_CHANNELS];
    const char **locals[HUB_SERVE_MAX_CHANNELS];
} hub_serve_channels;

/* Strings point into cfg (and its file JSON): keep cfg alive. */
hub_status hub__channels_load(hub_serve_channels *cs, const hub_cfg *cfg,
                              hub_v2_profset *profiles, hub_err *err);
void hub__channels_release(hub_serve_channels *cs);

#endif
