/* The FHIR REST API's parsers of request headers and parameters: media
 * types, Accept, ETags, HTTP dates, FHIR instants, ids. Pure functions of
 * their input (fuzzed by tests/fuzz/fuzz_fhir_http.c). */
#include "internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

bool hub__fhir_mime_is(const char *s, size_t n, const char *lit) {
    return strlen(lit) == n && strncasecmp(s, lit, n) == 0;
}

/* The format a media type (parameters ignored) or _format value denotes:
 * 0 JSON, 1 XML, -1 neither. */
int hub__fhir_media_format(const char *s, size_t n) {
    while (n && isspace((unsigned char)*s)) s++, n--;
    const char *semi = memchr(s, ';', n);
    if (semi) n = (size_t)(semi - s);
    while (n && isspace((unsigned char)s[n - 1])) n--;
    if (hub__fhir_mime_is(s, n, "application/fhir+json") || hub__fhir_mime_is(s, n, "application/json") ||
        hub__fhir_mime_is(s, n, "json") || hub__fhir_mime_is(s, n, "text/json") ||
        hub__fhir_mime_is(s, n, "application/json+fhir") ||
        hub__fhir_mime_is(s, n, "application/fhir json")) /* '+' decoded in a query */
        return 0;
    if (hub__fhir_mime_is(s, n, "application/fhir+xml") || hub__fhir_mime_is(s, n, "application/xml") ||
        hub__fhir_mime_is(s, n, "xml") || hub__fhir_mime_is(s, n, "text/xml") ||
        hub__fhir_mime_is(s, n, "application/xml+fhir") ||
        hub__fhir_mime_is(s, n, "application/fhir xml"))
        return 1;
    return -1;
}

bool hub__fhir_valid_id(const char *s, size_t n) {
    if (n == 0 || n > 64) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!isalnum(c) && c != '-' && c != '.') return false;
    }
    return true;
}

void hub__fhir_http_date(int64_t ms, char out[40]) {
    /* The same second as last time on this thread is the usual case on a
     * hot resource: formatted once. */
    static _Thread_local int64_t last_s = INT64_MIN;
    static _Thread_local char last[40];
    int64_t sec = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
    if (sec != last_s) {
        time_t t = (time_t)sec;
        struct tm tm;
        gmtime_r(&t, &tm);
        static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
        static const char mons[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
        snprintf(last, sizeof last, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday % 7],
                 tm.tm_mday, mons[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                 tm.tm_sec);
        last_s = sec;
    }
    memcpy(out, last, 40);
}

/* RFC 7231 IMF-fixdate; -1 when it is not one. */
int64_t hub__fhir_parse_http_date(const char *s) {
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = strptime(s, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (end == NULL || *end != '\0') return -1;
    return (int64_t)timegm(&tm) * 1000;
}

static int digits(const char **p, int n) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i])) return -1;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    return v;
}

/* A FHIR instant, dateTime or date (YYYY, YYYY-MM, YYYY-MM-DD,
 * YYYY-MM-DDThh:mm[:ss[.fff]](Z|+hh:mm)) as ms since the epoch; -1 when
 * malformed. */
int64_t hub__fhir_parse_instant(const char *s) {
    const char *p = s;
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    int y = digits(&p, 4), mo = 1, d = 1, h = 0, mi = 0, sec = 0, ms = 0;
    if (y < 0) return -1;
    if (*p == '-') {
        p++;
        if ((mo = digits(&p, 2)) < 1 || mo > 12) return -1;
        if (*p == '-') {
            p++;
            if ((d = digits(&p, 2)) < 1 || d > 31) return -1;
        }
    }
    int64_t off_s = 0;
    if (*p == 'T') {
        p++;
        if ((h = digits(&p, 2)) < 0 || h > 23 || *p++ != ':') return -1;
        if ((mi = digits(&p, 2)) < 0 || mi > 59) return -1;
        if (*p == ':') {
            p++;
            if ((sec = digits(&p, 2)) < 0 || sec > 60) return -1;
            if (*p == '.') {
                p++;
                int k = 0, scale = 100;
                while (isdigit((unsigned char)*p)) {
                    if (k < 3) ms += (*p - '0') * scale, scale /= 10;
                    p++, k++;
                }
                if (k == 0) return -1;
            }
        }
        if (*p == 'Z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int sign = *p == '-' ? -1 : 1;
            p++;
            int oh = digits(&p, 2);
            if (oh < 0 || oh > 14 || *p++ != ':') return -1;
            int om = digits(&p, 2);
            if (om < 0 || om > 59) return -1;
            off_s = sign * (oh * 3600 + om * 60);
        } else {
            return -1;
        }
    }
    if (*p != '\0') return -1;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    return ((int64_t)timegm(&tm) - off_s) * 1000 + ms;
}

/* "W/\"3\"" or "\"3\"" or "3" -> 3; -1 when it is none of these. */
int64_t hub__fhir_parse_etag(const char *s) {
    while (isspace((unsigned char)*s)) s++;
    if (strncmp(s, "W/", 2) == 0) s += 2;
    bool q = *s == '"';
    if (q) s++;
    if (!isdigit((unsigned char)*s)) return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || v < 1) return -1;
    if (q && *end++ != '"') return -1;
    while (isspace((unsigned char)*end)) end++;
    return *end == '\0' ? v : -1;
}

int hub__fhir_accept(const char *acc, int def) {
    if (acc == NULL || *acc == '\0') return def;
    /* The first acceptable type in the list (q=0 excluded); a wildcard
     * keeps the default. */
    for (const char *p = acc; *p;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        const char *semi = memchr(p, ';', n);
        const char *qp = semi ? memmem(semi, (size_t)(p + n - semi), "q=", 2) : NULL;
        bool q0 = qp && strtod(qp + 2, NULL) <= 0.0;
        if (!q0) {
            int k = hub__fhir_media_format(p, n);
            if (k >= 0) return k;
            const char *m = p;
            size_t mn = semi ? (size_t)(semi - p) : n;
            while (mn && isspace((unsigned char)*m)) m++, mn--;
            while (mn && isspace((unsigned char)m[mn - 1])) mn--;
            if (hub__fhir_mime_is(m, mn, "*/*") || hub__fhir_mime_is(m, mn, "application/*") ||
                hub__fhir_mime_is(m, mn, "text/*"))
                return def;
        }
        if (e == NULL) break;
        p = e + 1;
    }
    return -1;
}
