/* Search values: date precision ranges and the string normal form. */
#include "hub/fhir.h"

#include <ctype.h>
#include <string.h>

/* Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static bool digits(const char *s, size_t n, size_t at, size_t k, int *out) {
    if (at + k > n) return false;
    int v = 0;
    for (size_t i = 0; i < k; i++) {
        if (!isdigit((unsigned char)s[at + i])) return false;
        v = v * 10 + (s[at + i] - '0');
    }
    *out = v;
    return true;
}

static int mdays(int y, int m) {
    static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return 29;
    return d[m - 1];
}

hub_status hub_fhir_date_range(const char *s, size_t n, int64_t *lo, int64_t *hi) {
    int y, mo = 1, d = 1, h = 0, mi = 0, sec = 0, ms = 0;
    size_t i = 0;
    if (!digits(s, n, 0, 4, &y)) return HUB_E_PARSE;
    i = 4;
    int prec = 0; /* 0 year 1 month 2 day 3 minute 4 second 5 ms */
    if (i < n && s[i] == '-') {
        if (!digits(s, n, i + 1, 2, &mo) || mo < 1 || mo > 12) return HUB_E_PARSE;
        i += 3;
        prec = 1;
        if (i < n && s[i] == '-') {
            if (!digits(s, n, i + 1, 2, &d) || d < 1 || d > mdays(y, mo)) return HUB_E_PARSE;
            i += 3;
            prec = 2;
        }
    }
    int64_t tz = 0;
    if (prec == 2 && i < n && s[i] == 'T') {
        if (!digits(s, n, i + 1, 2, &h) || h > 23 || i + 3 >= n || s[i + 3] != ':' ||
            !digits(s, n, i + 4, 2, &mi) || mi > 59)
            return HUB_E_PARSE;
        i += 6;
        prec = 3;
        if (i < n && s[i] == ':') {
            if (!digits(s, n, i + 1, 2, &sec) || sec > 60) return HUB_E_PARSE;
            i += 3;
            prec = 4;
            if (i < n && s[i] == '.') {
                size_t k = i + 1;
                int scale = 100;
                ms = 0;
                while (k < n && isdigit((unsigned char)s[k])) {
                    ms += (s[k] - '0') * scale;
                    scale /= 10;
                    k++;
                }
                if (k == i + 1) return HUB_E_PARSE;
                i = k;
                prec = 5;
            }
        }
        if (i < n && s[i] == 'Z') {
            i++;
        } else if (i < n && (s[i] == '+' || s[i] == '-')) {
            int th, tm;
            if (!digits(s, n, i + 1, 2, &th) || i + 3 >= n || s[i + 3] != ':' ||
                !digits(s, n, i + 4, 2, &tm) || th > 14 || tm > 59)
                return HUB_E_PARSE;
            tz = (s[i] == '-' ? -1 : 1) * ((int64_t)th * 60 + tm) * 60000;
            i += 6;
        }
    }
    if (i != n) return HUB_E_PARSE;
    int64_t start = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400000 +
                    ((int64_t)h * 3600 + mi * 60 + sec) * 1000 + ms - tz;
    int64_t end;
    switch (prec) {
    case 0: end = days_from_civil(y + 1, 1, 1) * 86400000; break;
    case 1:
        end = (mo == 12 ? days_from_civil(y + 1, 1, 1) : days_from_civil(y, (unsigned)mo + 1, 1)) *
              86400000;
        break;
    case 2: end = start + 86400000; break;
    case 3: end = start + 60000; break;
    case 4: end = start + 1000; break;
    default: end = start + 1; break;
    }
    *lo = start;
    *hi = end;
    return HUB_OK;
}

/* Latin-1 Supplement and Latin Extended-A letters (U+00C0..U+017F) to
 * their base letters, lower case; 0 for "no letter" (×, ÷). */
static const char FOLD_C0[64 + 1] =
    "aaaaaa\0ceeeeiiiidnooooo\0ouuuuyt\0aaaaaa\0ceeeeiiiidnooooo\0ouuuuyty";
static const char FOLD_100[128 + 1] =
    "aaaaaaccccccccddddeeeeeeeeeegggggggghhhhiiiiiiiiii\0\0jjkk\0llllll\0\0llnnnnnn\0\0\0oooooo\0\0rrrrrrssssssssttttttuuuuuuuuuuuuwwyyyzzzzzzs";

size_t hub_fhir_str_norm(const char *s, size_t n, char *out, size_t cap) {
    size_t o = 0;
    if (cap == 0) return 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        const char *add = NULL;
        char one[2] = {0, 0};
        size_t len = 1;
        if (c < 0x80) {
            one[0] = (char)tolower(c);
            add = one;
        } else if ((c == 0xC3 || c == 0xC4 || c == 0xC5) && i + 1 < n &&
                   ((unsigned char)s[i + 1] & 0xC0) == 0x80) {
            unsigned cp = ((unsigned)(c & 0x1F) << 6) | ((unsigned char)s[i + 1] & 0x3F);
            len = 2;
            char f = cp >= 0xC0 && cp < 0x100 ? FOLD_C0[cp - 0xC0]
                     : cp >= 0x100 && cp < 0x180 ? FOLD_100[cp - 0x100] : 0;
            if (cp == 0xDF) add = "ss";
            else if (cp == 0xC6 || cp == 0xE6) add = "ae";
            else if (cp == 0x152 || cp == 0x153) add = "oe";
            else if (f) {
                one[0] = f;
                add = one;
            } else {
                add = NULL;
            }
            if (!add) {
                /* Not a letter we fold: keep its bytes. */
                if (o + 2 >= cap) break;
                out[o++] = s[i];
                out[o++] = s[i + 1];
                i += 2;
                continue;
            }
        } else {
            /* Other UTF-8: copy the whole sequence. */
            len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
            if (i + len > n) len = n - i;
            if (o + len >= cap) break;
            memcpy(out + o, s + i, len);
            o += len;
            i += len;
            continue;
        }
        size_t k = strlen(add);
        if (o + k >= cap) break;
        memcpy(out + o, add, k);
        o += k;
        i += len;
    }
    out[o] = '\0';
    return o;
}
