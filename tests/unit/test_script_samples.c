/*
 * test_script_samples.c - the script analyser's scorecard against the
 * shared sample corpus (the .jsonl files of ../shared/samples/scripts, relative to the
 * repository root, where tests run; SP_SCRIPT_SAMPLES overrides the
 * directory).  The samples are never copied into the repository: without
 * them the test is skipped with the reason.
 *
 * Every record of every file is analysed with the default limits, then:
 *
 *   decoded   records that state expected.decoded: the final layer must
 *             contain that text, both sides lower-cased with white-space
 *             runs folded to one space and trimmed.
 *   iocs      every record (a record without expected.iocs expects none):
 *             found vs expected per type - urls (url), ips (ipv4 + ipv6),
 *             domains (domain), unc_paths (unc_path).  Values compare
 *             case-insensitively; URLs and UNC paths also ignore one
 *             trailing '/' or '\'.  precision = matched found / all found,
 *             recall = matched expected / all expected, summed over
 *             records.  Ports are scored the same way, on the records that
 *             state ports, and printed for information.
 *   prefilter records the analyser reports a behaviour or a network
 *             indicator for: share that sp_script_worth_analyzing() lets
 *             through (the hot path analyses nothing else).
 *   attack    records that state expected.techniques, per technique:
 *             strict - the analysis reports that id, or (for a parent id)
 *             one of its sub-techniques; reporting only the parent of an
 *             expected sub-technique does not count.  parent - the
 *             analysis reports any technique with the same parent id.
 *
 * Misses are printed (record id, expected, found; first 40 per metric),
 * then per-file and overall figures, which must stay above the floors
 * below (set just under what the analyser achieves, so a regression
 * fails the test).
 */
#include "script.h"
#include "t.h"

#include <dirent.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MISSES 40
#define FLOOR_PREFILTER 99
#define MAX_FILES 16

enum metric { M_DECODED, M_IOC_P, M_IOC_R, M_ATT_S, M_ATT_P, M_PORT_P, M_PORT_R,
              M_PREFILTER, M__N };

static const char *const metric_names[M__N] = {
    "decoded", "ioc precision", "ioc recall", "attack strict", "attack parent",
    "port precision", "port recall", "prefilter",
};

struct tally {
    unsigned hit[M__N];
    unsigned all[M__N];
};

/* Floors, in percent, per file and overall; -1 = not asserted.  Order as
 * enum metric: decoded, ioc precision, ioc recall, attack strict, attack
 * parent, port precision, port recall, prefilter.  Each sits just under what the
 * analyser scores, so one more miss than today fails the test. */
struct floor {
    const char *file;
    double min[M__N];
};

static const struct floor floors[] = {
    {"atomic_red_team_selected.jsonl", {93, 97, 97, 95, 96, -1, -1, -1}},
    {"invoke_dosfuscation_examples.jsonl", {97, 87, 75, -1, -1, -1, -1, -1}},
    {"invoke_obfuscation_examples.jsonl", {92, -1, -1, -1, -1, -1, -1, -1}},
    {"lolbas_commands.jsonl", {-1, 94.5, 99, 98, 98, -1, -1, -1}},
    {"msticpy_demo_commandlines.jsonl", {79, 88, 88, -1, -1, -1, -1, -1}},
    {"reverse_shell_oneliners.jsonl", {-1, 98, 98, -1, -1, 98, 98, -1}},
    {"(overall)", {96, 96.5, 98.5, 97.5, 97.5, 98, 98, FLOOR_PREFILTER}},
};

static unsigned misses_printed[M__N];

static void miss(enum metric m, const char *id, const char *fmt, ...) SP_PRINTF(3, 4);

static void miss(enum metric m, const char *id, const char *fmt, ...)
{
    if (misses_printed[m]++ >= MAX_MISSES)
        return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    for (char *p = buf; *p; p++)
        if ((unsigned char)*p < ' ')
            *p = ' ';
    printf("  miss %-14s %s: %s\n", metric_names[m], id, buf);
}

/* lower-case, white-space runs folded, trimmed; new string */
static char *normalize_ws(const char *s, size_t n)
{
    char *o = malloc(n + 1);
    size_t k = 0;
    bool space = true;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
            if (!space)
                o[k++] = ' ';
            space = true;
        } else {
            o[k++] = sp_tolower((char)c);
            space = false;
        }
    }
    while (k > 0 && o[k - 1] == ' ')
        k--;
    o[k] = '\0';
    return o;
}

/* ---- indicator sets ---------------------------------------------------------- */

struct vset {
    char *v[64];
    size_t n;
};

static void vset_add(struct vset *s, const char *v, bool trim_slash)
{
    if (s->n >= SP_ARRAY_SIZE(s->v))
        return;
    size_t n = strlen(v);
    if (trim_slash && n > 1 && (v[n - 1] == '/' || v[n - 1] == '\\'))
        n--;
    char *c = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        c[i] = sp_tolower(v[i]);
    c[n] = '\0';
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i], c) == 0) {
            free(c);
            return;
        }
    s->v[s->n++] = c;
}

static void vset_free(struct vset *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    s->n = 0;
}

static bool vset_has(const struct vset *s, const char *v)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i], v) == 0)
            return true;
    return false;
}

static void vset_print(const struct vset *s, char *buf, size_t cap)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < s->n && o + 8 < cap; i++) {
        int w = snprintf(buf + o, cap - o, "%s%s", i ? " " : "", s->v[i]);
        if (w > 0)
            o = SP_MIN(o + (size_t)w, cap - 1);
    }
}

enum kind { K_URL, K_IP, K_DOMAIN, K_UNC, K_PORT, K__N };
static const char *const kind_keys[K__N] = {"urls", "ips", "domains", "unc_paths", "ports"};

static void found_sets(const struct sp_script_analysis *a, struct vset f[K__N])
{
    for (size_t i = 0; i < a->n_indicators; i++) {
        const struct sp_ioc *c = &a->indicators[i];
        switch (c->type) {
        case SP_IOC_URL: vset_add(&f[K_URL], c->value, true); break;
        case SP_IOC_IPV4:
        case SP_IOC_IPV6: vset_add(&f[K_IP], c->value, false); break;
        case SP_IOC_DOMAIN: vset_add(&f[K_DOMAIN], c->value, false); break;
        case SP_IOC_UNC_PATH: vset_add(&f[K_UNC], c->value, true); break;
        case SP_IOC_PORT: vset_add(&f[K_PORT], c->value, false); break;
        default: break;
        }
    }
}

static void expected_sets(json_t *iocs, struct vset e[K__N])
{
    for (int k = 0; k < K__N; k++) {
        json_t *arr = json_object_get(iocs, kind_keys[k]);
        size_t i;
        json_t *v;
        json_array_foreach(arr, i, v) {
            char num[32];
            const char *s = json_string_value(v);
            if (!s && json_is_integer(v)) {
                snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
                s = num;
            }
            if (s)
                vset_add(&e[k], s, k == K_URL || k == K_UNC);
        }
    }
}

/* ---- techniques -------------------------------------------------------------- */

static size_t parent_len(const char *id)
{
    const char *dot = strchr(id, '.');
    return dot ? (size_t)(dot - id) : strlen(id);
}

static bool strict_hit(const struct sp_script_analysis *a, const char *want)
{
    size_t wl = strlen(want);
    bool want_parent = strchr(want, '.') == NULL;
    for (size_t i = 0; i < a->n_behaviours; i++) {
        const char *id = a->behaviours[i].tech->id;
        if (strcmp(id, want) == 0)
            return true;
        if (want_parent && strncmp(id, want, wl) == 0 && id[wl] == '.')
            return true;
    }
    return false;
}

static bool parent_hit(const struct sp_script_analysis *a, const char *want)
{
    size_t pl = parent_len(want);
    for (size_t i = 0; i < a->n_behaviours; i++) {
        const char *id = a->behaviours[i].tech->id;
        if (parent_len(id) == pl && strncmp(id, want, pl) == 0)
            return true;
    }
    return false;
}

static void found_techs(const struct sp_script_analysis *a, char *buf, size_t cap)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < a->n_behaviours && o + 16 < cap; i++) {
        int w = snprintf(buf + o, cap - o, "%s%s", i ? " " : "", a->behaviours[i].tech->id);
        if (w > 0)
            o += (size_t)w;
    }
}

/* ---- one record ---------------------------------------------------------------- */

static void score_record(json_t *rec, struct tally *t)
{
    const char *id = json_string_value(json_object_get(rec, "id"));
    const char *input = json_string_value(json_object_get(rec, "input"));
    json_t *exp = json_object_get(rec, "expected");
    if (!id)
        id = "(no id)";
    if (!input)
        return;
    struct sp_script_analysis a;
    if (sp_script_analyze(input, strlen(input), NULL, &a) != SP_OK) {
        T_FAILF("%s: analysis failed", id);
        return;
    }
    char fbuf[1024], ebuf[1024];

    const char *dec = json_string_value(json_object_get(exp, "decoded"));
    if (dec) {
        size_t fl;
        const char *ft = sp_script_final_text(&a, &fl);
        char *nf = normalize_ws(ft, fl), *nd = normalize_ws(dec, strlen(dec));
        t->all[M_DECODED]++;
        if (strstr(nf, nd))
            t->hit[M_DECODED]++;
        else
            miss(M_DECODED, id, "want \"%.120s\" final \"%.160s\"", nd, nf);
        free(nf);
        free(nd);
    }

    struct vset f[K__N] = {{{0}, 0}}, e[K__N] = {{{0}, 0}};
    found_sets(&a, f);
    expected_sets(json_object_get(exp, "iocs"), e);
    for (int k = 0; k < K__N; k++) {
        bool port = k == K_PORT;
        if (port && !json_object_get(json_object_get(exp, "iocs"), "ports")) {
            vset_free(&f[k]);
            vset_free(&e[k]);
            continue;
        }
        enum metric mp = port ? M_PORT_P : M_IOC_P, mr = port ? M_PORT_R : M_IOC_R;
        for (size_t i = 0; i < f[k].n; i++) {
            t->all[mp]++;
            if (vset_has(&e[k], f[k].v[i]))
                t->hit[mp]++;
            else {
                vset_print(&e[k], ebuf, sizeof(ebuf));
                miss(mp, id, "%s: found %s; expected [%s]", kind_keys[k], f[k].v[i], ebuf);
            }
        }
        for (size_t i = 0; i < e[k].n; i++) {
            t->all[mr]++;
            if (vset_has(&f[k], e[k].v[i]))
                t->hit[mr]++;
            else {
                vset_print(&f[k], fbuf, sizeof(fbuf));
                miss(mr, id, "%s: expected %s; found [%s]", kind_keys[k], e[k].v[i], fbuf);
            }
        }
        vset_free(&f[k]);
        vset_free(&e[k]);
    }

    /* the hot-path prefilter must let through every line the analyser
     * has something to say about (a behaviour or a network indicator) */
    if (a.n_behaviours > 0 || sp_ioc_list_network_count(&(struct sp_ioc_list){
                                  .v = a.indicators, .n = a.n_indicators}) > 0) {
        t->all[M_PREFILTER]++;
        if (sp_script_worth_analyzing(input, strlen(input)))
            t->hit[M_PREFILTER]++;
        else
            miss(M_PREFILTER, id, "rejected: %.120s", input);
    }

    json_t *techs = json_object_get(exp, "techniques");
    size_t i;
    json_t *v;
    json_array_foreach(techs, i, v) {
        const char *want = json_string_value(v);
        if (!want)
            continue;
        t->all[M_ATT_S]++;
        t->all[M_ATT_P]++;
        bool s = strict_hit(&a, want), p = parent_hit(&a, want);
        t->hit[M_ATT_S] += s;
        t->hit[M_ATT_P] += p;
        if (!s || !p) {
            found_techs(&a, fbuf, sizeof(fbuf));
            miss(s ? M_ATT_P : M_ATT_S, id, "want %s; found [%s]; input %.100s", want, fbuf,
                 input);
        }
    }
    sp_script_analysis_fini(&a);
}

/* ---- the scorecard ----------------------------------------------------------------- */

static double pct(const struct tally *t, enum metric m)
{
    return t->all[m] ? 100.0 * t->hit[m] / t->all[m] : -1;
}

static void print_row(const char *name, unsigned recs, const struct tally *t)
{
    printf("  %-36s %5u", name, recs);
    for (int m = 0; m < M__N; m++) {
        if (t->all[m])
            printf("  %4u/%-4u %5.1f%%", t->hit[m], t->all[m], pct(t, (enum metric)m));
        else
            printf("  %16s", "-");
    }
    putchar('\n');
}

static void check_floor(const char *name, const struct tally *t)
{
    for (size_t f = 0; f < SP_ARRAY_SIZE(floors); f++) {
        if (strcmp(floors[f].file, name) != 0)
            continue;
        for (int m = 0; m < M__N; m++) {
            double got = pct(t, (enum metric)m);
            if (floors[f].min[m] >= 0 && got >= 0 && got < floors[f].min[m])
                T_FAILF("%s: %s %.1f%% is below the floor %.1f%%", name, metric_names[m], got,
                        floors[f].min[m]);
        }
    }
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_scorecard(void)
{
    const char *dir = getenv("SP_SCRIPT_SAMPLES");
    if (!dir || !*dir)
        dir = "../shared/samples/scripts";
    DIR *d = opendir(dir);
    if (!d)
        T_SKIP("sample corpus ../shared/samples/scripts not found (tests run from the "
               "repository root; set SP_SCRIPT_SAMPLES to point elsewhere)");
    char *names[MAX_FILES];
    size_t nn = 0;
    struct dirent *de;
    while ((de = readdir(d)) && nn < MAX_FILES) {
        size_t l = strlen(de->d_name);
        if (l > 6 && strcmp(de->d_name + l - 6, ".jsonl") == 0)
            names[nn++] = strdup(de->d_name);
    }
    closedir(d);
    if (nn == 0)
        T_SKIP("no .jsonl files in the sample directory");
    qsort(names, nn, sizeof(names[0]), name_cmp);

    struct tally per[MAX_FILES], all;
    unsigned recs[MAX_FILES], all_recs = 0;
    memset(per, 0, sizeof(per));
    memset(&all, 0, sizeof(all));
    printf("script analyser scorecard over %s\n", dir);
    for (size_t f = 0; f < nn; f++) {
        char path[1024];
        snprintf(path, sizeof(path), "%s/%s", dir, names[f]);
        FILE *fp = fopen(path, "r");
        recs[f] = 0;
        if (!fp) {
            T_FAILF("cannot open %s", path);
            continue;
        }
        char *line = NULL;
        size_t cap = 0;
        while (getline(&line, &cap, fp) > 0) {
            json_error_t jerr;
            json_t *rec = json_loads(line, 0, &jerr);
            if (!rec)
                continue;
            recs[f]++;
            score_record(rec, &per[f]);
            json_decref(rec);
        }
        free(line);
        fclose(fp);
        all_recs += recs[f];
        for (int m = 0; m < M__N; m++) {
            all.hit[m] += per[f].hit[m];
            all.all[m] += per[f].all[m];
        }
    }

    printf("\n  %-36s %5s", "file", "recs");
    for (int m = 0; m < M__N; m++)
        printf("  %16s", metric_names[m]);
    putchar('\n');
    for (size_t f = 0; f < nn; f++) {
        print_row(names[f], recs[f], &per[f]);
        check_floor(names[f], &per[f]);
    }
    print_row("(overall)", all_recs, &all);
    check_floor("(overall)", &all);
    printf("\n  decoded: final layer contains expected.decoded (case and white space folded)\n"
           "  iocs: urls/ips/domains/unc_paths over all records, case-insensitive, one\n"
           "        trailing / or \\ ignored; ports only where the record states ports\n"
           "  attack strict: exact id, or a sub-technique of an expected parent id;\n"
           "  attack parent: any reported technique with the expected id's parent\n"
           "  prefilter: lines with a behaviour or network indicator the prefilter passes\n");
    for (size_t f = 0; f < nn; f++)
        free(names[f]);
}

int main(void)
{
    t_prog = "test_script_samples";
    T_RUN(test_scorecard);
    return t_done();
}
