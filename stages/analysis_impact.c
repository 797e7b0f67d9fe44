/*
 * analysis_impact.c - the deterministic impact score (0-100) and level of
 * an incident, with the factors that make it up.  The same incident
 * always gets the same score; the LLM explains it but never sets it.
 *
 *   factor      points  from
 *   severity    5-30    highest alert severity (informational..high)
 *   hosts       0-15    distinct hosts (1, 2-3, 4-9, 10+)
 *   identities  0-10    distinct accounts and mailboxes
 *   privileged  0-15    privileged or VIP identities (enrichment marks)
 *   critical    0-15    critical assets (enrichment marks)
 *   tactics     0-15    latest kill-chain stage reached + breadth
 *   spread      0-5     first to last activity (1 h, 1 d, 7 d)
 *   volume      0-5     number of alerts (5, 20, 50)
 *   scripts     0-10    highest script risk / 10
 *
 * The sum is capped at 100.  Factor details never name entities (they go
 * into prompts as they are).  Pure functions; any thread.
 */
#include <stdio.h>
#include <string.h>

#include "analysis_int.h"

static const struct {
    const char *norm;        /* lower-case, letters only */
    const char *canonical;
    const char *id;
    int weight;
} tactics[] = {
    {"reconnaissance", "reconnaissance", "TA0043", 1},
    {"resourcedevelopment", "resource-development", "TA0042", 1},
    {"initialaccess", "initial-access", "TA0001", 3},
    {"execution", "execution", "TA0002", 4},
    {"persistence", "persistence", "TA0003", 5},
    {"privilegeescalation", "privilege-escalation", "TA0004", 6},
    {"defenseevasion", "defense-evasion", "TA0005", 5},
    {"credentialaccess", "credential-access", "TA0006", 7},
    {"discovery", "discovery", "TA0007", 4},
    {"lateralmovement", "lateral-movement", "TA0008", 8},
    {"collection", "collection", "TA0009", 7},
    {"commandandcontrol", "command-and-control", "TA0011", 7},
    {"exfiltration", "exfiltration", "TA0010", 9},
    {"impact", "impact", "TA0040", 10},
};

int an_tactic_weight(const char *tactic, const char **canonical)
{
    char norm[48];
    size_t n = 0;
    for (const char *p = tactic; p && *p && n < sizeof(norm) - 1; p++) {
        char c = sp_tolower(*p);
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
            norm[n++] = c;
    }
    norm[n] = '\0';
    for (size_t i = 0; i < SP_ARRAY_SIZE(tactics); i++) {
        if (strcmp(norm, tactics[i].norm) == 0 ||
            sp_strcaseeq(tactic, tactics[i].id)) {
            if (canonical)
                *canonical = tactics[i].canonical;
            return tactics[i].weight;
        }
    }
    return -1;
}

const char *sp_analysis_level(int score)
{
    return score >= 75 ? "critical" : score >= 50 ? "high"
         : score >= 25 ? "medium" : "low";
}

static void factor(struct sp_impact *imp, const char *name, int points,
                   const char *fmt, ...) SP_PRINTF(4, 5);

static void factor(struct sp_impact *imp, const char *name, int points,
                   const char *fmt, ...)
{
    if (points <= 0 || imp->n_factors >= SP_IMPACT_MAX_FACTORS)
        return;
    struct sp_impact_factor *f = &imp->factors[imp->n_factors++];
    f->name = name;
    f->points = points;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->detail, sizeof(f->detail), fmt, ap);
    va_end(ap);
    imp->score += points;
}

static int steps(size_t n, const size_t *at, const int *pts, size_t k)
{
    int p = 0;
    for (size_t i = 0; i < k; i++)
        if (n >= at[i])
            p = pts[i];
    return p;
}

void an_impact(const struct an_inc *ix, struct sp_impact *imp)
{
    memset(imp, 0, sizeof(*imp));
    static const int sev_pts[] = {5, 5, 10, 20, 30};
    int sev = ix->sev >= 0 && ix->sev <= SP_SEV_HIGH ? ix->sev : 0;
    factor(imp, "severity", sev_pts[sev], "highest alert severity: %s",
           sp_severity_name((enum sp_severity)sev));

    size_t hosts = 0, ids = 0, priv = 0, crit = 0;
    for (size_t i = 0; i < ix->n_ents; i++) {
        const struct an_entity *e = &ix->ents[i];
        bool identity = e->kind == AN_USER || e->kind == AN_EMAIL;
        hosts += e->kind == AN_HOST;
        ids += identity;
        priv += identity && (e->privileged || e->vip);
        crit += e->critical;
    }
    static const size_t host_at[] = {1, 2, 4, 10};
    static const int host_pts[] = {3, 6, 10, 15};
    factor(imp, "hosts", steps(hosts, host_at, host_pts, 4), "%zu host%s",
           hosts, hosts == 1 ? "" : "s");
    static const size_t id_at[] = {1, 2, 4};
    static const int id_pts[] = {3, 6, 10};
    factor(imp, "identities", steps(ids, id_at, id_pts, 3), "%zu identit%s",
           ids, ids == 1 ? "y" : "ies");
    static const size_t pc_at[] = {1, 3};
    static const int pc_pts[] = {10, 15};
    factor(imp, "privileged_identities", steps(priv, pc_at, pc_pts, 2),
           "%zu privileged or VIP identit%s", priv, priv == 1 ? "y" : "ies");
    factor(imp, "critical_assets", steps(crit, pc_at, pc_pts, 2),
           "%zu critical asset%s", crit, crit == 1 ? "" : "s");

    /* Tactics reached, distinct by canonical name. */
    const char *seen[SP_ARRAY_SIZE(tactics)];
    size_t n_seen = 0;
    int top = 0;
    const char *top_name = NULL;
    for (size_t i = 0; i < ix->n_alerts; i++) {
        sp_json_foreach(ix->alerts[i].tactics, t) {
            const char *canon = NULL;
            int w = an_tactic_weight(sp_json_scalar(t), &canon);
            if (w < 0)
                continue;
            bool dup = false;
            for (size_t k = 0; k < n_seen && !dup; k++)
                dup = seen[k] == canon;
            if (!dup && n_seen < SP_ARRAY_SIZE(seen))
                seen[n_seen++] = canon;
            if (w > top) {
                top = w;
                top_name = canon;
            }
        }
    }
    int tac = top + (n_seen >= 5 ? 5 : n_seen >= 3 ? 3 : 0);
    factor(imp, "tactics", SP_MIN(tac, 15), "%zu ATT&CK tactic%s, latest "
           "stage %s", n_seen, n_seen == 1 ? "" : "s",
           top_name ? top_name : "none");

    if (ix->first_seen != SP_TIME_NONE && ix->last_seen != SP_TIME_NONE &&
        ix->last_seen > ix->first_seen) {
        int64_t span_s = (ix->last_seen - ix->first_seen) / 1000000;
        int p = span_s >= 7 * 86400 ? 5 : span_s >= 86400 ? 4
              : span_s >= 3600 ? 2 : 0;
        factor(imp, "spread", p, "activity over %lld h",
               (long long)(span_s / 3600));
    }
    size_t na = SP_MAX(ix->n_alerts_total, ix->n_alerts);
    static const size_t vol_at[] = {5, 20, 50};
    static const int vol_pts[] = {2, 4, 5};
    factor(imp, "volume", steps(na, vol_at, vol_pts, 3), "%zu alerts", na);

    int risk = -1;
    for (size_t i = 0; i < ix->n_scripts; i++)
        risk = SP_MAX(risk, ix->scripts[i].risk);
    if (risk > 0)
        factor(imp, "scripts", SP_MIN(10, (risk + 5) / 10),
               "highest script risk %d/100", risk);

    if (imp->score > 100)
        imp->score = 100;
    imp->level = sp_analysis_level(imp->score);
}

enum sp_err sp_analysis_impact(const struct sp_json *inc,
                               const struct sp_analysis_opts *o,
                               struct sp_impact *out)
{
    struct sp_analysis_opts def;
    if (!o) {
        sp_analysis_opts_default(&def);
        o = &def;
    }
    struct sp_arena a;
    sp_arena_init(&a, (size_t)256 << 20);
    struct an_inc ix;
    enum sp_err e = an_index(&a, inc, o, &ix);
    if (e == SP_OK)
        an_impact(&ix, out);
    else
        memset(out, 0, sizeof(*out));
    sp_arena_fini(&a);
    return e;
}
