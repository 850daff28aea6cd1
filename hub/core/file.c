/* Whole-file reads for the CLI and loaders. */
#include "hub/core.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

hub_status hub_file_read(const char *path, size_t max, char **out, size_t *n,
                         hub_err *err) {
    *out = NULL;
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (f == NULL) return hub_err_set(err, HUB_E_IO, "file", "%s", strerror(errno));
    hub_buf b;
    hub_buf_init(&b);
    hub_status rc = HUB_OK;
    for (;;) {
        if (hub_buf_reserve(&b, 65536) != HUB_OK) {
            rc = hub_err_set(err, HUB_E_NOMEM, "file", "out of memory");
            break;
        }
        size_t k = fread(b.p + b.n, 1, b.cap - b.n - 1, f);
        b.n += k;
        if (b.n > max) {
            rc = hub_err_set(err, HUB_E_LIMIT, "file", "file over %zu bytes", max);
            break;
        }
        if (k == 0) {
            if (ferror(f)) rc = hub_err_set(err, HUB_E_IO, "file", "read failed");
            break;
        }
    }
    fclose(f);
    if (rc) {
        hub_buf_release(&b);
        return rc;
    }
    b.p[b.n] = '\0';
    *out = b.p;
    *n = b.n;
    return HUB_OK;
}
