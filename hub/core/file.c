/* Whole-file reads for the CLI and loaders. */
#include "hub/core.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* open, fstat, read into a buffer of the file's size, close: four system
 * calls for a regular file (start-up reads 111 mapping tables this way;
 * stdio added a 4 KiB buffer and a 64 KiB reservation to each). A file
 * that grows while read, or that has no size (a pipe), is read on until
 * its end, within `max`. */
hub_status hub_file_read(const char *path, size_t max, char **out, size_t *n,
                         hub_err *err) {
    *out = NULL;
    *n = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return hub_err_set(err, HUB_E_IO, "file", "%s", strerror(errno));
    struct stat st;
    size_t want = 65536;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        if ((uint64_t)st.st_size > max) {
            close(fd);
            return hub_err_set(err, HUB_E_LIMIT, "file", "file over %zu bytes", max);
        }
        want = (size_t)st.st_size + 1; /* + 1: the end is seen without a resize */
    }
    hub_buf b;
    hub_buf_init(&b);
    hub_status rc = HUB_OK;
    for (;;) {
        if (b.cap - b.n < 2 && hub_buf_reserve(&b, want) != HUB_OK) {
            rc = hub_err_set(err, HUB_E_NOMEM, "file", "out of memory");
            break;
        }
        ssize_t k = read(fd, b.p + b.n, b.cap - b.n - 1);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) {
            rc = hub_err_set(err, HUB_E_IO, "file", "read failed: %s", strerror(errno));
            break;
        }
        b.n += (size_t)k;
        if (b.n > max) {
            rc = hub_err_set(err, HUB_E_LIMIT, "file", "file over %zu bytes", max);
            break;
        }
        if (k == 0) break;
        want = 65536;
    }
    close(fd);
    if (rc) {
        hub_buf_release(&b);
        return rc;
    }
    if (b.p == NULL && hub_buf_reserve(&b, 1) != HUB_OK)
        return hub_err_set(err, HUB_E_NOMEM, "file", "out of memory");
    b.p[b.n] = '\0';
    *out = b.p;
    *n = b.n;
    return HUB_OK;
}
