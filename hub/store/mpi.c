/* store: the patient index (MPI) module's tables and statements (see internal.h). */
#include "internal.h"

/* Bump the version when the SQL changes; every statement idempotent. */
const hub__schema hub__schema_mpi = {"mpi", 0, ""};
