/* The patient index benchmark: N people seen by 3 source systems, with the
 * variation real feeds have (typos, nicknames, initials, upper case,
 * day/month swaps, one-digit date typos, moved addresses, new phones,
 * missing fields, married names, transposed names) and adversarial cases
 * (twins sharing surname, birth date, address and phone; strangers
 * sharing a common name), with the ground truth kept.
 *
 *   bench_mpi run N SEED [--full] [--batch K] [--progress K]
 *       ingest in process through the record (the listener as `hub serve`
 *       runs it; --full adds validation and the whole search index) and
 *       report precision, recall, F1 of the golden links, patients/s
 *       (wall and CPU); --progress prints every K records what each
 *       record of that slice cost (CPU user and sys, read and write
 *       syscalls and their bytes), to see how the cost grows with N
 *   bench_mpi gen N SEED OUT.hl7 TRUTH.tsv
 *       the same records as ADT^A04 messages for `hub send` (one per line)
 *   bench_mpi em N SEED
 *       EM (hub_mpi_em) on the blocked candidate pairs, printed next to
 *       the m and u counted from the truth
 *   bench_mpi eval HUB.db TRUTH.tsv
 *       precision/recall of a store filled by `hub serve` over MLLP
 *
 * Pairs are counted over source records: a predicted pair shares a golden,
 * a true pair shares a person. */
#include "hub/mpi.h"
#include "hub/record.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- a small deterministic generator ------------------------------------------ */

static uint64_t g_rng;
static uint64_t rnd(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return g_rng;
}
static double unif(void) { return (double)(rnd() >> 11) / 9007199254740992.0; }
static bool chance(double p) { return unif() < p; }
static int pick(int n) { return (int)(rnd() % (uint64_t)n); }
/* Common names are common: a skewed pick. */
static int pick_skew(int n) { return (int)((double)n * unif() * unif()); }

static const char *const MALE[] = {
    "James", "John", "Robert", "Michael", "William", "David", "Richard", "Joseph", "Thomas",
    "Charles", "Christopher", "Daniel", "Matthew", "Anthony", "Donald", "Mark", "Paul", "Steven",
    "Andrew", "Kenneth", "Joshua", "Kevin", "Brian", "George", "Edward", "Ronald", "Timothy",
    "Jason", "Jeffrey", "Ryan", "Jacob", "Gary", "Nicholas", "Eric", "Jonathan", "Stephen",
    "Larry", "Justin", "Scott", "Brandon", "Benjamin", "Samuel", "Gregory", "Frank", "Alexander",
    "Raymond", "Patrick", "Jack", "Dennis", "Jerry", "Tyler", "Aaron", "Jose", "Henry", "Adam",
    "Douglas", "Nathan", "Peter", "Zachary", "Kyle", "Walter", "Harold", "Jeremy", "Ethan",
    "Carl", "Keith", "Roger", "Gerald", "Christian", "Terry", "Sean", "Arthur", "Austin", "Noah",
    "Lawrence", "Jesse", "Joe", "Bryan", "Billy", "Jordan", "Albert", "Dylan", "Bruce", "Willie",
    "Gabriel", "Alan", "Juan", "Logan", "Wayne", "Ralph", "Roy", "Eugene", "Randy", "Vincent",
    "Russell", "Louis", "Philip", "Bobby", "Johnny", "Bradley", "Manuel", "Francisco", "Ignacio"};
static const char *const FEMALE[] = {
    "Mary", "Patricia", "Jennifer", "Linda", "Elizabeth", "Barbara", "Susan", "Jessica", "Sarah",
    "Karen", "Nancy", "Lisa", "Betty", "Margaret", "Sandra", "Ashley", "Kimberly", "Emily",
    "Donna", "Michelle", "Dorothy", "Carol", "Amanda", "Melissa", "Deborah", "Stephanie",
    "Rebecca", "Sharon", "Laura", "Cynthia", "Kathleen", "Amy", "Shirley", "Angela", "Helen",
    "Anna", "Brenda", "Pamela", "Nicole", "Emma", "Samantha", "Katherine", "Christine", "Debra",
    "Rachel", "Catherine", "Carolyn", "Janet", "Ruth", "Maria", "Heather", "Diane", "Virginia",
    "Julie", "Joyce", "Victoria", "Olivia", "Kelly", "Christina", "Lauren", "Joan", "Evelyn",
    "Judith", "Megan", "Cheryl", "Andrea", "Hannah", "Martha", "Jacqueline", "Frances", "Gloria",
    "Ann", "Teresa", "Kathryn", "Sara", "Janice", "Jean", "Alice", "Madison", "Doris", "Abigail",
    "Julia", "Judy", "Grace", "Denise", "Amber", "Marilyn", "Beverly", "Danielle", "Theresa",
    "Sophia", "Marie", "Diana", "Brittany", "Natalie", "Isabella", "Charlotte", "Rose", "Alexis",
    "Dolores", "Rosario"};
static const char *const FAMILY[] = {
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor",
    "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez",
    "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright",
    "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall",
    "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "Gomez", "Phillips", "Evans", "Turner",
    "Diaz", "Parker", "Cruz", "Edwards", "Collins", "Reyes", "Stewart", "Morris", "Morales",
    "Murphy", "Cook", "Rogers", "Gutierrez", "Ortiz", "Morgan", "Cooper", "Peterson", "Bailey",
    "Reed", "Kelly", "Howard", "Ramos", "Kim", "Cox", "Ward", "Richardson", "Watson", "Brooks",
    "Chavez", "Wood", "James", "Bennett", "Gray", "Mendoza", "Ruiz", "Hughes", "Price", "Alvarez",
    "Castillo", "Sanders", "Patel", "Myers", "Long", "Ross", "Foster", "Jimenez", "Powell",
    "Jenkins", "Perry", "Russell", "Sullivan", "Bell", "Coleman", "Butler", "Henderson", "Barnes",
    "Gonzales", "Fisher", "Vasquez", "Simmons", "Romero", "Jordan", "Patterson", "Alexander",
    "Hamilton", "Graham", "Reynolds", "Griffin", "Wallace", "Moreno", "West", "Cole", "Hayes",
    "Bryant", "Herrera", "Gibson", "Ellis", "Tran", "Medina", "Aguilar", "Stevens", "Murray",
    "Ford", "Castro", "Marshall", "Owens", "Harrison", "Fernandez", "McDonald", "Woods",
    "Washington", "Kennedy", "Wells", "Vargas", "Henry", "Chen", "Freeman", "Webb", "Tucker",
    "Guzman", "Burns", "Crawford", "Olson", "Simpson", "Porter", "Hunter", "Gordon", "Mendez",
    "Silva", "Shaw", "Snyder", "Mason", "Dixon", "Munoz", "Hunt", "Hicks", "Holmes", "Palmer",
    "Wagner", "Black", "Robertson", "Boyd", "Rose", "Stone", "Salazar", "Fox", "Warren", "Mills",
    "Meyer", "Rice", "Schmidt", "Garza", "Daniels", "Ferguson", "Nichols", "Stephens", "Soto",
    "Weaver", "Ryan", "Gardner", "Payne", "Grant", "Dunn", "Kelley", "Spencer", "Hawkins",
    "Arnold", "Pierce", "Vazquez", "Hansen", "Peters", "Santos", "Hart", "Bradley", "Knight",
    "Elliott", "Cunningham", "Duncan", "Armstrong", "Hudson", "Carroll", "Lane", "Riley",
    "Andrews", "Alvarado", "Ray", "Delgado", "Berry", "Perkins", "Hoffman", "Johnston", "Matthews",
    "Pena", "Richards", "Contreras", "Willis", "Carpenter", "Lawrence", "Sandoval"};
static const char *const STREET[] = {
    "Oak St", "Maple Ave", "Pine St", "Cedar Rd", "Elm St", "Washington Ave", "Lake Dr",
    "Hill Rd", "Main St", "Park Ave", "Sunset Blvd", "River Rd", "Church St", "Highland Ave",
    "Forest Dr", "Jackson St", "Franklin Ave", "Lincoln Rd", "Madison St", "Spring St",
    "Walnut St", "Chestnut St", "Meadow Ln", "Willow Way", "Ridge Rd", "Valley View Dr",
    "Bay St", "Harbor Rd", "Mill St", "School St"};
static const char *const CITY[] = {"Springfield", "Riverton", "Fairview", "Madison", "Georgetown",
                                   "Clinton", "Salem", "Franklin", "Greenville", "Bristol"};
#define N_OF(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* Nicknames the generator uses (a few of the table's). */
static const char *const NICK[][2] = {
    {"William", "Bill"},     {"Robert", "Bob"},      {"Richard", "Rick"},
    {"James", "Jim"},        {"Michael", "Mike"},    {"Thomas", "Tom"},
    {"Joseph", "Joe"},       {"Christopher", "Chris"}, {"Daniel", "Dan"},
    {"Matthew", "Matt"},     {"Anthony", "Tony"},    {"Elizabeth", "Liz"},
    {"Margaret", "Peggy"},   {"Patricia", "Pat"},    {"Jennifer", "Jen"},
    {"Katherine", "Kate"},   {"Catherine", "Cathy"}, {"Deborah", "Debbie"},
    {"Rebecca", "Becky"},    {"Samantha", "Sam"},    {"Samuel", "Sam"},
    {"Benjamin", "Ben"},     {"Alexander", "Alex"},  {"Nicholas", "Nick"},
    {"Jonathan", "Jon"},     {"Timothy", "Tim"},     {"Kenneth", "Ken"},
    {"Steven", "Steve"},     {"Stephen", "Steve"},   {"Edward", "Ed"},
    {"Gregory", "Greg"},     {"Andrew", "Andy"},     {"Susan", "Sue"},
    {"Victoria", "Vicky"},   {"Pamela", "Pam"},      {"Francisco", "Paco"},
    {"Dolores", "Lola"},     {"Ignacio", "Nacho"},   {"Lawrence", "Larry"}};

typedef struct {
    char given[32], family[32];
    char sex;
    int y, mo, d;
    char line[64], city[24], zip[6];
    char phone[11];
    char email[64];
} person;

static void new_person(person *p) {
    memset(p, 0, sizeof *p);
    p->sex = chance(0.5) ? 'M' : 'F';
    snprintf(p->given, sizeof p->given, "%s",
             p->sex == 'M' ? MALE[pick_skew(N_OF(MALE))] : FEMALE[pick_skew(N_OF(FEMALE))]);
    snprintf(p->family, sizeof p->family, "%s", FAMILY[pick_skew(N_OF(FAMILY))]);
    p->y = 1930 + pick(90);
    p->mo = 1 + pick(12);
    p->d = 1 + pick(28);
    snprintf(p->line, sizeof p->line, "%d %s", 1 + pick(9999), STREET[pick(N_OF(STREET))]);
    int c = pick(N_OF(CITY));
    snprintf(p->city, sizeof p->city, "%s", CITY[c]);
    snprintf(p->zip, sizeof p->zip, "%05d", 10000 + c * 1000 + pick(40));
    snprintf(p->phone, sizeof p->phone, "%03d555%04d", 200 + pick(700), pick(10000));
    if (chance(0.6))
        snprintf(p->email, sizeof p->email, "%c%s%d@mail.example", p->given[0] | 0x20,
                 p->family, pick(100));
    for (char *e = p->email; *e; e++)
        if (*e >= 'A' && *e <= 'Z') *e = (char)(*e | 0x20);
}

static void typo(char *s) {
    size_t n = strlen(s);
    if (n < 3) return;
    size_t i = 1 + (size_t)pick((int)n - 1);
    switch (pick(3)) {
    case 0: /* substitute */
        s[i] = (char)('a' + pick(26));
        break;
    case 1: /* transpose */
        if (i + 1 < n) {
            char t = s[i];
            s[i] = s[i + 1];
            s[i + 1] = t;
        }
        break;
    default: /* delete */
        memmove(s + i, s + i + 1, n - i);
    }
}

static void upper(char *s) {
    for (; *s; s++)
        if (*s >= 'a' && *s <= 'z') *s = (char)(*s - 32);
}

/* One source's record of a person: variation scaled by `noise`. */
static void observe(const person *p, double noise, person *r) {
    *r = *p;
    if (chance(0.10 * noise)) typo(r->family);
    if (chance(0.06 * noise)) typo(r->given);
    if (chance(0.12 * noise))
        for (int i = 0; i < N_OF(NICK); i++)
            if (!strcmp(NICK[i][0], r->given)) {
                snprintf(r->given, sizeof r->given, "%s", NICK[i][1]);
                break;
            }
    if (chance(0.04 * noise)) r->given[1] = '\0'; /* an initial */
    if (r->sex == 'F' && chance(0.10 * noise)) /* married */
        snprintf(r->family, sizeof r->family, "%s", FAMILY[pick(N_OF(FAMILY))]);
    if (chance(0.02 * noise)) { /* transposed */
        char t[32];
        memcpy(t, r->given, sizeof t);
        memcpy(r->given, r->family, sizeof t);
        memcpy(r->family, t, sizeof t);
    }
    if (r->d <= 12 && chance(0.04 * noise)) {
        int t = r->d;
        r->d = r->mo;
        r->mo = t;
    } else if (chance(0.03 * noise)) {
        if (chance(0.5)) /* never February 29th (a source sends valid dates) */
            r->d = r->d % 10 == 9 || (r->mo == 2 && r->d == 28) ? r->d - 1 : r->d + 1;
        else
            r->y = (r->y / 10) * 10 + (r->y % 10 + 1 + pick(8)) % 10;
    }
    if (chance(0.15 * noise)) { /* moved */
        snprintf(r->line, sizeof r->line, "%d %s", 1 + pick(9999), STREET[pick(N_OF(STREET))]);
        snprintf(r->zip, sizeof r->zip, "%05d", 10000 + pick(10) * 1000 + pick(40));
    }
    if (chance(0.10 * noise)) snprintf(r->phone, sizeof r->phone, "%03d555%04d", 200 + pick(700),
                                       pick(10000));
    if (chance(0.25)) r->phone[0] = '\0';
    if (chance(0.15)) r->line[0] = r->zip[0] = '\0';
    if (chance(0.05)) r->sex = 0;
    if (chance(0.5)) r->email[0] = '\0';
    if (chance(0.02)) r->y = 0; /* no birth date */
    if (chance(0.3)) {
        upper(r->family);
        upper(r->given);
        upper(r->line);
    }
}

/* ---- the data set ------------------------------------------------------------------ */

typedef struct {
    person r;
    int person;
    int source;
    char id[32];
} record;

static const char *const SRC[3] = {"EHR^GENHOSP", "LAB^LABCO", "CLINIC^NORTH"};
static const char *const SRC_OID[3] = {"1.2.3", "4.5.6", "7.8.9"};

static record *dataset(int n, uint64_t seed, size_t *nrec) {
    g_rng = seed * 2654435761u + 88172645463325252ull;
    person *ps = malloc((size_t)n * sizeof *ps);
    for (int i = 0; i < n; i++) {
        new_person(&ps[i]);
        if (i > 0 && chance(0.02)) { /* a twin of the previous person */
            person t = ps[i - 1];
            t.sex = chance(0.5) ? 'M' : 'F';
            do
                snprintf(t.given, sizeof t.given, "%s",
                         t.sex == 'M' ? MALE[pick(N_OF(MALE))] : FEMALE[pick(N_OF(FEMALE))]);
            while (!strcmp(t.given, ps[i - 1].given));
            ps[i] = t;
        } else if (i > 0 && chance(0.03)) { /* a stranger with a common name */
            int o = pick(i);
            memcpy(ps[i].given, ps[o].given, sizeof ps[i].given);
            memcpy(ps[i].family, ps[o].family, sizeof ps[i].family);
            ps[i].sex = ps[o].sex;
        }
    }
    record *v = malloc((size_t)n * 3 * sizeof *v);
    size_t k = 0;
    for (int i = 0; i < n; i++)
        for (int s = 0; s < 3; s++) {
            if (s > 0 && chance(0.1)) continue; /* not every system saw everyone */
            observe(&ps[i], s == 0 ? 0.5 : 1.0, &v[k].r);
            v[k].person = i;
            v[k].source = s;
            snprintf(v[k].id, sizeof v[k].id, "s%d-%d", s, i);
            k++;
        }
    /* arrival order: shuffled */
    for (size_t i = k; i > 1; i--) {
        size_t j = rnd() % i;
        record t = v[i - 1];
        v[i - 1] = v[j];
        v[j] = t;
    }
    free(ps);
    *nrec = k;
    return v;
}

static json_t *to_fhir(const record *x) {
    const person *r = &x->r;
    char sys[32];
    snprintf(sys, sizeof sys, "urn:oid:%s", SRC_OID[x->source]);
    json_t *p = json_pack("{s:s, s:[{s:s, s:s}], s:[{s:s, s:[s]}]}", "resourceType", "Patient",
                          "identifier", "system", sys, "value", x->id, "name", "family",
                          r->family, "given", r->given);
    if (r->y) {
        char bd[16];
        snprintf(bd, sizeof bd, "%04d-%02d-%02d", r->y, r->mo, r->d);
        json_object_set_new(p, "birthDate", json_string(bd));
    }
    if (r->sex) json_object_set_new(p, "gender", json_string(r->sex == 'M' ? "male" : "female"));
    if (r->line[0])
        json_object_set_new(p, "address",
                            json_pack("[{s:[s], s:s, s:s}]", "line", r->line, "city", r->city,
                                      "postalCode", r->zip));
    json_t *tel = json_array();
    if (r->phone[0])
        json_array_append_new(tel, json_pack("{s:s, s:s}", "system", "phone", "value", r->phone));
    if (r->email[0])
        json_array_append_new(tel, json_pack("{s:s, s:s}", "system", "email", "value", r->email));
    if (json_array_size(tel))
        json_object_set_new(p, "telecom", tel);
    else
        json_decref(tel);
    return p;
}

/* ---- scoring ------------------------------------------------------------------------- */

typedef struct {
    char golden[40];
    int person;
} assign;

static int cmp_assign(const void *a, const void *b) {
    const assign *x = a, *y = b;
    int c = strcmp(x->golden, y->golden);
    return c ? c : x->person - y->person;
}

/* Pairs from (golden, person) of every record. */
static void report(assign *a, size_t n, int npersons, double wall, double cpu) {
    qsort(a, n, sizeof *a, cmp_assign);
    double pred = 0, tp = 0, truth = 0;
    int *per = calloc((size_t)npersons, sizeof *per);
    for (size_t i = 0; i < n; i++) per[a[i].person]++;
    for (int i = 0; i < npersons; i++) truth += (double)per[i] * (per[i] - 1) / 2;
    free(per);
    size_t goldens = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && !strcmp(a[j].golden, a[i].golden)) j++;
        double g = (double)(j - i);
        pred += g * (g - 1) / 2;
        goldens++;
        for (size_t k = i; k < j;) {
            size_t l = k;
            while (l < j && a[l].person == a[k].person) l++;
            double c = (double)(l - k);
            tp += c * (c - 1) / 2;
            k = l;
        }
        i = j;
    }
    double p = pred > 0 ? tp / pred : 1.0, r = truth > 0 ? tp / truth : 1.0;
    printf("records=%zu persons=%d goldens=%zu\n", n, npersons, goldens);
    printf("pairs: true=%.0f predicted=%.0f correct=%.0f\n", truth, pred, tp);
    printf("precision=%.4f recall=%.4f f1=%.4f\n", p, r, p + r > 0 ? 2 * p * r / (p + r) : 0.0);
    if (wall > 0)
        printf("wall_s=%.2f cpu_s=%.2f patients_per_s=%.0f patients_per_cpu_s=%.0f\n", wall, cpu,
               (double)n / wall, (double)n / cpu);
}

/* Process counters for the --progress slices: CPU (user, sys) and the
 * bytes and calls of read and write syscalls (page reads that missed the
 * cache, WAL and checkpoint writes). */
typedef struct {
    double user, sys;
    unsigned long long rchar, wchar, syscr, syscw;
} counters;

static void counters_now(counters *c) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    c->user = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6;
    c->sys = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    c->rchar = c->wchar = c->syscr = c->syscw = 0;
    FILE *f = fopen("/proc/self/io", "r");
    if (f == NULL) return;
    char k[32];
    unsigned long long v;
    while (fscanf(f, "%31[^:]: %llu\n", k, &v) == 2) {
        if (!strcmp(k, "rchar")) c->rchar = v;
        if (!strcmp(k, "wchar")) c->wchar = v;
        if (!strcmp(k, "syscr")) c->syscr = v;
        if (!strcmp(k, "syscw")) c->syscw = v;
    }
    fclose(f);
}

/* One line per slice of `n` records: what each record cost in it. */
static void progress(size_t done, size_t n, const counters *a, const counters *b) {
    double k = (double)n;
    printf("progress records=%zu user_us=%.0f sys_us=%.0f read_kb=%.1f write_kb=%.1f "
           "reads=%.1f writes=%.1f\n",
           done, (b->user - a->user) * 1e6 / k, (b->sys - a->sys) * 1e6 / k,
           (double)(b->rchar - a->rchar) / 1024 / k, (double)(b->wchar - a->wchar) / 1024 / k,
           (double)(b->syscr - a->syscr) / k, (double)(b->syscw - a->syscw) / k);
    fflush(stdout);
}

static double now_s(clockid_t c) {
    struct timespec t;
    clock_gettime(c, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* ---- modes --------------------------------------------------------------------------------- */

static int run(int n, uint64_t seed, bool full, int batch, const char *conf_text,
               size_t every) {
    size_t nrec;
    record *v = dataset(n, seed, &nrec);
    char dir[] = "/tmp/bench_mpi.XXXXXX";
    if (!mkdtemp(dir)) return 1;
    hub_err err;
    hub_store *st;
    hub_store_cfg sc = {.dir = dir, .durable = false, .commit_batch_max = 64};
    if (hub_store_open(&sc, &st, &err)) {
        fprintf(stderr, "store: %s\n", err.msg);
        return 1;
    }
    hub_fhir_defs *defs = NULL;
    hub_fhir_sps *sps = NULL;
    if (full && (hub_fhir_defs_load(HUB_SOURCE_DIR "/conformance/fhir/r4", &defs, &err) ||
                 hub_fhir_sps_load(HUB_SOURCE_DIR "/conformance/fhir/r4", &sps, &err))) {
        fprintf(stderr, "tables: %s\n", err.msg);
        return 1;
    }
    hub_record *rec;
    hub_record_cfg rc = {.store = st, .defs = defs, .search = sps, .max_bundle_entries = 1000};
    hub_record_open(&rc, &rec, &err);
    hub_mpi *m;
    json_t *conf = conf_text ? json_loads(conf_text, 0, NULL) : NULL;
    if (conf_text && conf == NULL) {
        fprintf(stderr, "--conf: not JSON\n");
        return 2;
    }
    hub_mpi_cfg mc = {.record = rec, .conf = conf,
                      .nicknames = HUB_SOURCE_DIR "/conformance/mpi/nicknames.tsv"};
    if (hub_mpi_open(&mc, &m, &err)) {
        fprintf(stderr, "mpi: %s\n", err.msg);
        return 1;
    }
    hub_actor actors[3];
    for (int s = 0; s < 3; s++) actors[s] = (hub_actor){.channel = "bench", .sender = SRC[s]};
    double w0 = now_s(CLOCK_MONOTONIC), c0 = now_s(CLOCK_PROCESS_CPUTIME_ID);
    hub_record_op *ops = calloc((size_t)batch, sizeof *ops);
    counters c_last;
    counters_now(&c_last);
    size_t last = 0;
    for (size_t i = 0; i < nrec; i += (size_t)batch) {
        if (every && i - last >= every) {
            counters c_now;
            counters_now(&c_now);
            progress(i, i - last, &c_last, &c_now);
            c_last = c_now;
            last = i;
        }
        size_t k = nrec - i < (size_t)batch ? nrec - i : (size_t)batch;
        for (size_t j = 0; j < k; j++) {
            record *x = &v[i + j];
            json_t *p = to_fhir(x);
            json_object_set_new(p, "id", json_string(x->id));
            ops[j] = (hub_record_op){.kind = HUB_OP_UPDATE, .type = "Patient", .id = x->id,
                                     .resource = p, .actor = &actors[x->source]};
        }
        if (hub_record_apply(rec, ops, k, true, &err)) {
            fprintf(stderr, "apply: %s %s\n", err.where, err.msg);
            for (size_t j = 0; j < k; j++) {
                if (ops[j].outcome == NULL) continue;
                json_t *oo = hub_oo_json(ops[j].outcome);
                char *t = json_dumps(oo, JSON_COMPACT);
                fprintf(stderr, "  op %zu: %d %s\n", j, ops[j].status, t ? t : "");
                free(t);
                json_decref(oo);
            }
            return 1;
        }
        for (size_t j = 0; j < k; j++) {
            json_decref(ops[j].resource);
            hub_record_op_release(&ops[j]);
        }
    }
    double wall = now_s(CLOCK_MONOTONIC) - w0, cpu = now_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
    assign *a = calloc(nrec, sizeof *a);
    for (size_t i = 0; i < nrec; i++) {
        char g[72];
        if (hub_mpi_st_golden_of(st, v[i].id, g, &err)) snprintf(g, sizeof g, "none-%zu", i);
        snprintf(a[i].golden, sizeof a[i].golden, "%.39s", g);
        a[i].person = v[i].person;
    }
    if (getenv("BENCH_MPI_MISSED")) {
        /* the pairs of one person left in two goldens, with their scores */
        hub_mpi_weights w;
        hub_mpi_weights_default(&w);
        int shown = 0;
        for (size_t i = 0; i < nrec && shown < atoi(getenv("BENCH_MPI_MISSED")); i++)
            for (size_t j = i + 1; j < nrec; j++) {
                if (v[i].person != v[j].person || !strcmp(a[i].golden, a[j].golden)) continue;
                json_t *p1 = to_fhir(&v[i]), *p2 = to_fhir(&v[j]);
                hub_mpi_feat f1, f2;
                hub_mpi_feat_of(p1, &f1);
                hub_mpi_feat_of(p2, &f2);
                int8_t lv[HUB_MPI__F_COUNT];
                hub_mpi_compare(&f1, &f2, lv);
                char t1[HUB_MPI_FEAT_TEXT], t2[HUB_MPI_FEAT_TEXT];
                hub_mpi_feat_encode(&f1, t1);
                hub_mpi_feat_encode(&f2, t2);
                printf("MISSED score=%.1f lv=%d%d%d%d%d%d%d\n  %s\n  %s\n", hub_mpi_score(&w, lv, NULL),
                       lv[0], lv[1], lv[2], lv[3], lv[4], lv[5], lv[6], t1, t2);
                json_decref(p1);
                json_decref(p2);
                shown++;
            }
    }
    printf("mode=in-process full=%s batch=%d n=%d seed=%llu\n", full ? "yes" : "no", batch, n,
           (unsigned long long)seed);
    hub_mpi_stats ms;
    hub_mpi_stats_of(m, &ms);
    printf("candidates per record: read=%.2f skipped=%.2f aside=%.2f\n",
           (double)ms.read / (double)nrec, (double)ms.skipped / (double)nrec,
           (double)ms.aside / (double)nrec);
    report(a, nrec, n, wall, cpu);
    free(a);
    free(ops);
    hub_store_close(st);
    hub_mpi_close(m);
    json_decref(conf);
    hub_record_close(rec);
    hub_fhir_sps_free(sps);
    hub_fhir_defs_free(defs);
    free(v);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : 1;
}

static void ymd(const person *r, char *out) {
    if (r->y)
        snprintf(out, 9, "%04d%02d%02d", r->y, r->mo, r->d);
    else
        out[0] = '\0';
}

static int gen(int n, uint64_t seed, const char *out, const char *truth) {
    size_t nrec;
    record *v = dataset(n, seed, &nrec);
    FILE *f = fopen(out, "w"), *t = fopen(truth, "w");
    if (!f || !t) return 1;
    for (size_t i = 0; i < nrec; i++) {
        const record *x = &v[i];
        const person *r = &x->r;
        char app[32], fac[32], bd[9], tel[128] = "";
        sscanf(SRC[x->source], "%31[^^]^%31s", app, fac);
        ymd(r, bd);
        if (r->phone[0])
            snprintf(tel, sizeof tel, "^PRN^PH^^^%.3s^%s", r->phone, r->phone + 3);
        if (r->email[0])
            snprintf(tel + strlen(tel), sizeof tel - strlen(tel), "%s^NET^Internet^%s",
                     tel[0] ? "~" : "", r->email);
        fprintf(f,
                "MSH|^~\\&|%s|%s|HUB|HUB|20261125101500||ADT^A04^ADT_A01|%s|P|2.5.1\r"
                "EVN|A04|20261125101500\r"
                "PID|1||%s^^^%s&%s&ISO^MR||%s^%s||%s|%s|||%s^^%s^^%s||%s\r"
                "PV1|1|O\n",
                app, fac, x->id, x->id, fac, SRC_OID[x->source], r->family, r->given, bd,
                r->sex == 'M' ? "M" : r->sex == 'F' ? "F" : "", r->line, r->line[0] ? r->city : "",
                r->zip, tel);
        fprintf(t, "%s\t%d\n", x->id, x->person);
    }
    fclose(f);
    fclose(t);
    fprintf(stderr, "%zu messages for %d persons\n", nrec, n);
    free(v);
    return 0;
}

static int eval(const char *db, const char *truth) {
    FILE *t = fopen(truth, "r");
    if (!t) return 1;
    size_t cap = 1 << 16, n = 0;
    struct tr {
        char id[32];
        int person;
    } *tv = malloc(cap * sizeof *tv);
    int maxp = 0;
    while (fscanf(t, "%31s %d", tv[n].id, &tv[n].person) == 2) {
        if (tv[n].person + 1 > maxp) maxp = tv[n].person + 1;
        if (++n == cap) tv = realloc(tv, (cap *= 2) * sizeof *tv);
    }
    fclose(t);
    sqlite3 *d;
    if (sqlite3_open_v2(db, &d, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) return 1;
    sqlite3_stmt *st;
    /* the identifier value (the record id) of each linked source */
    const char *sql =
        "SELECT l.golden, json_extract(h.json, '$.identifier[0].value') FROM mpi_link l "
        "JOIN resources r ON r.type='Patient' AND r.id=l.source JOIN history h ON h.seq=r.seq";
    if (sqlite3_prepare_v2(d, sql, -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "%s\n", sqlite3_errmsg(d));
        return 1;
    }
    assign *a = calloc(n, sizeof *a);
    size_t k = 0;
    /* the record ids are "s<source>-<person>" */
    while (sqlite3_step(st) == SQLITE_ROW && k < n) {
        const char *g = (const char *)sqlite3_column_text(st, 0);
        const char *id = (const char *)sqlite3_column_text(st, 1);
        const char *dash = id ? strchr(id, '-') : NULL;
        if (!dash || !g) continue;
        snprintf(a[k].golden, sizeof a[k].golden, "%.39s", g);
        a[k].person = atoi(dash + 1);
        k++;
    }
    sqlite3_finalize(st);
    sqlite3_close(d);
    printf("mode=mllp linked=%zu of %zu\n", k, n);
    report(a, k, maxp, 0, 0);
    free(a);
    free(tv);
    return 0;
}

/* EM on the candidate pairs that blocking yields (in memory), against the
 * m and u counted from the truth. */
typedef struct {
    char key[96];
    int rec;
} keyrec;

static int cmp_keyrec(const void *a, const void *b) {
    const keyrec *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : x->rec - y->rec;
}

static int em(int n, uint64_t seed) {
    size_t nrec;
    record *v = dataset(n, seed, &nrec);
    hub_err err;
    hub_mpi_nicknames_load(HUB_SOURCE_DIR "/conformance/mpi/nicknames.tsv", &err);
    hub_mpi_feat *f = malloc(nrec * sizeof *f);
    keyrec *kr = malloc(nrec * 12 * sizeof *kr);
    size_t nk = 0;
    for (size_t i = 0; i < nrec; i++) {
        json_t *p = to_fhir(&v[i]);
        hub_mpi_feat_of(p, &f[i]);
        json_decref(p);
        char keys[12][96];
        size_t k = hub_mpi_block_keys(&f[i], keys, 12);
        for (size_t j = 0; j < k; j++) {
            memcpy(kr[nk].key, keys[j], 96);
            kr[nk++].rec = (int)i;
        }
    }
    qsort(kr, nk, sizeof *kr, cmp_keyrec);
    size_t cap = 1 << 20, np = 0;
    int8_t(*vec)[HUB_MPI__F_COUNT] = malloc(cap * sizeof *vec);
    bool *same = malloc(cap * sizeof *same);
    for (size_t i = 0; i < nk;) {
        size_t j = i;
        while (j < nk && !strcmp(kr[j].key, kr[i].key)) j++;
        for (size_t a = i; a < j && a < i + 32; a++)
            for (size_t b = a + 1; b < j && b < i + 32 && np < cap; b++) {
                hub_mpi_compare(&f[kr[a].rec], &f[kr[b].rec], vec[np]);
                same[np++] = v[kr[a].rec].person == v[kr[b].rec].person;
            }
        i = j;
    }
    /* truth: m and u among these pairs */
    double cm[HUB_MPI__F_COUNT][HUB_MPI__L_COUNT] = {{0}}, cu[HUB_MPI__F_COUNT][HUB_MPI__L_COUNT] = {{0}};
    double tm[HUB_MPI__F_COUNT] = {0}, tu[HUB_MPI__F_COUNT] = {0}, matches = 0;
    for (size_t i = 0; i < np; i++) {
        matches += same[i];
        for (int fl = 0; fl < HUB_MPI__F_COUNT; fl++) {
            int l = vec[i][fl];
            if (l < 0) continue;
            if (same[i]) {
                cm[fl][l]++;
                tm[fl]++;
            } else {
                cu[fl][l]++;
                tu[fl]++;
            }
        }
    }
    hub_mpi_weights w;
    hub_mpi_weights_default(&w);
    double pm = 0.1;
    hub_mpi_em((const int8_t(*)[HUB_MPI__F_COUNT])vec, np, 100, &w, &pm);
    printf("pairs=%zu (blocked, duplicates included) match share: truth=%.3f em=%.3f\n", np,
           matches / (double)np, pm);
    printf("%-10s %-5s %28s %28s\n", "field", "", "em m/u (diff..exact)", "truth m/u");
    for (int fl = 0; fl < HUB_MPI__F_COUNT; fl++)
        for (int mu = 0; mu < 2; mu++) {
            printf("%-10s %-5s", mu ? "" : hub_mpi_field_name((hub_mpi_field)fl), mu ? "u" : "m");
            for (int l = 0; l < HUB_MPI__L_COUNT; l++) printf(" %.3f", mu ? w.u[fl][l] : w.m[fl][l]);
            printf("   ");
            for (int l = 0; l < HUB_MPI__L_COUNT; l++)
                printf(" %.3f", mu ? (tu[fl] ? cu[fl][l] / tu[fl] : 0) : (tm[fl] ? cm[fl][l] / tm[fl] : 0));
            printf("\n");
        }
    free(vec);
    free(same);
    free(kr);
    free(f);
    free(v);
    hub_mpi_nicknames_free();
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 4 && !strcmp(argv[1], "em")) return em(atoi(argv[2]), strtoull(argv[3], NULL, 10));
    if (argc >= 4 && !strcmp(argv[1], "run")) {
        bool full = false;
        int batch = 32;
        size_t every = 0;
        const char *conf = NULL; /* the "mpi" section: '{"block_limit": 64}' */
        for (int i = 4; i < argc; i++) {
            if (!strcmp(argv[i], "--full")) full = true;
            if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = atoi(argv[++i]);
            if (!strcmp(argv[i], "--conf") && i + 1 < argc) conf = argv[++i];
            if (!strcmp(argv[i], "--progress") && i + 1 < argc) every = strtoul(argv[++i], 0, 10);
        }
        if (batch < 1) batch = 1;
        return run(atoi(argv[2]), strtoull(argv[3], NULL, 10), full, batch, conf, every);
    }
    if (argc == 6 && !strcmp(argv[1], "gen"))
        return gen(atoi(argv[2]), strtoull(argv[3], NULL, 10), argv[4], argv[5]);
    if (argc == 4 && !strcmp(argv[1], "eval")) return eval(argv[2], argv[3]);
    fprintf(stderr, "usage: bench_mpi run N SEED [--full] [--batch K] [--conf MPI_JSON] [--progress K] | gen N SEED OUT TRUTH | "
                    "eval DB TRUTH\n");
    return 2;
}
