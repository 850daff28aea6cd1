/* The demo feed (cli internal). */
#ifndef HUB_CLI_DEMO_H
#define HUB_CLI_DEMO_H
#include "hub/core.h"
typedef struct hub_demo hub_demo;
hub_status hub_demo_start(int port, int interval_ms, hub_demo **out, hub_err *err);
/* Stops and joins the sender; NULL is a no-op. */
void hub_demo_stop(hub_demo *d);
#endif
