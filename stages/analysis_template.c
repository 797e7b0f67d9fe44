/*
 * analysis_template.c - the built-in deterministic analysis: the same
 * answer a model gives (same JSON shape, validated by the same schema),
 * written from the incident's own data, for when no LLM is configured, it
 * is down or over budget, or its answers fail validation.
 *
 * Every sentence is assembled from fields of the incident: when and where
 * it started (first alert, its host), the first entity, a timeline of
 * alerts, affected hosts and identities, indicators (entities and script
 * indicators), ATT&CK tactics and techniques, rule-based next steps
 * (isolate, reset credentials, block indicators, hunt hashes, review
 * decoded scripts, escalate), and scripts explained from the behaviours
 * the script analyser found.
 *
 * Pure functions; any thread.
 */
#include <stdio.h>
#include <string.h>

#include "analysis_int.h"

/* Strings are cut (UTF-8 safe) to the schema's maxLength. */
static void put_capped(struct sp_jw *w, const char *s, size_t max)
{
    if (!s)
        s = "";
    size_t n = strlen(s);
    if (n <= max) {
        sp_jw_strn(w, s, n);
        return;
    }
    size_t m = max - 3;
    while (m > 0 && ((unsigned char)s[m] & 0xC0) == 0x80)
        m--;
    char buf[4096];
    m = SP_MIN(m, sizeof(buf) - 4);
    memcpy(buf, s, m);
    memcpy(buf + m, "...", 4);
    sp_jw_strn(w, buf, m + 3);
}

static void kput(struct sp_jw *w, const char *key, const char *s, size_t max)
{
    sp_jw_key(w, key);
    put_capped(w, s, max);
}

/* Up to max names of entities of a kind, joined with ", ". */
static size_t names_of(const struct an_inc *ix, enum an_kind k1,
                       enum an_kind k2, size_t max, struct sp_buf *out)
{
    size_t n = 0, total = 0;
    for (size_t i = 0; i < ix->n_ents; i++) {
        const struct an_entity *e = &ix->ents[i];
        if (e->kind != k1 && e->kind != k2)
            continue;
        if (n < max)
            sp_buf_printf(out, "%s%s", n ? ", " : "", e->name);
        n += n < max;
        total++;
    }
    if (total > n)
        sp_buf_printf(out, " and %zu more", total - n);
    return total;
}

static const struct an_entity *first_of(const struct an_inc *ix,
                                        const struct an_alert *al,
                                        enum an_kind kind)
{
    for (uint32_t k = 0; al && k < al->n_ents; k++)
        if (ix->ents[al->ents[k]].kind == kind)
            return &ix->ents[al->ents[k]];
    return NULL;
}

struct tset {
    const char *v[64];
    size_t n;
};

static void tset_add(struct tset *s, const char *v)
{
    if (!v || !*v)
        return;
    for (size_t i = 0; i < s->n; i++)
        if (sp_strcaseeq(s->v[i], v))
            return;
    if (s->n < SP_ARRAY_SIZE(s->v))
        s->v[s->n++] = v;
}

static bool tset_has(const struct tset *s, const char *v)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i], v) == 0)
            return true;
    return false;
}

/* A detector named by an identifier (a GUID, a rule id) tells a reader
 * nothing: it is counted, not quoted. */
static bool id_like(const char *s)
{
    size_t n = 0, hex = 0, digits = 0;
    for (; s[n]; n++) {
        unsigned char c = (unsigned char)s[n];
        if (c >= '0' && c <= '9')
            digits++;
        else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
            hex++;
        else if (c != '-' && c != '_')
            return false;
    }
    return (digits && digits + hex >= 16) || (digits >= 3 && !hex);
}

/* The product that raised an alert, as analysts name it now: Graph's
 * serviceSource codes, and the older names Sentinel alerts still carry. */
static const char *product_name(const char *p)
{
    static const struct {
        const char *code, *name;
    } names[] = {
        {"microsoftDefenderForEndpoint", "Microsoft Defender for Endpoint"},
        {"microsoftDefenderForIdentity", "Microsoft Defender for Identity"},
        {"microsoftDefenderForOffice365", "Microsoft Defender for Office 365"},
        {"microsoftDefenderForCloudApps", "Microsoft Defender for Cloud Apps"},
        {"microsoftDefenderForCloud", "Microsoft Defender for Cloud"},
        {"microsoft365Defender", "Microsoft Defender XDR"},
        {"microsoftSentinel", "Microsoft Sentinel"},
        {"azureAdIdentityProtection", "Microsoft Entra ID Protection"},
        {"microsoftAppGovernance", "App governance"},
        {"dataLossPrevention", "Microsoft Purview Data Loss Prevention"},
        {"microsoftInsiderRiskManagement",
         "Microsoft Purview Insider Risk Management"},
        {"Microsoft Defender Advanced Threat Protection",
         "Microsoft Defender for Endpoint"},
        {"Office 365 Advanced Threat Protection",
         "Microsoft Defender for Office 365"},
        {"Azure Advanced Threat Protection", "Microsoft Defender for Identity"},
        {"Microsoft Cloud App Security", "Microsoft Defender for Cloud Apps"},
        {"Azure Security Center", "Microsoft Defender for Cloud"},
        {"Azure Active Directory Identity Protection",
         "Microsoft Entra ID Protection"},
        {"Microsoft 365 Defender", "Microsoft Defender XDR"},
        {"Azure Sentinel", "Microsoft Sentinel"},
    };
    if (!p || !*p || sp_strcaseeq(p, "unknown") ||
        sp_strcaseeq(p, "unknownFutureValue"))
        return NULL;
    for (size_t i = 0; i < SP_ARRAY_SIZE(names); i++)
        if (sp_strcaseeq(p, names[i].code))
            return names[i].name;
    return p;
}

/* "A, B and C", or "A, B, C and N other <what>" past three; when the set
 * may be short (full, or not every alert was read) "at least N other", or
 * "A, B and possibly other <what>". */
static void put_list3(struct sp_buf *b, const struct tset *s, bool partial,
                      const char *one, const char *many)
{
    size_t shown = s->n > 3 ? 3 : s->n;
    for (size_t i = 0; i < shown; i++)
        sp_buf_printf(b, "%s%.80s",
                      i == 0 ? "" : i + 1 == s->n && !partial ? " and " : ", ",
                      s->v[i]);
    if (s->n > 3)
        sp_buf_printf(b, " and %s%zu other %s", partial ? "at least " : "",
                      s->n - shown, s->n - shown == 1 && !partial ? one : many);
    else if (partial)
        sp_buf_printf(b, " and possibly other %s", many);
}

static const char *behaviour_tech(const struct sp_json *b)
{
    const char *t = sp_json_str(b, "technique");
    if (!t)
        t = sp_json_str(b, "attack");
    if (!t)
        t = sp_json_str(b, "id");
    return t;
}

static const char *behaviour_text(const struct sp_json *b)
{
    const char *t = sp_json_str(b, "description");
    if (!t)
        t = sp_json_str(b, "name");
    if (!t)
        t = sp_json_scalar(b);
    return t;
}

static const char *ioc_type(const char *t)
{
    if (!t)
        return "other";
    if (strcmp(t, "ipv4") == 0 || strcmp(t, "ipv6") == 0 || strcmp(t, "ip") == 0)
        return "ip";
    if (strcmp(t, "md5") == 0 || strcmp(t, "sha1") == 0 ||
        strcmp(t, "sha256") == 0 || strcmp(t, "hash") == 0)
        return "hash";
    if (strcmp(t, "file_path") == 0 || strcmp(t, "unc_path") == 0 ||
        strcmp(t, "unix_path") == 0 || strcmp(t, "file") == 0)
        return "file";
    if (strcmp(t, "url") == 0 || strcmp(t, "domain") == 0 ||
        strcmp(t, "email") == 0 || strcmp(t, "registry") == 0 ||
        strcmp(t, "process") == 0)
        return t;
    return "other";
}

struct ind {
    const char *type, *value;
};

struct indset {
    struct ind v[100];
    size_t n;
    size_t network, hashes;
};

static void ind_add(struct indset *s, const char *type, const char *value)
{
    if (!value || !*value)
        return;
    for (size_t i = 0; i < s->n; i++)
        if (sp_strcaseeq(s->v[i].value, value))
            return;
    if (s->n >= SP_ARRAY_SIZE(s->v))
        return;
    s->v[s->n++] = (struct ind){type, value};
    if (strcmp(type, "ip") == 0 || strcmp(type, "url") == 0 ||
        strcmp(type, "domain") == 0)
        s->network++;
    if (strcmp(type, "hash") == 0)
        s->hashes++;
}

static const char *ent_id(const struct an_entity *e, const char *name)
{
    const struct sp_json *v = sp_json_get(sp_json_get(e->j, "ids"), name);
    if (v && v->type == SP_JSON_ARRAY)
        v = v->u.child;
    return v && v->type == SP_JSON_STRING ? v->u.s : NULL;
}

static void collect_indicators(const struct an_inc *ix, struct indset *s)
{
    for (size_t i = 0; i < ix->n_ents; i++) {
        const struct an_entity *e = &ix->ents[i];
        switch (e->kind) {
        case AN_IP: ind_add(s, "ip", e->name); break;
        case AN_URL: ind_add(s, "url", e->name); break;
        case AN_DOMAIN: ind_add(s, "domain", e->name); break;
        case AN_FILE: {
            const char *h = ent_id(e, "sha256");
            if (!h)
                h = ent_id(e, "sha1");
            if (!h)
                h = ent_id(e, "md5");
            if (!h && e->key && (strncmp(e->key, "file:sha256:", 12) == 0 ||
                                 strncmp(e->key, "file:sha1:", 10) == 0 ||
                                 strncmp(e->key, "file:md5:", 9) == 0))
                h = e->name;                   /* the key's hash */
            if (h)
                ind_add(s, "hash", h);
            else
                ind_add(s, "file", e->name);
            break;
        }
        default: break;
        }
    }
    for (size_t i = 0; i < ix->n_scripts; i++) {
        sp_json_foreach(ix->scripts[i].indicators, it) {
            const char *v = sp_json_str(it, "value");
            ind_add(s, ioc_type(sp_json_str(it, "type")),
                    v ? v : sp_json_scalar(it));
        }
    }
}

static void collect_attack(const struct an_inc *ix, struct tset *tac,
                           struct tset *tech)
{
    for (size_t i = 0; i < ix->n_alerts; i++) {
        sp_json_foreach(ix->alerts[i].tactics, t) {
            const char *canon = NULL;
            if (an_tactic_weight(sp_json_scalar(t), &canon) >= 0)
                tset_add(tac, canon);
        }
        sp_json_foreach(ix->alerts[i].techniques, t) tset_add(tech,
                                                             sp_json_scalar(t));
    }
    for (size_t i = 0; i < ix->n_scripts; i++)
        sp_json_foreach(ix->scripts[i].behaviours, b) tset_add(tech,
                                                              behaviour_tech(b));
}

static const char *alert_label(const struct an_inc *ix, const char *id)
{
    for (size_t i = 0; id && i < ix->n_alerts; i++)
        if (ix->alerts[i].id && strcmp(ix->alerts[i].id, id) == 0)
            return ix->alerts[i].label;
    return NULL;
}

static void script_explanation(const struct an_inc *ix, const struct an_script *s,
                               struct sp_buf *b)
{
    const char *al = alert_label(ix, s->alert_id);
    size_t layers = s->layers && s->layers->type == SP_JSON_ARRAY
                        ? s->layers->n : 0;
    sp_buf_printf(b, "%s command line%s%s", s->language ? s->language : "A",
                  al ? " in alert " : "", al ? al : "");
    if (s->risk >= 0)
        sp_buf_printf(b, " (risk %d/100)", s->risk);
    if (layers > 1) {
        sp_buf_printf(b, ", decoded through %zu layer%s (", layers - 1,
                      layers == 2 ? "" : "s");
        size_t k = 0;
        sp_json_foreach(s->layers, l) {
            const char *tech = sp_json_str(l, "technique");
            if (!tech || strcmp(tech, "input") == 0 || k >= 6)
                continue;
            sp_buf_printf(b, "%s%s", k++ ? ", " : "", tech);
        }
        sp_buf_putc(b, ')');
    }
    sp_buf_puts(b, ".");
    size_t nb = 0;
    sp_json_foreach(s->behaviours, bh) {
        const char *tech = behaviour_tech(bh), *what = behaviour_text(bh);
        if (nb >= 8)
            break;
        sp_buf_printf(b, "%s%s%s%s%s", nb++ ? "; " : " What it does: ",
                      what ? what : "", tech ? " (" : "", tech ? tech : "",
                      tech ? ")" : "");
    }
    if (nb)
        sp_buf_putc(b, '.');
    size_t ni = 0;
    sp_json_foreach(s->indicators, it) {
        const char *v = sp_json_str(it, "value");
        if (!v || ni >= 5)
            continue;
        sp_buf_printf(b, "%s%s", ni++ ? ", " : " Indicators: ", v);
    }
    if (ni)
        sp_buf_putc(b, '.');
    if (!nb && !ni)
        sp_buf_puts(b, " No known behaviour was recognised; review the "
                       "decoded text.");
}

static void next_steps(const struct an_inc *ix, const struct sp_impact *imp,
                       const struct tset *tac, const struct indset *inds,
                       struct sp_jw *w)
{
    struct sp_buf b, names;
    sp_buf_init(&b, 1 << 16);
    sp_buf_init(&names, 1 << 16);
    size_t hosts = names_of(ix, AN_HOST, AN_HOST, 3, &names);
    bool active = tset_has(tac, "execution") || tset_has(tac, "persistence") ||
                  tset_has(tac, "command-and-control") ||
                  tset_has(tac, "lateral-movement") || tset_has(tac, "impact") ||
                  ix->n_scripts > 0 || ix->sev >= SP_SEV_HIGH;
    if (hosts) {
        sp_buf_printf(&b, active ? "Isolate %s from the network and collect "
                                   "a forensic triage package."
                                 : "Review recent activity on %s.",
                      names.data);
        put_capped(w, b.data, 500);
    }
    sp_buf_reset(&b);
    sp_buf_reset(&names);
    size_t ids = names_of(ix, AN_USER, AN_EMAIL, 3, &names);
    bool creds = tset_has(tac, "credential-access") ||
                 tset_has(tac, "lateral-movement") ||
                 tset_has(tac, "privilege-escalation");
    bool priv = false;
    for (size_t i = 0; i < ix->n_ents; i++)
        priv |= ix->ents[i].privileged || ix->ents[i].vip;
    if (ids) {
        sp_buf_printf(&b, creds || priv
                              ? "Reset the credentials of %s, revoke their "
                                "sessions and refresh tokens, and review "
                                "their recent sign-ins."
                              : "Review recent sign-ins and activity of %s.",
                      names.data);
        put_capped(w, b.data, 500);
    }
    const char *first_net = NULL, *first_hash = NULL;
    for (size_t i = 0; i < inds->n; i++) {
        const char *t = inds->v[i].type;
        if (!first_net && (strcmp(t, "ip") == 0 || strcmp(t, "url") == 0 ||
                           strcmp(t, "domain") == 0))
            first_net = inds->v[i].value;
        if (!first_hash && strcmp(t, "hash") == 0)
            first_hash = inds->v[i].value;
    }
    if (first_net) {
        sp_buf_reset(&b);
        sp_buf_printf(&b, "Block the %zu network indicator%s (for example %s) "
                          "at the proxy and firewall, and search for other "
                          "hosts that contacted them.",
                      inds->network, inds->network == 1 ? "" : "s", first_net);
        put_capped(w, b.data, 500);
    }
    if (first_hash) {
        sp_buf_reset(&b);
        sp_buf_printf(&b, "Search the fleet for the file hash%s (for example "
                          "%s) and quarantine matches.",
                      inds->hashes == 1 ? "" : "es", first_hash);
        put_capped(w, b.data, 500);
    }
    if (ix->n_scripts) {
        sp_buf_reset(&b);
        sp_buf_printf(&b, "Review the %zu decoded script%s and hunt for the "
                          "same command line on other hosts.",
                      ix->n_scripts, ix->n_scripts == 1 ? "" : "s");
        put_capped(w, b.data, 500);
    }
    if (tset_has(tac, "exfiltration") || tset_has(tac, "collection") ||
        tset_has(tac, "impact"))
        put_capped(w, "Assess which data was accessed or taken and involve "
                      "incident response and legal as your policy requires.",
                   500);
    if (imp->score >= 75)
        put_capped(w, "Escalate to the incident response lead: the impact "
                      "score is critical.", 500);
    put_capped(w, "Confirm or close the alerts in the source portal once "
                  "they are triaged.", 500);
    sp_buf_fini(&b);
    sp_buf_fini(&names);
}

enum sp_err an_template_answer(const struct an_inc *ix,
                               const struct sp_impact *imp, struct sp_buf *out)
{
    struct sp_jw w;
    sp_jw_init(&w, out);
    struct sp_buf b, names;
    sp_buf_init(&b, 1 << 20);
    sp_buf_init(&names, 1 << 20);
    char t1[32], t2[32];
    const struct an_alert *first = ix->n_alerts ? &ix->alerts[0] : NULL;
    size_t n_alerts = SP_MAX(ix->n_alerts_total, ix->n_alerts);
    size_t hosts = 0, ids = 0;
    for (size_t i = 0; i < ix->n_ents; i++) {
        hosts += ix->ents[i].kind == AN_HOST;
        ids += ix->ents[i].kind == AN_USER || ix->ents[i].kind == AN_EMAIL;
    }
    struct tset tac = {{0}, 0}, tech = {{0}, 0};
    collect_attack(ix, &tac, &tech);
    struct indset indbuf;
    memset(&indbuf, 0, sizeof(indbuf));
    struct indset *inds = &indbuf;
    collect_indicators(ix, inds);

    sp_jw_obj_open(&w);
    sp_jw_kstr(&w, "assessment", imp->score >= 25 || ix->sev >= SP_SEV_MEDIUM
                                     ? "suspicious" : "undetermined");
    sp_jw_key(&w, "summary");
    sp_jw_obj_open(&w);
    const char *title = ix->title ? ix->title
                        : first && first->title ? first->title : "incident";
    sp_buf_printf(&b, "%s: %.150s (%zu alert%s, %zu host%s, %zu identit%s)",
                  sp_severity_name((enum sp_severity)ix->sev), title, n_alerts,
                  n_alerts == 1 ? "" : "s", hosts, hosts == 1 ? "" : "s", ids,
                  ids == 1 ? "y" : "ies");
    if (b.len)
        b.data[0] = (char)(b.data[0] >= 'a' && b.data[0] <= 'z'
                               ? b.data[0] - 32 : b.data[0]);
    kput(&w, "headline", b.data, 300);

    /* Narrative. */
    sp_buf_reset(&b);
    sp_buf_printf(&b, "Between %s and %s, %zu alert%s ",
                  an_time(t1, ix->first_seen), an_time(t2, ix->last_seen),
                  n_alerts,
                  n_alerts == 1 ? " was raised" : "s were raised");
    /* By which products, and how many detection rules: rule names only
     * when nothing names a product, identifiers never. */
    struct tset prod = {{0}, 0}, rules = {{0}, 0};
    bool rule_ids = false;
    for (size_t i = 0; i < ix->n_alerts; i++) {
        const char *d = ix->alerts[i].detector;
        tset_add(&prod, product_name(ix->alerts[i].provider));
        tset_add(&rules, d);
        rule_ids = rule_ids || (d && id_like(d));
    }
    /* Counts are lower bounds when a set filled up or some alerts were
     * not read (a capped snapshot). */
    bool unread = ix->n_alerts_total > ix->n_alerts;
    bool rules_partial = unread || rules.n == SP_ARRAY_SIZE(rules.v);
    const char *atl = rules_partial ? "at least " : "";
    if (prod.n) {
        sp_buf_puts(&b, "by ");
        put_list3(&b, &prod, unread || prod.n == SP_ARRAY_SIZE(prod.v),
                  "product", "products");
        if (rules.n)
            sp_buf_printf(&b, " (%s%zu detection rule%s)", atl, rules.n,
                          rules.n == 1 && !rules_partial ? "" : "s");
        sp_buf_putc(&b, ' ');
    } else if (rules.n && !rule_ids) {
        sp_buf_puts(&b, "by ");
        put_list3(&b, &rules, rules_partial, "detection rule",
                  "detection rules");
        sp_buf_putc(&b, ' ');
    } else if (rules.n) {
        sp_buf_printf(&b, "by %s%zu detection rule%s ", atl, rules.n,
                      rules.n == 1 && !rules_partial ? "" : "s");
    }
    sp_buf_printf(&b, "involving %zu host%s and %zu identit%s.", hosts,
                  hosts == 1 ? "" : "s", ids, ids == 1 ? "y" : "ies");
    const struct an_entity *fh = first_of(ix, first, AN_HOST);
    if (first)
        sp_buf_printf(&b, " The first alert, \"%.200s\", was raised at %s%s%s.",
                      first->title ? first->title : first->id ? first->id : "",
                      an_time(t1, first->t_first), fh ? " on " : "",
                      fh ? fh->name : "");
    if (tac.n) {
        sp_buf_puts(&b, " ATT&CK tactics reported: ");
        for (size_t i = 0; i < tac.n; i++)
            sp_buf_printf(&b, "%s%s", i ? ", " : "", tac.v[i]);
        sp_buf_putc(&b, '.');
    }
    if (ix->n_scripts)
        sp_buf_printf(&b, " socpilot decoded %zu command line%s (see scripts).",
                      ix->n_scripts, ix->n_scripts == 1 ? "" : "s");
    sp_buf_printf(&b, " The deterministic impact score is %d/100 (%s).",
                  imp->score, imp->level);
    kput(&w, "narrative", b.data, 4000);

    sp_jw_key(&w, "start");
    sp_jw_obj_open(&w);
    kput(&w, "time", first ? an_time(t1, first->t_first)
                           : an_time(t1, ix->first_seen), 64);
    const struct an_entity *fe = fh ? fh : first_of(ix, first, AN_USER);
    if (!fe && first && first->n_ents)
        fe = &ix->ents[first->ents[0]];
    kput(&w, "where", fh ? fh->name : "unknown", 300);
    sp_buf_reset(&b);
    if (first) {
        const char *by = first->detector && !id_like(first->detector)
                             ? first->detector : product_name(first->provider);
        sp_buf_printf(&b, "%.400s%s%.200s%s", first->title ? first->title : "",
                      by ? " (detected by " : "", by ? by : "", by ? ")" : "");
    }
    kput(&w, "how", b.data ? b.data : "", 1000);
    sp_jw_obj_close(&w);
    kput(&w, "first_entity", fe ? fe->name : "", 300);

    sp_jw_key(&w, "affected_assets");
    sp_jw_arr_open(&w);
    size_t k = 0;
    for (size_t i = 0; i < ix->n_ents && k < 20; i++)
        if (ix->ents[i].kind == AN_HOST) {
            put_capped(&w, ix->ents[i].name, 300);
            k++;
        }
    sp_jw_arr_close(&w);
    sp_jw_key(&w, "affected_identities");
    sp_jw_arr_open(&w);
    k = 0;
    for (size_t i = 0; i < ix->n_ents && k < 20; i++)
        if (ix->ents[i].kind == AN_USER || ix->ents[i].kind == AN_EMAIL) {
            put_capped(&w, ix->ents[i].name, 300);
            k++;
        }
    sp_jw_arr_close(&w);
    sp_jw_key(&w, "indicators");
    sp_jw_arr_open(&w);
    for (size_t i = 0; i < inds->n; i++) {
        sp_jw_obj_open(&w);
        sp_jw_kstr(&w, "type", inds->v[i].type);
        kput(&w, "value", inds->v[i].value, 2000);
        sp_jw_obj_close(&w);
    }
    sp_jw_arr_close(&w);
    sp_jw_key(&w, "attack");
    sp_jw_obj_open(&w);
    sp_jw_key(&w, "tactics");
    sp_jw_arr_open(&w);
    for (size_t i = 0; i < tac.n && i < 14; i++)
        put_capped(&w, tac.v[i], 64);
    sp_jw_arr_close(&w);
    sp_jw_key(&w, "techniques");
    sp_jw_arr_open(&w);
    for (size_t i = 0; i < tech.n && i < 50; i++)
        put_capped(&w, tech.v[i], 64);
    sp_jw_arr_close(&w);
    sp_jw_obj_close(&w);
    sp_jw_key(&w, "next_steps");
    sp_jw_arr_open(&w);
    next_steps(ix, imp, &tac, inds, &w);
    sp_jw_arr_close(&w);
    sp_jw_key(&w, "scripts");
    sp_jw_arr_open(&w);
    for (size_t i = 0; i < ix->n_scripts && i < 20; i++) {
        sp_buf_reset(&b);
        script_explanation(ix, &ix->scripts[i], &b);
        sp_jw_obj_open(&w);
        sp_jw_kstr(&w, "id", ix->scripts[i].label);
        kput(&w, "explanation", b.data, 2000);
        sp_jw_obj_close(&w);
    }
    sp_jw_arr_close(&w);
    sp_jw_obj_close(&w);                       /* summary */

    sp_jw_key(&w, "timeline");
    sp_jw_arr_open(&w);
    for (size_t i = 0; i < ix->n_alerts && i < 100; i++) {
        const struct an_alert *al = &ix->alerts[i];
        const struct an_entity *h = first_of(ix, al, AN_HOST);
        const struct an_entity *u = first_of(ix, al, AN_USER);
        sp_buf_reset(&b);
        sp_buf_printf(&b, "[%s] %.300s",
                      sp_severity_name((enum sp_severity)al->sev),
                      al->title ? al->title : al->id ? al->id : "alert");
        if (h || u)
            sp_buf_printf(&b, " (%s%s%s)", h ? h->name : "", h && u ? ", " : "",
                          u ? u->name : "");
        sp_jw_obj_open(&w);
        kput(&w, "time", an_time(t1, al->t_first), 64);
        kput(&w, "event", b.data, 500);
        sp_jw_obj_close(&w);
    }
    sp_jw_arr_close(&w);

    sp_jw_key(&w, "impact");
    sp_jw_obj_open(&w);
    sp_jw_kstr(&w, "level", imp->level);
    sp_buf_reset(&b);
    sp_buf_printf(&b, "Score %d/100 (%s) from: ", imp->score, imp->level);
    for (size_t i = 0; i < imp->n_factors; i++)
        sp_buf_printf(&b, "%s%s (+%d)", i ? "; " : "", imp->factors[i].detail,
                      imp->factors[i].points);
    sp_buf_putc(&b, '.');
    kput(&w, "explanation", b.data, 2000);
    sp_buf_reset(&names);
    names_of(ix, AN_HOST, AN_HOST, 10, &names);
    sp_buf_reset(&b);
    if (hosts)
        sp_buf_printf(&b, "%zu host%s: %s.", hosts, hosts == 1 ? "" : "s",
                      names.data);
    else
        sp_buf_puts(&b, "No host is named by the alerts.");
    kput(&w, "affected_systems", b.data, 1000);
    sp_buf_reset(&names);
    names_of(ix, AN_USER, AN_EMAIL, 10, &names);
    sp_buf_reset(&b);
    if (ids)
        sp_buf_printf(&b, "%zu identit%s: %s.", ids, ids == 1 ? "y" : "ies",
                      names.data);
    else
        sp_buf_puts(&b, "No identity is named by the alerts.");
    kput(&w, "identities", b.data, 1000);
    kput(&w, "data_at_risk",
         tset_has(&tac, "exfiltration") || tset_has(&tac, "collection")
             ? "Data collection or exfiltration was reported: data on the "
               "affected hosts and of the affected identities may be exposed."
             : "The alerts report no data access or exfiltration.", 1000);
    kput(&w, "business_impact",
         imp->score >= 75 ? "Critical: several systems or privileged "
                            "identities are involved; expect disruption "
                            "until contained."
         : imp->score >= 50 ? "High: contain quickly to keep the activity "
                              "from spreading."
         : imp->score >= 25 ? "Medium: limited scope so far; triage within "
                              "the working day."
                            : "Low: limited scope; review when possible.",
         1000);
    sp_jw_obj_close(&w);
    sp_jw_obj_close(&w);
    sp_buf_fini(&b);
    sp_buf_fini(&names);
    return sp_jw_ok(&w) ? SP_OK : SP_ERR_LIMIT;
}
