/* Value conversions: HL7 v2 dates and times to FHIR's forms. */
#include "internal.h"

#include <ctype.h>
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
    /* The offset as FHIR writes it: "+HH:MM", or "Z". */
    char zone[8] = "Z";
    const char *zs = NULL;
    if (i < n) {
        if ((v[i] != '+' && v[i] != '-') || n - i != 5 || !digits(v + i + 1, 4)) return false;
        int hh = num(v + i + 1, 2), mm = num(v + i + 3, 2);
        if (hh > 14 || mm > 59) return false;
        zs = v + i;
    } else if (tz && tz[0] && strcmp(tz, "Z") != 0 && strlen(tz) == 5) {
        zs = tz;
    }
    if (zs) {
        zone[0] = zs[0];
        memcpy(zone + 1, zs + 1, 2);
        zone[3] = ':';
        memcpy(zone + 4, zs + 3, 2);
        zone[6] = '\0';
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
    /* Written by hand: snprintf here was a tenth of a conversion. At most
     * 10 (date) + 9 (time) + 5 (fraction) + 6 (zone) + 1 bytes. */
    char *o = out;
    memcpy(o, v, 4), o += 4;
    *o = '\0';
    if (kind == 'I' && nd < 14) return false; /* an instant needs seconds */
    if (nd >= 6) *o++ = '-', memcpy(o, v + 4, 2), o += 2;
    if (nd >= 8) *o++ = '-', memcpy(o, v + 6, 2), o += 2;
    *o = '\0';
    if (kind == 'D' || nd < 10) return true;
    *o++ = 'T';
    memcpy(o, v + 8, 2), o += 2;
    *o++ = ':';
    memcpy(o, nd >= 12 ? v + 10 : "00", 2), o += 2;
    *o++ = ':';
    memcpy(o, nd >= 14 ? v + 12 : "00", 2), o += 2;
    if (frac) {
        *o++ = '.';
        memcpy(o, frac, nfrac), o += nfrac;
    }
    size_t zl = strlen(zone);
    memcpy(o, zone, zl + 1);
    return true;
}
