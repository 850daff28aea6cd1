/* Clocks and identifiers. */
#include "hub/core.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <openssl/rand.h>

int64_t hub_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t hub_mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void hub_time_iso(int64_t ms, char out[32]) {
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    /* Years past 9999 do not occur; the modulo keeps the compiler sure the
     * text fits. */
    snprintf(out, 32, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
             (tm.tm_year + 1900) % 10000, (tm.tm_mon + 1) % 100,
             tm.tm_mday % 100, tm.tm_hour % 100, tm.tm_min % 100,
             tm.tm_sec % 100, (int)(ms % 1000));
}

/* Random bytes for ids, drawn from OpenSSL 32 ids at a time: one
 * RAND_bytes call costs as much as building a whole ACK. Per thread; a
 * forked child discards what it inherited, so parent and child never hand
 * out the same id. */
static _Thread_local unsigned char id_pool[512];
static _Thread_local size_t id_pool_left;
static pthread_once_t id_pool_once = PTHREAD_ONCE_INIT;

static void id_pool_forked(void) { id_pool_left = 0; }
static void id_pool_init(void) { pthread_atfork(NULL, NULL, id_pool_forked); }

static bool id_bytes(unsigned char b[16]) {
    pthread_once(&id_pool_once, id_pool_init);
    if (id_pool_left < 16) {
        if (RAND_bytes(id_pool, sizeof id_pool) != 1) return false;
        id_pool_left = sizeof id_pool;
    }
    memcpy(b, id_pool + sizeof id_pool - id_pool_left, 16);
    /* Handed out once: wipe them from the pool. */
    memset(id_pool + sizeof id_pool - id_pool_left, 0, 16);
    id_pool_left -= 16;
    return true;
}

void hub_uuid(char out[37]) {
    unsigned char b[16];
    if (!id_bytes(b)) {
        /* OpenSSL's generator failing is near impossible; fall back to the
         * kernel rather than hand out a predictable id. */
        int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
        ssize_t r = fd >= 0 ? read(fd, b, sizeof b) : -1;
        if (fd >= 0) close(fd);
        if (r != (ssize_t)sizeof b) memset(b, 0, sizeof b);
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    /* 8-4-4-4-12 lower-case hex digits (snprintf costs more than the rest). */
    static const char hex[] = "0123456789abcdef";
    size_t k = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) out[k++] = '-';
        out[k++] = hex[b[i] >> 4];
        out[k++] = hex[b[i] & 15];
    }
    out[k] = '\0';
}
