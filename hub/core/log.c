/* One structured line per event: human text on a terminal, JSON lines
 * otherwise (or when asked). Writes are one write(2) each, so lines from
 * several threads never interleave. */
#include "hub/core.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

hub_log_level hub__log_level = HUB_LOG_INFO;
static bool log_json = false;
static int log_fd = 2;

static const char *const level_names[] = {"trace", "debug", "info",
                                          "warn",  "error", "off"};

void hub_log_setup(hub_log_level level, hub_log_format fmt, int fd) {
    hub__log_level = level;
    log_fd = fd;
    if (fmt == HUB_LOGFMT_AUTO)
        log_json = !isatty(fd);
    else
        log_json = fmt == HUB_LOGFMT_JSON;
}

hub_status hub_log_level_parse(const char *s, hub_log_level *out) {
    for (int i = 0; i <= HUB_LOG_OFF; i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            *out = (hub_log_level)i;
            return HUB_OK;
        }
    }
    return HUB_E_ARG;
}

/* Appends `s` as the inside of a JSON string. */
static size_t json_escape(char *out, size_t cap, const char *s) {
    size_t o = 0;
    for (; *s && o + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20) {
            o += (size_t)snprintf(out + o, cap - o, "\\u%04x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    out[o] = '\0';
    return o;
}

void hub__log(hub_log_level lvl, const char *mod, const char *fmt, ...) {
    char text[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);

    char ts[32];
    hub_time_iso(hub_now_ms(), ts);
    const char *lv = level_names[lvl <= HUB_LOG_OFF ? lvl : HUB_LOG_ERROR];

    char line[4400];
    int n;
    if (log_json) {
        char esc[4200];
        json_escape(esc, sizeof esc, text);
        n = snprintf(line, sizeof line,
                     "{\"ts\":\"%s\",\"level\":\"%s\",\"module\":\"%s\","
                     "\"msg\":\"%s\"}\n",
                     ts, lv, mod, esc);
    } else {
        n = snprintf(line, sizeof line, "%s %-5s %-6s %s\n", ts, lv, mod, text);
    }
    if (n < 0) return;
    if ((size_t)n >= sizeof line) {
        n = (int)sizeof line - 1;
        line[n - 1] = '\n';
    }
    ssize_t w = write(log_fd, line, (size_t)n);
    (void)w;
}
