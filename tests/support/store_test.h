/* Helpers for tests that drive the store's writer directly (store,
 * record, route and auth unit tests). */
#ifndef HUB_STORE_TEST_H
#define HUB_STORE_TEST_H

#include "hub/store.h"

/* A body run inside one writer transaction. */
typedef hub_status (*hub_test_job_fn)(hub_store_tx *tx, void *arg, hub_err *err);

/* Runs `body` as one writer job on `st` and waits until it has committed
 * (or rolled back): returns the job's status. Fails the current test when
 * the job cannot be submitted. */
hub_status hub_test_in_job(hub_store *st, hub_test_job_fn body, void *arg);

/* A fresh store (not durable) in a new temporary directory, whose path
 * goes to dir. Fails the current test when it cannot be opened. */
hub_store *hub_test_store_open(char dir[256]);
/* Closes st and removes its directory. */
void hub_test_store_close(hub_store *st, const char *dir);

#endif
