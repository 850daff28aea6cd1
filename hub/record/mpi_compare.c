/* The patient index's comparison: features of a Patient, name phonetics
 * (NYSIIS), Jaro-Winkler, nicknames, per-field comparators, Fellegi-Sunter
 * weights, their EM estimation, and blocking keys. Pure functions, no
 * store: tests and the benchmark call them directly. */
#include "hub/mpi.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- normalization ------------------------------------------------------------ */

/* Two-byte UTF-8 Latin-1 letters (U+00C0..U+00FF) to their base letter;
 * 0 for what has none. */
static char fold_latin1(unsigned cp) {
    static const char map[64] = "aaaaaaaceeeeiiiidnooooo0ouuuuyts"
                                "aaaaaaaceeeeiiiidnooooo0ouuuuyty";
    if (cp < 0xC0 || cp > 0xFF) return 0;
    char c = map[cp - 0xC0];
    return c == '0' ? 0 : c;
}

void hub_mpi_norm_name(const char *in, char *out, size_t cap) {
    size_t k = 0;
    if (cap == 0) return;
    for (const unsigned char *p = (const unsigned char *)(in ? in : ""); *p && k + 1 < cap;
         p++) {
        unsigned c = *p;
        if (c >= 'A' && c <= 'Z') {
            out[k++] = (char)(c - 'A' + 'a');
        } else if (c >= 'a' && c <= 'z') {
            out[k++] = (char)c;
        } else if ((c & 0xE0) == 0xC0 && (p[1] & 0xC0) == 0x80) {
            char f = fold_latin1(((c & 0x1F) << 6) | (p[1] & 0x3F));
            p++;
            if (f) out[k++] = f;
        }
        /* spaces, hyphens, apostrophes, digits: dropped ("O'Neil" = "oneil") */
    }
    out[k] = '\0';
}

static void norm_lower(const char *in, char *out, size_t cap, bool keep_space) {
    size_t k = 0;
    bool space = false;
    for (const unsigned char *p = (const unsigned char *)(in ? in : ""); *p && k + 1 < cap;
         p++) {
        unsigned c = *p;
        if (c >= 'A' && c <= 'Z') c = c - 'A' + 'a';
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '@' ||
            (!keep_space && (c == '.' || c == '_' || c == '-' || c == '+'))) {
            if (space && k > 0 && k + 2 < cap) out[k++] = ' ';
            space = false;
            out[k++] = (char)c;
        } else if (keep_space) {
            space = true;
        }
    }
    out[k] = '\0';
}

static void digits_tail(const char *in, char *out, size_t cap, size_t keep) {
    char d[64];
    size_t k = 0;
    for (const char *p = in ? in : ""; *p && k + 1 < sizeof d; p++)
        if (*p >= '0' && *p <= '9') d[k++] = *p;
    d[k] = '\0';
    const char *s = k > keep ? d + (k - keep) : d;
    snprintf(out, cap, "%s", s);
}

/* ---- NYSIIS -------------------------------------------------------------------- */

/* After the first letter, y sounds as a vowel in names (Smyth, Lynn). */
static bool vowel(char c) {
    return c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u' || c == 'y';
}

void hub_mpi_nysiis(const char *name, char *out, size_t cap) {
    char w[64];
    size_t n = strlen(name);
    if (cap == 0) return;
    if (n == 0) {
        out[0] = '\0';
        return;
    }
    if (n >= sizeof w) n = sizeof w - 1;
    memcpy(w, name, n);
    w[n] = '\0';
    /* prefixes */
    if (!strncmp(w, "mac", 3)) memcpy(w, "mcc", 3);
    else if (!strncmp(w, "kn", 2)) memcpy(w, "nn", 2);
    else if (w[0] == 'k') w[0] = 'c';
    else if (!strncmp(w, "ph", 2) || !strncmp(w, "pf", 2)) memcpy(w, "ff", 2);
    else if (!strncmp(w, "sch", 3)) memcpy(w, "sss", 3);
    /* suffixes */
    if (n >= 2) {
        char *e = w + n - 2;
        if (!strcmp(e, "ee") || !strcmp(e, "ie")) {
            e[0] = 'y';
            e[1] = '\0';
            n--;
        } else if (!strcmp(e, "dt") || !strcmp(e, "rt") || !strcmp(e, "rd") ||
                   !strcmp(e, "nt") || !strcmp(e, "nd")) {
            e[0] = 'd';
            e[1] = '\0';
            n--;
        }
    }
    char key[64];
    size_t k = 0;
    key[k++] = w[0];
    for (size_t i = 1; i < n; i++) {
        char c = w[i], t[4] = {0};
        size_t tn = 1;
        if (c == 'e' && w[i + 1] == 'v') {
            t[0] = 'a';
            t[1] = 'f';
            tn = 2;
            i++;
        } else if (vowel(c)) {
            t[0] = 'a';
        } else if (c == 'q') {
            t[0] = 'g';
        } else if (c == 'z') {
            t[0] = 's';
        } else if (c == 'm') {
            t[0] = 'n';
        } else if (c == 'k') {
            if (w[i + 1] == 'n') {
                t[0] = 'n';
                i++;
            } else {
                t[0] = 'c';
            }
        } else if (c == 's' && w[i + 1] == 'c' && w[i + 2] == 'h') {
            t[0] = t[1] = t[2] = 's';
            tn = 3;
            i += 2;
        } else if (c == 'p' && w[i + 1] == 'h') {
            t[0] = t[1] = 'f';
            tn = 2;
            i++;
        } else if (c == 'h' && (!vowel(w[i - 1]) || i + 1 >= n || !vowel(w[i + 1]))) {
            continue; /* silent: the previous letter again, which collapses */
        } else if (c == 'w' && vowel(w[i - 1])) {
            continue;
        } else {
            t[0] = c;
        }
        for (size_t j = 0; j < tn; j++)
            if (k > 0 && key[k - 1] != t[j] && k + 1 < sizeof key) key[k++] = t[j];
    }
    if (k > 1 && key[k - 1] == 's') k--;
    if (k > 2 && key[k - 2] == 'a' && key[k - 1] == 'y') {
        key[k - 2] = 'y';
        k--;
    }
    if (k > 1 && key[k - 1] == 'a') k--;
    if (k > 8) k = 8;
    if (k + 1 > cap) k = cap - 1;
    memcpy(out, key, k);
    out[k] = '\0';
}

/* ---- Jaro-Winkler ----------------------------------------------------------------- */

double hub_mpi_jaro_winkler(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la == 0 || lb == 0) return la == lb ? 1.0 : 0.0;
    if (la > 63) la = 63;
    if (lb > 63) lb = 63;
    size_t range = (la > lb ? la : lb) / 2;
    range = range > 0 ? range - 1 : 0;
    bool ma[64] = {0}, mb[64] = {0};
    size_t m = 0;
    for (size_t i = 0; i < la; i++) {
        size_t lo = i > range ? i - range : 0, hi = i + range + 1 < lb ? i + range + 1 : lb;
        for (size_t j = lo; j < hi; j++) {
            if (mb[j] || a[i] != b[j]) continue;
            ma[i] = mb[j] = true;
            m++;
            break;
        }
    }
    if (m == 0) return 0.0;
    size_t t = 0, j = 0;
    for (size_t i = 0; i < la; i++) {
        if (!ma[i]) continue;
        while (!mb[j]) j++;
        if (a[i] != b[j]) t++;
        j++;
    }
    double md = (double)m;
    double jaro = (md / (double)la + md / (double)lb + (md - (double)t / 2.0) / md) / 3.0;
    size_t l = 0;
    while (l < 4 && l < la && l < lb && a[l] == b[l]) l++;
    return jaro + (double)l * 0.1 * (1.0 - jaro);
}

/* ---- nicknames ------------------------------------------------------------------------ */

/* Pairs (nickname, group) sorted by name: two names are nicknames of each
 * other when they share a group (a formal name and all its short forms). */
typedef struct {
    char *name;
    int group;
} nick;
static nick *g_nicks;
static size_t g_nnicks;
static char *g_nick_text;

static int nick_cmp(const void *x, const void *y) {
    const nick *a = x, *b = y;
    int c = strcmp(a->name, b->name);
    return c ? c : a->group - b->group;
}

void hub_mpi_nicknames_free(void) {
    hub_free(g_nicks);
    hub_free(g_nick_text);
    g_nicks = NULL;
    g_nick_text = NULL;
    g_nnicks = 0;
}

hub_status hub_mpi_nicknames_load(const char *path, hub_err *err) {
    char *text;
    size_t n;
    hub_status rc = hub_file_read(path, 4 << 20, &text, &n, err);
    if (rc) return rc;
    size_t cap = 1024, k = 0;
    nick *v = hub_malloc(cap * sizeof *v);
    if (v == NULL) {
        hub_free(text);
        return hub_err_set(err, HUB_E_NOMEM, "mpi", "out of memory");
    }
    int group = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#' || line[0] == '\0') continue;
        group++;
        char *s2 = NULL;
        for (char *w = strtok_r(line, "\t ,\r", &s2); w; w = strtok_r(NULL, "\t ,\r", &s2)) {
            for (char *c = w; *c; c++)
                if (*c >= 'A' && *c <= 'Z') *c = (char)(*c - 'A' + 'a');
            if (k == cap) {
                nick *nv = hub_realloc(v, 2 * cap * sizeof *v);
                if (nv == NULL) {
                    hub_free(v);
                    hub_free(text);
                    return hub_err_set(err, HUB_E_NOMEM, "mpi", "out of memory");
                }
                v = nv;
                cap *= 2;
            }
            v[k].name = w;
            v[k].group = group;
            k++;
        }
    }
    qsort(v, k, sizeof *v, nick_cmp);
    hub_mpi_nicknames_free();
    g_nicks = v;
    g_nnicks = k;
    g_nick_text = text;
    return HUB_OK;
}

/* The index of name's first row, or g_nnicks. */
static size_t nick_find(const char *name) {
    size_t lo = 0, hi = g_nnicks;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (strcmp(g_nicks[mid].name, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < g_nnicks && !strcmp(g_nicks[lo].name, name) ? lo : g_nnicks;
}

bool hub_mpi_nickname(const char *a, const char *b) {
    size_t i = nick_find(a), j = nick_find(b);
    if (i == g_nnicks || j == g_nnicks) return false;
    for (size_t x = i; x < g_nnicks && !strcmp(g_nicks[x].name, a); x++)
        for (size_t y = j; y < g_nnicks && !strcmp(g_nicks[y].name, b); y++)
            if (g_nicks[x].group == g_nicks[y].group) return true;
    return false;
}

/* ---- features ------------------------------------------------------------------------- */

static const char *jstr(const json_t *o, const char *k) {
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

/* The name to match on: official, else usual, else the first that is not
 * old/maiden/nickname. */
static const json_t *pick_name(const json_t *names) {
    const json_t *best = NULL;
    int best_rank = 99;
    size_t i;
    const json_t *n;
    json_array_foreach(names, i, n) {
        const char *use = jstr(n, "use");
        int rank = !strcmp(use, "official") ? 0 : !strcmp(use, "usual") ? 1
                   : use[0] == '\0'                                     ? 2
                   : (!strcmp(use, "old") || !strcmp(use, "maiden") ||
                      !strcmp(use, "nickname") || !strcmp(use, "anonymous"))
                       ? 9
                       : 3;
        if (rank < best_rank) {
            best = n;
            best_rank = rank;
        }
    }
    return best;
}

void hub_mpi_feat_of(const json_t *p, hub_mpi_feat *f) {
    memset(f, 0, sizeof *f);
    const json_t *name = pick_name(json_object_get(p, "name"));
    if (name) {
        hub_mpi_norm_name(jstr(name, "family"), f->family, sizeof f->family);
        const json_t *given = json_object_get(name, "given");
        hub_mpi_norm_name(json_string_value(json_array_get(given, 0)), f->given,
                          sizeof f->given);
        hub_mpi_norm_name(json_string_value(json_array_get(given, 1)), f->middle,
                          sizeof f->middle);
        if (f->given[0] == '\0' && f->middle[0] != '\0') {
            memcpy(f->given, f->middle, sizeof f->given);
            memset(f->middle, 0, sizeof f->middle);
        }
    }
    hub_mpi_nysiis(f->family, f->family_ph, sizeof f->family_ph);
    hub_mpi_nysiis(f->given, f->given_ph, sizeof f->given_ph);
    const char *bd = jstr(p, "birthDate");
    if (strlen(bd) >= 10) snprintf(f->birth, sizeof f->birth, "%.10s", bd);
    const char *g = jstr(p, "gender");
    f->sex = !strcmp(g, "male") ? 'm' : !strcmp(g, "female") ? 'f' : !strcmp(g, "other") ? 'o'
                                                                                          : 0;
    /* The home address: use home or none given, not old. */
    size_t i;
    const json_t *a, *addr = NULL;
    json_array_foreach(json_object_get(p, "address"), i, a) {
        const char *use = jstr(a, "use");
        if (!strcmp(use, "old")) continue;
        if (addr == NULL || !strcmp(use, "home")) addr = a;
        if (!strcmp(use, "home")) break;
    }
    if (addr) {
        norm_lower(json_string_value(json_array_get(json_object_get(addr, "line"), 0)),
                   f->line, sizeof f->line, true);
        /* the first 5 digits: a ZIP+4 is its ZIP */
        size_t z = 0;
        for (const char *c = jstr(addr, "postalCode"); *c && z < 5; c++)
            if (*c >= '0' && *c <= '9') f->zip[z++] = *c;
        f->zip[z] = '\0';
        hub_mpi_norm_name(jstr(addr, "city"), f->city, sizeof f->city);
    }
    const json_t *t;
    json_array_foreach(json_object_get(p, "telecom"), i, t) {
        const char *sys = jstr(t, "system");
        const char *v = jstr(t, "value");
        if (!strcmp(sys, "phone") && f->phone[0] == '\0') {
            digits_tail(v, f->phone, sizeof f->phone, 10);
            if (strlen(f->phone) < 7) memset(f->phone, 0, sizeof f->phone);
        } else if (!strcmp(sys, "email") && f->email[0] == '\0') {
            norm_lower(v, f->email, sizeof f->email, false);
            if (strchr(f->email, '@') == NULL) memset(f->email, 0, sizeof f->email);
        }
    }
}

void hub_mpi_feat_encode(const hub_mpi_feat *f, char *out) {
    char sex[2] = {f->sex, 0};
    snprintf(out, HUB_MPI_FEAT_TEXT, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s",
             f->family, f->given, f->middle, f->family_ph, f->given_ph, f->birth, sex, f->line,
             f->zip, f->city, f->phone, f->email);
}

void hub_mpi_feat_decode(const char *text, hub_mpi_feat *f) {
    memset(f, 0, sizeof *f);
    struct {
        char *p;
        size_t cap;
    } dst[12] = {{f->family, sizeof f->family}, {f->given, sizeof f->given},
                 {f->middle, sizeof f->middle}, {f->family_ph, sizeof f->family_ph},
                 {f->given_ph, sizeof f->given_ph}, {f->birth, sizeof f->birth},
                 {NULL, 0}, {f->line, sizeof f->line}, {f->zip, sizeof f->zip},
                 {f->city, sizeof f->city}, {f->phone, sizeof f->phone},
                 {f->email, sizeof f->email}};
    const char *p = text;
    for (int i = 0; i < 12 && p; i++) {
        const char *tab = strchr(p, '\t');
        size_t n = tab ? (size_t)(tab - p) : strlen(p);
        if (i == 6) {
            f->sex = n > 0 ? p[0] : 0;
        } else {
            if (n >= dst[i].cap) n = dst[i].cap - 1;
            memcpy(dst[i].p, p, n);
            dst[i].p[n] = '\0';
        }
        p = tab ? tab + 1 : NULL;
    }
}

/* ---- comparators ------------------------------------------------------------------------ */

static const char *const FIELD_NAMES[HUB_MPI__F_COUNT] = {
    "family", "given", "birthDate", "gender", "address", "phone", "email"};
const char *hub_mpi_field_name(hub_mpi_field f) {
    return (unsigned)f < HUB_MPI__F_COUNT ? FIELD_NAMES[f] : "?";
}

static int cmp_family(const char *a, const char *aph, const char *b, const char *bph) {
    if (!a[0] || !b[0]) return HUB_MPI_MISSING;
    if (!strcmp(a, b)) return HUB_MPI_EXACT;
    if ((aph[0] && !strcmp(aph, bph)) || hub_mpi_jaro_winkler(a, b) >= 0.88) return HUB_MPI_CLOSE;
    /* double-barrelled: one contains the other ("garcia" in "garcialopez") */
    size_t la = strlen(a), lb = strlen(b);
    if (la >= 4 && lb >= 4 && (strstr(a, b) || strstr(b, a))) return HUB_MPI_PARTIAL;
    return HUB_MPI_DIFF;
}

static int cmp_given(const char *a, const char *aph, const char *b, const char *bph) {
    if (!a[0] || !b[0]) return HUB_MPI_MISSING;
    if (!strcmp(a, b)) return HUB_MPI_EXACT;
    size_t la = strlen(a), lb = strlen(b);
    if (la == 1 || lb == 1) return a[0] == b[0] ? HUB_MPI_PARTIAL : HUB_MPI_DIFF;
    if (hub_mpi_nickname(a, b)) return HUB_MPI_CLOSE;
    double jw = hub_mpi_jaro_winkler(a, b);
    if ((aph[0] && !strcmp(aph, bph)) || jw >= 0.92) return HUB_MPI_CLOSE;
    /* a typo too far for CLOSE ("naxcy", "mattehw") is not a disagreement */
    return jw >= 0.8 ? HUB_MPI_PARTIAL : HUB_MPI_DIFF;
}

/* Exactly one character differs (same length). */
static bool one_off(const char *a, const char *b) {
    int d = 0;
    for (; *a && *b; a++, b++) d += *a != *b;
    return !*a && !*b && d == 1;
}

static int cmp_birth(const char *a, const char *b) {
    if (!a[0] || !b[0]) return HUB_MPI_MISSING;
    if (!strcmp(a, b)) return HUB_MPI_EXACT;
    /* YYYY-MM-DD: day and month swapped */
    if (!strncmp(a, b, 5) && a[5] == b[8] && a[6] == b[9] && a[8] == b[5] && a[9] == b[6])
        return HUB_MPI_CLOSE;
    if (one_off(a, b)) return HUB_MPI_CLOSE;
    return HUB_MPI_DIFF;
}

static int cmp_address(const hub_mpi_feat *a, const hub_mpi_feat *b) {
    if ((!a->line[0] && !a->zip[0]) || (!b->line[0] && !b->zip[0])) return HUB_MPI_MISSING;
    bool zip = a->zip[0] && !strcmp(a->zip, b->zip);
    if (a->line[0] && b->line[0]) {
        if (!strcmp(a->line, b->line)) return zip || !a->zip[0] || !b->zip[0] ? HUB_MPI_EXACT
                                                                             : HUB_MPI_CLOSE;
        if (hub_mpi_jaro_winkler(a->line, b->line) >= 0.9) return HUB_MPI_CLOSE;
    }
    return zip ? HUB_MPI_PARTIAL : HUB_MPI_DIFF;
}

static int cmp_exact(const char *a, const char *b) {
    if (!a[0] || !b[0]) return HUB_MPI_MISSING;
    return strcmp(a, b) ? HUB_MPI_DIFF : HUB_MPI_EXACT;
}

void hub_mpi_compare(const hub_mpi_feat *a, const hub_mpi_feat *b,
                     int8_t lv[HUB_MPI__F_COUNT]) {
    int fam = cmp_family(a->family, a->family_ph, b->family, b->family_ph);
    int giv = cmp_given(a->given, a->given_ph, b->given, b->given_ph);
    /* A middle name used as the first name ("John Robert" vs "Robert"). */
    if (giv == HUB_MPI_DIFF && a->middle[0] && !strcmp(a->middle, b->given)) giv = HUB_MPI_CLOSE;
    if (giv == HUB_MPI_DIFF && b->middle[0] && !strcmp(b->middle, a->given)) giv = HUB_MPI_CLOSE;
    /* first and last transposed */
    if (fam <= HUB_MPI_PARTIAL && giv <= HUB_MPI_PARTIAL && fam != HUB_MPI_MISSING &&
        giv != HUB_MPI_MISSING) {
        int f2 = cmp_family(a->family, a->family_ph, b->given, b->given_ph);
        int g2 = cmp_given(a->given, a->given_ph, b->family, b->family_ph);
        if (f2 >= HUB_MPI_CLOSE && g2 >= HUB_MPI_CLOSE) fam = giv = HUB_MPI_CLOSE;
    }
    lv[HUB_MPI_F_FAMILY] = (int8_t)fam;
    lv[HUB_MPI_F_GIVEN] = (int8_t)giv;
    lv[HUB_MPI_F_BIRTH] = (int8_t)cmp_birth(a->birth, b->birth);
    lv[HUB_MPI_F_SEX] = (int8_t)(a->sex && b->sex && a->sex != 'u' && b->sex != 'u'
                                     ? (a->sex == b->sex ? HUB_MPI_EXACT : HUB_MPI_DIFF)
                                     : HUB_MPI_MISSING);
    lv[HUB_MPI_F_ADDRESS] = (int8_t)cmp_address(a, b);
    lv[HUB_MPI_F_PHONE] = (int8_t)cmp_exact(a->phone, b->phone);
    lv[HUB_MPI_F_EMAIL] = (int8_t)cmp_exact(a->email, b->email);
}

/* ---- weights ------------------------------------------------------------------------------ */

/* m: P(level | same person); u: P(level | two different people taken at
 * random). Defaults in the range record-linkage studies of patient data
 * report; `hub mpi` users can estimate their own (hub_mpi_em) and configure
 * them. Levels: diff, partial, close, exact; 0/0 marks a level the field
 * does not have. */
static const hub_mpi_weights DEFAULTS = {
    .m = {
        [HUB_MPI_F_FAMILY] = {0.06, 0.02, 0.07, 0.85},
        [HUB_MPI_F_GIVEN] = {0.03, 0.03, 0.12, 0.82},
        [HUB_MPI_F_BIRTH] = {0.02, 0.0, 0.06, 0.92},
        [HUB_MPI_F_SEX] = {0.02, 0.0, 0.0, 0.98},
        [HUB_MPI_F_ADDRESS] = {0.30, 0.08, 0.07, 0.55},
        [HUB_MPI_F_PHONE] = {0.35, 0.0, 0.0, 0.65},
        [HUB_MPI_F_EMAIL] = {0.30, 0.0, 0.0, 0.70},
    },
    .u = {
        [HUB_MPI_F_FAMILY] = {0.975, 0.005, 0.01, 0.01},
        [HUB_MPI_F_GIVEN] = {0.92, 0.06, 0.01, 0.01},
        [HUB_MPI_F_BIRTH] = {0.9965, 0.0, 0.003, 0.0005},
        [HUB_MPI_F_SEX] = {0.50, 0.0, 0.0, 0.50},
        [HUB_MPI_F_ADDRESS] = {0.976, 0.02, 0.002, 0.002},
        [HUB_MPI_F_PHONE] = {0.998, 0.0, 0.0, 0.002},
        [HUB_MPI_F_EMAIL] = {0.9995, 0.0, 0.0, 0.0005},
    },
};

void hub_mpi_weights_default(hub_mpi_weights *w) { *w = DEFAULTS; }

#define P_FLOOR 1e-4

double hub_mpi_weight(const hub_mpi_weights *w, hub_mpi_field f, int level) {
    if (level < 0 || level >= HUB_MPI__L_COUNT || (unsigned)f >= HUB_MPI__F_COUNT) return 0.0;
    double m = w->m[f][level], u = w->u[f][level];
    if (m <= 0.0 && u <= 0.0) {
        /* a level this field does not have: the next lower one that exists */
        for (int l = level - 1; l >= 0; l--)
            if (w->m[f][l] > 0.0 || w->u[f][l] > 0.0) return hub_mpi_weight(w, f, l);
        return 0.0;
    }
    if (m < P_FLOOR) m = P_FLOOR;
    if (u < P_FLOOR) u = P_FLOOR;
    return log2(m / u);
}

double hub_mpi_score(const hub_mpi_weights *w, const int8_t lv[HUB_MPI__F_COUNT],
                     double contrib[HUB_MPI__F_COUNT]) {
    double s = 0.0;
    for (int f = 0; f < HUB_MPI__F_COUNT; f++) {
        double x = hub_mpi_weight(w, (hub_mpi_field)f, lv[f]);
        if (contrib) contrib[f] = x;
        s += x;
    }
    return s;
}

void hub_mpi_em(const int8_t (*vecs)[HUB_MPI__F_COUNT], size_t n, int iters,
                hub_mpi_weights *w, double *p) {
    if (n == 0) return;
    double pm = *p > 0.0 && *p < 1.0 ? *p : 0.1;
    double *g = hub_malloc(n * sizeof *g);
    if (g == NULL) return;
    for (int it = 0; it < iters; it++) {
        /* E: the probability that each pair is a match */
        double sg = 0.0;
        for (size_t i = 0; i < n; i++) {
            double lm = log(pm), lu = log(1.0 - pm);
            for (int f = 0; f < HUB_MPI__F_COUNT; f++) {
                int l = vecs[i][f];
                if (l < 0) continue;
                lm += log(w->m[f][l] > P_FLOOR ? w->m[f][l] : P_FLOOR);
                lu += log(w->u[f][l] > P_FLOOR ? w->u[f][l] : P_FLOOR);
            }
            double d = lu - lm;
            g[i] = d > 50 ? 0.0 : 1.0 / (1.0 + exp(d));
            sg += g[i];
        }
        /* M: m and u from the weighted counts (levels observed only) */
        double cm[HUB_MPI__F_COUNT][HUB_MPI__L_COUNT] = {{0}};
        double cu[HUB_MPI__F_COUNT][HUB_MPI__L_COUNT] = {{0}};
        for (size_t i = 0; i < n; i++)
            for (int f = 0; f < HUB_MPI__F_COUNT; f++) {
                int l = vecs[i][f];
                if (l < 0) continue;
                cm[f][l] += g[i];
                cu[f][l] += 1.0 - g[i];
            }
        double change = 0.0;
        for (int f = 0; f < HUB_MPI__F_COUNT; f++) {
            double tm = 0.0, tu = 0.0;
            for (int l = 0; l < HUB_MPI__L_COUNT; l++) {
                tm += cm[f][l];
                tu += cu[f][l];
            }
            if (tm <= 0.0 || tu <= 0.0) continue;
            for (int l = 0; l < HUB_MPI__L_COUNT; l++) {
                /* a level the field does not have stays absent */
                if (w->m[f][l] <= 0.0 && w->u[f][l] <= 0.0 && cm[f][l] + cu[f][l] <= 0.0)
                    continue;
                double nm = cm[f][l] / tm, nu = cu[f][l] / tu;
                if (nm < P_FLOOR) nm = P_FLOOR;
                if (nu < P_FLOOR) nu = P_FLOOR;
                change += fabs(nm - w->m[f][l]) + fabs(nu - w->u[f][l]);
                w->m[f][l] = nm;
                w->u[f][l] = nu;
            }
        }
        pm = sg / (double)n;
        if (pm < 1e-6) pm = 1e-6;
        if (pm > 1 - 1e-6) pm = 1 - 1e-6;
        if (change < 1e-7) break;
    }
    *p = pm;
    hub_free(g);
}

/* ---- fingerprints ---------------------------------------------------------------------------- */

/* Layout, low bits first: birth date 18 (0 absent, FP_BIRTH_ANY when not
 * a plain YYYY-MM-DD of 1800..2309), sex 2, family-name code 7, given-name
 * code 7, zip 6, address line 7, phone 6, email 5, sender 5, and bit 63
 * set. A hash is 0 for an absent value, else 1..2^bits-1. */
#define FP_BIRTH_ANY 0x3FFFFu
enum { FP_SEX = 18, FP_FAM = 20, FP_GIV = 27, FP_ZIP = 34, FP_LINE = 40, FP_PHONE = 47,
       FP_EMAIL = 53, FP_SENDER = 58 };

static unsigned fp_hash(const char *s, unsigned bits) {
    if (s == NULL || s[0] == '\0') return 0;
    uint32_t h = 2166136261u;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
    return 1 + h % ((1u << bits) - 1);
}

static unsigned fp_get(uint64_t fp, unsigned at, unsigned bits) {
    return (unsigned)(fp >> at) & ((1u << bits) - 1);
}

static bool digits(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9') return false;
    return true;
}

static unsigned fp_birth(const char *b) {
    if (b[0] == '\0') return 0;
    if (strlen(b) != 10 || !digits(b, 4) || b[4] != '-' || !digits(b + 5, 2) || b[7] != '-' ||
        !digits(b + 8, 2))
        return FP_BIRTH_ANY;
    unsigned y = (unsigned)atoi(b), mo = (unsigned)atoi(b + 5), d = (unsigned)atoi(b + 8);
    if (y < 1800 || y > 2309 || mo < 1 || mo > 12 || d < 1 || d > 31) return FP_BIRTH_ANY;
    return (y - 1799) << 9 | mo << 5 | d;
}

static unsigned fp_sex(char c) {
    return c == 'm' ? 1 : c == 'f' ? 2 : c == 'o' ? 3 : 0;
}

uint64_t hub_mpi_fingerprint(const hub_mpi_feat *f, const char *sender) {
    uint64_t fp = (uint64_t)1 << 63 | fp_birth(f->birth);
    fp |= (uint64_t)fp_sex(f->sex) << FP_SEX;
    fp |= (uint64_t)fp_hash(f->family_ph, 7) << FP_FAM;
    fp |= (uint64_t)fp_hash(f->given_ph, 7) << FP_GIV;
    fp |= (uint64_t)fp_hash(f->zip, 6) << FP_ZIP;
    fp |= (uint64_t)fp_hash(f->line, 7) << FP_LINE;
    fp |= (uint64_t)fp_hash(f->phone, 6) << FP_PHONE;
    fp |= (uint64_t)fp_hash(f->email, 5) << FP_EMAIL;
    fp |= (uint64_t)fp_hash(sender, 5) << FP_SENDER;
    return fp;
}

bool hub_mpi_fingerprint_sender(uint64_t fp, const char *sender) {
    if (sender == NULL || sender[0] == '\0') return false;
    return fp == 0 || fp_get(fp, FP_SENDER, 5) == fp_hash(sender, 5);
}

#define LV(l) (1u << (l))
#define LV_ALL (LV(HUB_MPI_DIFF) | LV(HUB_MPI_PARTIAL) | LV(HUB_MPI_CLOSE) | LV(HUB_MPI_EXACT))

/* The largest weight of field f over the levels in the mask. */
static double weight_max(const hub_mpi_weights *w, hub_mpi_field f, unsigned levels) {
    double b = -INFINITY;
    for (int l = 0; l < HUB_MPI__L_COUNT; l++)
        if (levels & LV(l)) b = fmax(b, hub_mpi_weight(w, f, l));
    return b;
}

/* A name: exact only when the codes can be equal (the same name has the
 * same code); any other level whatever the codes (Jaro-Winkler,
 * nicknames, a middle name, transposition). */
static unsigned name_levels(const char *name, const char *code, unsigned h) {
    if (name[0] == '\0' || h == 0) return 0;
    return fp_hash(code, 7) == h ? LV_ALL : LV_ALL & ~LV(HUB_MPI_EXACT);
}

/* What cmp_address can answer against a line and zip known by hash. */
static unsigned address_levels(const hub_mpi_feat *a, unsigned zh, unsigned lh) {
    if ((!a->line[0] && !a->zip[0]) || (zh == 0 && lh == 0)) return 0;
    bool zip_eq = a->zip[0] && zh == fp_hash(a->zip, 6);
    unsigned l = LV(HUB_MPI_DIFF) | (zip_eq ? LV(HUB_MPI_PARTIAL) : 0);
    if (a->line[0] && lh) {
        l |= LV(HUB_MPI_CLOSE);
        if (fp_hash(a->line, 7) == lh && (zip_eq || !a->zip[0] || zh == 0))
            l |= LV(HUB_MPI_EXACT);
    }
    return l;
}

static unsigned exact_levels(const char *v, unsigned h, unsigned bits) {
    if (v[0] == '\0' || h == 0) return 0;
    return fp_hash(v, bits) == h ? LV(HUB_MPI_EXACT) | LV(HUB_MPI_DIFF) : LV(HUB_MPI_DIFF);
}

static unsigned birth_levels(const char *a, unsigned code) {
    if (a[0] == '\0' || code == 0) return 0;
    if (code == FP_BIRTH_ANY) return LV_ALL;
    char b[16];
    snprintf(b, sizeof b, "%04u-%02u-%02u", (code >> 9) + 1799, (code >> 5) & 15, code & 31);
    return LV(cmp_birth(a, b));
}

static unsigned sex_levels(char a, unsigned code) {
    if (!a || a == 'u' || code == 0) return 0;
    return fp_sex(a) == code ? LV(HUB_MPI_EXACT) : LV(HUB_MPI_DIFF);
}

double hub_mpi_bound(const hub_mpi_weights *w, const hub_mpi_feat *a, uint64_t fp) {
    if (fp == 0) return INFINITY;
    unsigned lv[HUB_MPI__F_COUNT] = {
        [HUB_MPI_F_FAMILY] = name_levels(a->family, a->family_ph, fp_get(fp, FP_FAM, 7)),
        [HUB_MPI_F_GIVEN] = name_levels(a->given, a->given_ph, fp_get(fp, FP_GIV, 7)),
        [HUB_MPI_F_BIRTH] = birth_levels(a->birth, fp_get(fp, 0, 18)),
        [HUB_MPI_F_SEX] = sex_levels(a->sex, fp_get(fp, FP_SEX, 2)),
        [HUB_MPI_F_ADDRESS] =
            address_levels(a, fp_get(fp, FP_ZIP, 6), fp_get(fp, FP_LINE, 7)),
        [HUB_MPI_F_PHONE] = exact_levels(a->phone, fp_get(fp, FP_PHONE, 6), 6),
        [HUB_MPI_F_EMAIL] = exact_levels(a->email, fp_get(fp, FP_EMAIL, 5), 5),
    };
    double s = 0.0;
    for (int f = 0; f < HUB_MPI__F_COUNT; f++)
        s += lv[f] ? weight_max(w, (hub_mpi_field)f, lv[f]) : 0.0; /* missing: 0 */
    return s;
}

/* ---- blocking -------------------------------------------------------------------------------- */

size_t hub_mpi_block_keys(const hub_mpi_feat *f, char (*keys)[96], size_t cap) {
    size_t k = 0;
#define KEY(...)                                               \
    do {                                                       \
        if (k < cap) snprintf(keys[k++], 96, __VA_ARGS__);     \
    } while (0)
    /* surname code + birth year: the classic block */
    if (f->family_ph[0] && f->birth[0]) KEY("n|%s|%.4s", f->family_ph, f->birth);
    /* given-name code + birth date: surname changes (marriage) and typos */
    if (f->given_ph[0] && f->birth[0]) KEY("g|%s|%s", f->given_ph, f->birth);
    /* both name codes, in either order: birth-date errors, transposition */
    if (f->family_ph[0] && f->given_ph[0]) {
        int c = strcmp(f->family_ph, f->given_ph);
        KEY("p|%s|%s", c <= 0 ? f->family_ph : f->given_ph, c <= 0 ? f->given_ph : f->family_ph);
    }
    /* given-name initial + birth date + sex: nicknames with a typo in the
     * surname, day/month swaps (birth month-day sorted) */
    if (f->given[0] && f->birth[0]) {
        char md[6];
        bool swap = strncmp(f->birth + 5, f->birth + 8, 2) > 0;
        snprintf(md, sizeof md, "%.2s%.2s", swap ? f->birth + 8 : f->birth + 5,
                 swap ? f->birth + 5 : f->birth + 8);
        KEY("d|%c|%.4s%s|%c", f->given[0], f->birth, md, f->sex ? f->sex : '-');
    }
    /* first and last transposed: the given-name code in the surname block */
    if (f->given_ph[0] && f->birth[0] && strcmp(f->given_ph, f->family_ph))
        KEY("n|%s|%.4s", f->given_ph, f->birth);
    /* surname initial + birth date: a nickname with a surname typo */
    if (f->family[0] && f->birth[0]) KEY("f|%c|%s", f->family[0], f->birth);
    /* the household: same address (married names, initials) */
    if (f->zip[0] && f->line[0]) KEY("a|%s|%.40s", f->zip, f->line);
    if (f->phone[0]) KEY("t|%s", f->phone);
    if (f->email[0]) KEY("e|%s", f->email);
#undef KEY
    return k;
}
