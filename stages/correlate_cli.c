/*
 * correlate_cli.c - `socpilot incident show|list|explain|close|reopen`:
 * incidents read back from (and their status set in) the Redis the
 * correlate stage writes, with the same config (-c FILE, -s key=value).
 *
 * An incident id does not name its tenant; without --tenant the key is
 * found with SCAN (bounded), which is fine for an operator's command and
 * never used on the hot path.  Only a key that is exactly an incident's
 * counts (other keys may end in "}:i:<id>": alert ids are anyone's text),
 * and an id found in two tenants needs --tenant.  close/reopen pin the status (alert statuses
 * no longer change it) and queue the new snapshot in the outbox, which a
 * running pipeline publishes within correlate.outbox.interval (the
 * tenant is added to <prefix>:tenants after the change: outbox recovery
 * may have dropped it as idle).
 *
 * Main thread only.
 */
#include "cli.h"
#include "correlate_int.h"
#include "log.h"

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCAN_MAX_STEPS 100000       /* SCAN calls per lookup at most */
#define LIST_MAX_KEYS 100000

static const char usage_text[] =
    "usage: socpilot incident <command> [-c FILE] [-s key=value]... [options]\n"
    "\n"
    "Read incidents back from Redis and set their status.\n"
    "\n"
    "commands:\n"
    "  show ID       print the incident snapshot (as published), indented\n"
    "  list          list incidents, most recently seen first\n"
    "  explain ID    why each alert joined (which entity, when), merges,\n"
    "                noisy and stop-listed entities\n"
    "  close ID      close the incident; later alerts open a new, linked one\n"
    "  reopen ID     reopen a closed incident\n"
    "\n"
    "options:\n"
    "  -c, --config FILE   YAML config (redis.*, correlate.key_prefix)\n"
    "  -s, --set KEY=VAL   override a config key (repeatable)\n"
    "  -t, --tenant T      the incident's tenant (otherwise found by SCAN);\n"
    "                      for list: only this tenant\n"
    "  -n, --limit N       list at most N incidents (default 50)\n"
    "      --status S      list only new, active or closed incidents\n"
    "  -h, --help          this text\n"
    "\n"
    "Exit status: 0 ok, 1 not found or Redis error, 2 usage error.\n";

struct inc_cli {
    struct sp_config *cfg;
    struct sp_redis *redis;
    const char *key_prefix;
    const char *tenant;
};

static bool id_ok(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > 72)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return false;
    }
    return true;
}

/* Characters corr_prefix leaves in an encoded tenant: the plain ones,
 * '%' of its escapes and '~' before the hash of a long tenant.  Never '}'
 * or ':', so a tenant cannot end the hash tag early or fake a separator. */
static bool tenant_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' ||
           c == '@' || c == '%' || c == '~';
}

/*
 * The length of the prefix "<key_prefix>:{t:<tenant>}:" when key is
 * exactly that prefix plus "i:<id>" (any incident id when id is NULL),
 * else 0.  A SCAN pattern's * also matches '}' and ':', and alert ids
 * (in asm:<alert> keys) may hold "}:i:<id>": only the first '}' after
 * "{t:" closes the tenant, so another tenant's key never passes for an
 * incident.
 */
static size_t incident_key_prefix(const char *key, size_t len,
                                  const char *key_prefix, const char *id)
{
    size_t kp = strlen(key_prefix);
    if (len < kp + 4 || memcmp(key, key_prefix, kp) != 0 ||
        memcmp(key + kp, ":{t:", 4) != 0)
        return 0;
    size_t o = kp + 4, t0 = o;
    while (o < len && tenant_char(key[o]))
        o++;
    if (o == t0 || len - o < 4 || memcmp(key + o, "}:i:", 4) != 0)
        return 0;
    size_t plen = o + 2;
    const char *tail = key + o + 4;
    size_t tlen = len - (o + 4);
    if (id ? tlen != strlen(id) || memcmp(tail, id, tlen) != 0
           : tlen > 72 || memchr(tail, '\0', tlen) || !id_ok(tail))
        return 0;
    return plen;
}

/* One SCAN reply's keys: the prefix of the first incident key of id into
 * prefix (when *found is 0), *found 1, or -2 once a second tenant holds
 * the id. */
static void scan_take(const redisReply *keys, const char *key_prefix,
                      const char *id, char *prefix, size_t n, int *found)
{
    for (size_t i = 0; i < keys->elements && *found != -2; i++) {
        const redisReply *k = keys->element[i];
        if (k->type != REDIS_REPLY_STRING)
            continue;
        size_t plen = incident_key_prefix(k->str, k->len, key_prefix, id);
        if (plen == 0 || plen >= n)
            continue;
        if (*found == 0) {
            memcpy(prefix, k->str, plen);
            prefix[plen] = '\0';
            *found = 1;
        } else if (strlen(prefix) != plen || memcmp(prefix, k->str, plen)) {
            *found = -2;            /* SCAN may repeat a key, not a tenant */
        }
    }
}

int corr_find_incident(struct sp_redis *r, const char *key_prefix,
                       const char *tenant, const char *id, char *prefix,
                       size_t n)
{
    if (tenant) {
        corr_prefix(key_prefix, tenant, prefix, n);
        char key[CORR_PREFIX_MAX + 100];
        snprintf(key, sizeof(key), "%si:%s", prefix, id);
        const char *argv[] = {"EXISTS", key};
        size_t lens[] = {6, strlen(key)};
        redisReply *rep;
        enum sp_err e = sp_redis_call(r, &rep, 2, argv, lens);
        int found = e ? -1 : rep->type == REDIS_REPLY_INTEGER && rep->integer == 1;
        freeReplyObject(rep);
        return found;
    }
    /* The whole keyspace is walked: the id may be in more than one tenant
     * (ids are not secret), and then the operator has to say which. */
    char pattern[256], cursor[32] = "0";
    snprintf(pattern, sizeof(pattern), "%s:{t:*}:i:%s", key_prefix, id);
    int found = 0;
    for (int step = 0; step < SCAN_MAX_STEPS && found != -2; step++) {
        const char *argv[] = {"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"};
        size_t lens[] = {4, strlen(cursor), 5, strlen(pattern), 5, 4};
        redisReply *rep;
        if (sp_redis_call(r, &rep, 6, argv, lens) ||
            rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
            rep->element[1]->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(rep);
            return -1;
        }
        snprintf(cursor, sizeof(cursor), "%s", rep->element[0]->str);
        scan_take(rep->element[1], key_prefix, id, prefix, n, &found);
        freeReplyObject(rep);
        if (strcmp(cursor, "0") == 0)
            break;
    }
    if (found != 1)
        prefix[0] = '\0';
    return found;
}

const char *corr_find_error(int found)
{
    switch (found) {
    case 0:
        return "no such incident";
    case -2:
        return "the id is in more than one tenant: say which with --tenant";
    default:
        return "redis error";
    }
}

static int find_incident(struct inc_cli *c, const char *id, char *prefix,
                         size_t n)
{
    return corr_find_incident(c->redis, c->key_prefix, c->tenant, id, prefix,
                              n);
}

static redisReply *snapshot(struct inc_cli *c, const char *prefix,
                            const char *id)
{
    redisReply *rep = NULL;
    enum sp_err e = corr_snapshot_append(c->redis, prefix, id, -1, NULL, 0);
    if (e == SP_OK)
        e = corr_snapshot_read(c->redis, false, &rep);
    if (e) {
        fprintf(stderr, "socpilot incident: redis: %s\n", sp_strerror(e));
        freeReplyObject(rep);
        return NULL;
    }
    return rep;
}

static int cmd_show(struct inc_cli *c, const char *id, bool explain)
{
    char prefix[CORR_PREFIX_MAX];
    int f = find_incident(c, id, prefix, sizeof(prefix));
    if (f != 1) {
        fprintf(stderr, "socpilot incident: %s: %s\n", id, corr_find_error(f));
        return 1;
    }
    redisReply *rep = snapshot(c, prefix, id);
    if (!rep)
        return 1;
    struct sp_buf out;
    sp_buf_init(&out, (size_t)64 << 20);
    enum sp_err e;
    if (explain) {
        char nkey[CORR_PREFIX_MAX + 8];
        snprintf(nkey, sizeof(nkey), "%snoisy", prefix);
        const char *argv[] = {"HGETALL", nkey};
        size_t lens[] = {7, strlen(nkey)};
        redisReply *noisy = NULL;
        if (sp_redis_call(c->redis, &noisy, 2, argv, lens)) {
            freeReplyObject(noisy);
            noisy = NULL;
        }
        e = corr_incident_explain(rep, id, noisy, &out);
        freeReplyObject(noisy);
        if (e == SP_OK)
            fwrite(out.data, 1, out.len, stdout);
    } else {
        int64_t version;
        e = corr_incident_write(rep, id, &out, (size_t)64 << 20, &version, NULL);
        if (e == SP_OK) {
            json_error_t jerr;
            json_t *doc = json_loadb(out.data, out.len, 0, &jerr);
            if (doc) {
                json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
                fputc('\n', stdout);
                json_decref(doc);
            } else {
                fwrite(out.data, 1, out.len, stdout);
                fputc('\n', stdout);
            }
        }
    }
    if (e)
        fprintf(stderr, "socpilot incident: %s\n",
                e == SP_ERR_NOTFOUND ? "no such incident" : sp_strerror(e));
    sp_buf_fini(&out);
    freeReplyObject(rep);
    return e ? 1 : 0;
}

/* SADD of tenant to <key_prefix>:tenants, the set outbox recovery walks. */
static enum sp_err register_tenant(struct inc_cli *c, const char *tenant)
{
    char setkey[80];
    corr_set_key(c->key_prefix, CORR_SET_OUT, setkey, sizeof(setkey));
    const char *argv[] = {"SADD", setkey, tenant};
    size_t lens[] = {4, strlen(setkey), strlen(tenant)};
    redisReply *rep = NULL;
    enum sp_err e = sp_redis_call(c->redis, &rep, 3, argv, lens);
    freeReplyObject(rep);
    return e;
}

static int cmd_status(struct inc_cli *c, const char *id, const char *status)
{
    static struct sp_redis_script script = {"status", corr_lua_status, ""};
    char prefix[CORR_PREFIX_MAX];
    int f = find_incident(c, id, prefix, sizeof(prefix));
    if (f != 1) {
        fprintf(stderr, "socpilot incident: %s: %s\n", id, corr_find_error(f));
        return 1;
    }
    char key[CORR_PREFIX_MAX + 100], now[24], ret[24];
    snprintf(key, sizeof(key), "%si:%s", prefix, id);
    snprintf(now, sizeof(now), "%lld", (long long)(sp_wall_us() / 1000));
    snprintf(ret, sizeof(ret), "%lld",
             (long long)sp_config_int(c->cfg, "correlate.retention"));
    const char *argv[] = {NULL, NULL, NULL, key, prefix, id, status, now, ret};
    size_t lens[] = {0, 0, 0, strlen(key), strlen(prefix), strlen(id),
                     strlen(status), strlen(now), strlen(ret)};
    redisReply *rep = NULL;
    if (!script.sha[0] && sp_redis_add_script(c->redis, &script))
        return 1;
    enum sp_err e = sp_redis_eval(c->redis, &script, &rep, 1, 9, argv, lens);
    if (e) {
        fprintf(stderr, "socpilot incident: %s\n",
                rep && rep->type == REDIS_REPLY_ERROR ? rep->str : sp_strerror(e));
        freeReplyObject(rep);
        return 1;
    }
    int rc = 0;
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 3) {
        if (rep->element[0]->integer)
            printf("%s %s (version %lld); the snapshot is published by the "
                   "running pipeline\n", id, status,
                   (long long)rep->element[1]->integer);
        else
            printf("%s is already %s\n", id, status);
        /* The change waits in the outbox, which recovery reaches through
         * the set of tenants; the tenant may have left it as idle (also
         * when the change is an earlier run's, still unpublished). */
        const redisReply *ten = rep->element[2];
        if (ten->type == REDIS_REPLY_STRING && ten->len > 0 &&
            register_tenant(c, ten->str) != SP_OK) {
            fprintf(stderr, "socpilot incident: the tenant of %s could not "
                    "be registered for publishing; run the command again\n",
                    id);
            rc = 1;
        }
    }
    freeReplyObject(rep);
    return rc;
}

struct list_row {
    char *key;
    int64_t ls, v, n, sev;
    char *st, *ti, *ten, *mi;
};

static int cmp_row(const void *a, const void *b)
{
    const struct list_row *x = a, *y = b;
    if (x->ls != y->ls)
        return x->ls > y->ls ? -1 : 1;
    return strcmp(x->key, y->key);
}

static char *rstr(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_STRING ? strdup(r->str) : NULL;
}

static void print_safe(const char *s, size_t max)
{
    for (size_t i = 0; s && s[i] && i < max; i++) {
        unsigned char ch = (unsigned char)s[i];
        putchar(ch < 0x20 || ch == 0x7f ? '?' : ch);
    }
}

static int cmd_list(struct inc_cli *c, long limit, const char *status)
{
    char pattern[CORR_PREFIX_MAX + 8], cursor[32] = "0";
    if (c->tenant) {
        char prefix[CORR_PREFIX_MAX];
        corr_prefix(c->key_prefix, c->tenant, prefix, sizeof(prefix));
        snprintf(pattern, sizeof(pattern), "%si:*", prefix);
    } else {
        snprintf(pattern, sizeof(pattern), "%s:{t:*}:i:*", c->key_prefix);
    }
    struct list_row *rows = NULL;
    size_t n = 0, cap = 0;
    int rc = 1;
    for (int step = 0; step < SCAN_MAX_STEPS && n < LIST_MAX_KEYS; step++) {
        const char *argv[] = {"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"};
        size_t lens[] = {4, strlen(cursor), 5, strlen(pattern), 5, 4};
        redisReply *rep;
        if (sp_redis_call(c->redis, &rep, 6, argv, lens) ||
            rep->type != REDIS_REPLY_ARRAY || rep->elements != 2) {
            freeReplyObject(rep);
            fprintf(stderr, "socpilot incident: redis error\n");
            goto out;
        }
        snprintf(cursor, sizeof(cursor), "%s", rep->element[0]->str);
        const redisReply *keys = rep->element[1];
        for (size_t i = 0; i < keys->elements && n < LIST_MAX_KEYS; i++) {
            const redisReply *kr = keys->element[i];
            const char *k = kr->str;
            if (kr->type != REDIS_REPLY_STRING ||
                !incident_key_prefix(k, kr->len, c->key_prefix, NULL))
                continue;           /* :al / :why sub-keys, other keys */
            if (n == cap) {
                size_t nc = cap ? cap * 2 : 256;
                struct list_row *nr = realloc(rows, nc * sizeof(*nr));
                if (!nr) {
                    freeReplyObject(rep);
                    goto out;
                }
                rows = nr;
                cap = nc;
            }
            memset(&rows[n], 0, sizeof(rows[n]));
            rows[n].key = strdup(k);
            if (rows[n].key)
                n++;
        }
        freeReplyObject(rep);
        if (strcmp(cursor, "0") == 0)
            break;
    }
    for (size_t i = 0; i < n; i++) {
        const char *argv[] = {"HMGET", rows[i].key, "ls", "v", "n", "sev",
                              "st", "ti", "ten", "mi"};
        size_t lens[10];
        for (int j = 0; j < 10; j++)
            lens[j] = strlen(argv[j]);
        if (sp_redis_append(c->redis, 10, argv, lens))
            goto out;
    }
    for (size_t i = 0; i < n; i++) {
        redisReply *rep;
        if (sp_redis_read(c->redis, &rep))
            goto out;
        if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 8) {
            redisReply **e = rep->element;
            rows[i].ls = e[0]->str ? strtoll(e[0]->str, NULL, 10) : 0;
            rows[i].v = e[1]->str ? strtoll(e[1]->str, NULL, 10) : 0;
            rows[i].n = e[2]->str ? strtoll(e[2]->str, NULL, 10) : 0;
            rows[i].sev = e[3]->str ? strtoll(e[3]->str, NULL, 10) : 0;
            rows[i].st = rstr(e[4]);
            rows[i].ti = rstr(e[5]);
            rows[i].ten = rstr(e[6]);
            rows[i].mi = rstr(e[7]);
        }
        freeReplyObject(rep);
    }
    if (n)          /* rows is NULL when Redis holds no incident */
        qsort(rows, n, sizeof(*rows), cmp_row);
    printf("%-22s %-7s %-13s %6s %4s %-20s %-20s %s\n", "ID", "STATUS",
           "SEVERITY", "ALERTS", "VER", "LAST SEEN", "TENANT", "TITLE");
    long shown = 0;
    for (size_t i = 0; i < n && shown < limit; i++) {
        struct list_row *r = &rows[i];
        if (!r->st || r->mi)
            continue;               /* gone, or merged into another */
        if (status && strcmp(r->st, status) != 0)
            continue;
        char ls[32] = "-";
        if (r->ls > 0)
            sp_time_format(r->ls * 1000, ls);
        const char *id = strstr(r->key, "}:i:") + 4;
        printf("%-22s %-7s %-13s %6lld %4lld %-20s ", id, r->st,
               sp_severity_name((enum sp_severity)(r->sev >= 0 && r->sev <= 4
                                                       ? r->sev : 0)),
               (long long)r->n, (long long)r->v, ls);
        print_safe(r->ten ? r->ten : "-", 20);
        printf(" ");
        print_safe(r->ti ? r->ti : "", 120);
        printf("\n");
        shown++;
    }
    rc = 0;
out:
    for (size_t i = 0; i < n; i++) {
        free(rows[i].key);
        free(rows[i].st);
        free(rows[i].ti);
        free(rows[i].ten);
        free(rows[i].mi);
    }
    free(rows);
    return rc;
}

/* The command and the stage ship together: naming the stage type here
 * also makes the linker take correlate.o from the archive (the stage
 * registry refers to it weakly). */
extern const struct sp_stage_type sp_stage_correlate;

int sp_cmd_incident(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage_text, stdout);
            printf("\nThe %s stage: %s.\n", sp_stage_correlate.name,
                   sp_stage_correlate.desc);
            return 0;
        }
    struct sp_cli_common co = {0};
    argc = sp_cli_parse_common(argc, argv, &co);
    if (argc < 0) {
        free(co.sets);
        return 2;
    }
    struct inc_cli c = {0};
    const char *cmd = NULL, *id = NULL, *status = NULL;
    long limit = 50;
    int rc = 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool t = strcmp(a, "-t") == 0 || strcmp(a, "--tenant") == 0;
        bool n = strcmp(a, "-n") == 0 || strcmp(a, "--limit") == 0;
        bool st = strcmp(a, "--status") == 0;
        if ((t || n || st) && i + 1 >= argc) {
            fprintf(stderr, "socpilot incident: %s needs a value\n", a);
            goto usage;
        }
        if (t) {
            c.tenant = argv[++i];
        } else if (n) {
            char *end;
            limit = strtol(argv[++i], &end, 10);
            if (end == argv[i] || *end || limit <= 0) {
                fprintf(stderr, "socpilot incident: %s needs a positive "
                        "number (got '%s')\n", a, argv[i]);
                goto usage;
            }
        } else if (st) {
            status = argv[++i];
            if (strcmp(status, "new") != 0 && strcmp(status, "active") != 0 &&
                strcmp(status, "closed") != 0) {
                fprintf(stderr, "socpilot incident: --status is new, active "
                        "or closed (got '%s')\n", status);
                goto usage;
            }
        } else if (a[0] == '-') {
            fprintf(stderr, "socpilot incident: unknown option '%s'\n", a);
            goto usage;
        } else if (!cmd) {
            cmd = a;
        } else if (!id) {
            id = a;
        } else {
            fprintf(stderr, "socpilot incident: unexpected argument '%s'\n", a);
            goto usage;
        }
    }
    if (!cmd) {
        fprintf(stderr, "socpilot incident: which command? show, list, "
                "explain, close or reopen\n");
        goto usage;
    }
    if (strcmp(cmd, "show") != 0 && strcmp(cmd, "list") != 0 &&
        strcmp(cmd, "explain") != 0 && strcmp(cmd, "close") != 0 &&
        strcmp(cmd, "reopen") != 0) {
        fprintf(stderr, "socpilot incident: unknown command '%s'\n", cmd);
        goto usage;
    }
    bool needs_id = strcmp(cmd, "list") != 0;
    if (needs_id != (id != NULL)) {
        fprintf(stderr, "socpilot incident: %s %s\n", cmd,
                needs_id ? "needs an incident ID" : "takes no ID");
        goto usage;
    }
    if (id && !id_ok(id)) {
        fprintf(stderr, "socpilot incident: '%s' is not an incident id\n", id);
        goto usage;
    }
    signal(SIGPIPE, SIG_IGN);
    c.cfg = sp_cli_config(&co, NULL, 0);
    free(co.sets);
    co.sets = NULL;
    if (!c.cfg)
        return 1;
    /* What a command prints is its answer: progress lines (connected to
     * Redis) only when -s log.level asks for them, not from the level a
     * shared config file sets for `socpilot run`. */
    if (strcmp(sp_config_origin(c.cfg, "log.level", NULL), "-s") != 0) {
        enum sp_log_format fmt = SP_LOG_TEXT;
        sp_log_format_parse(sp_config_str(c.cfg, "log.format"), &fmt);
        enum sp_log_level lvl = SP_LOG_INFO;
        sp_log_level_parse(sp_config_str(c.cfg, "log.level"), &lvl);
        sp_log_setup(lvl < SP_LOG_WARN ? lvl : SP_LOG_WARN, fmt, stderr);
    }
    c.key_prefix = sp_config_str(c.cfg, "correlate.key_prefix");
    struct sp_redis_opts o;
    sp_redis_opts_from_config(c.cfg, &o);
    o.log_comp = "redis:cli";
    c.redis = sp_redis_new(&o);
    struct sp_error err = {0};
    rc = 1;
    if (!c.redis) {
        fprintf(stderr, "socpilot incident: out of memory\n");
    } else if (sp_redis_connect(c.redis, &err)) {
        fprintf(stderr, "socpilot incident: %s\n", err.msg);
    } else if (strcmp(cmd, "list") == 0) {
        rc = cmd_list(&c, limit, status);
    } else if (strcmp(cmd, "show") == 0 || strcmp(cmd, "explain") == 0) {
        rc = cmd_show(&c, id, strcmp(cmd, "explain") == 0);
    } else {
        rc = cmd_status(&c, id, strcmp(cmd, "close") == 0 ? "closed" : "active");
    }
    sp_redis_free(c.redis);
    sp_config_free(c.cfg);
    return rc;
usage:
    free(co.sets);
    fputs(usage_text, stderr);
    return 2;
}
