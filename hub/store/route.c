/* store: the routing (subscriptions, outbox) module's tables and statements (see internal.h). */
#include "internal.h"

/* Bump the version when the SQL changes; every statement idempotent. */
const hub__schema hub__schema_route = {"route", 0, ""};
