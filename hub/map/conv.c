/* Value conversions: HL7 v2 dates and times to FHIR's forms. */
#include "internal.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

static bool digits(const char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)p[i])) return false;
    return true;
}

static int num(const char *p, size_t n) {
    int v = 0;
    for (size_t i = 0; i < n; i++) v = v * 10 + (p[i] - '0');
    return v;
}

static bool leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

bool hub_map_dtm(const char *v, size_t n, char kind, const char *tz, char out[40]) {
    /* YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ] */
    size_t i = 0;
    while (i < n && isdigit((unsigned char)v[i])) i++;
    size_t nd = i;
    if (nd != 4 && nd != 6 && nd != 8 && nd != 10 && nd != 12 && nd != 14) return false;
    const char *frac = NULL;
    size_t nfrac = 0;
    if (i < n && v[i] == '.') {
        if (nd != 14) return false;
        frac = v + i + 1;
        i++;
        while (i < n && isdigit((unsigned char)v[i])) i++;
        nfrac = (size_t)(v + i - frac);
        if (nfrac == 0 || nfrac > 4) return false;
    }
    char zone[8] = "";
    if (i < n) {
        if ((v[i] != '+' && v[i] != '-') || n - i != 5 || !digits(v + i + 1, 4)) return false;
        int hh = num(v + i + 1, 2), mm = num(v + i + 3, 2);
        if (hh > 14 || mm > 59) return false;
        snprintf(zone, sizeof zone, "%c%.2s:%.2s", v[i], v + i + 1, v + i + 3);
    } else if (tz && tz[0] && strcmp(tz, "Z") != 0 && strlen(tz) == 5) {
        snprintf(zone, sizeof zone, "%c%.2s:%.2s", tz[0], tz + 1, tz + 3);
    } else {
        snprintf(zone, sizeof zone, "Z");
    }
    int y = num(v, 4);
    if (y == 0) return false;
    int mo = nd >= 6 ? num(v + 4, 2) : 1, d = nd >= 8 ? num(v + 6, 2) : 1;
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (mo < 1 || mo > 12) return false;
    if (d < 1 || d > mdays[mo - 1] + (mo == 2 && leap(y))) return false;
    if (nd >= 10 && num(v + 8, 2) > 23) return false;
    if (nd >= 12 && num(v + 10, 2) > 59) return false;
    if (nd >= 14 && num(v + 12, 2) > 59) return false;
    char *o = out;
    o += snprintf(o, 40, "%.4s", v);
    if (kind == 'I' && nd < 14) return false; /* an instant needs seconds */
    if (nd >= 6) o += snprintf(o, 40 - (size_t)(o - out), "-%.2s", v + 4);
    if (nd >= 8) o += snprintf(o, 40 - (size_t)(o - out), "-%.2s", v + 6);
    if (kind == 'D' || nd < 10) return true;
    o += snprintf(o, 40 - (size_t)(o - out), "T%.2s:%.2s:%.2s", v + 8,
                  nd >= 12 ? v + 10 : "00", nd >= 14 ? v + 12 : "00");
    if (frac) o += snprintf(o, 40 - (size_t)(o - out), ".%.*s", (int)nfrac, frac);
    snprintf(o, 40 - (size_t)(o - out), "%s", zone);
    return true;
}
