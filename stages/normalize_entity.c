/*
 * normalize_entity.c - the entity rules every normalizer shares:
 * identifiers (no copies, bounded per entity), roles, merging entities
 * of the same type and key, and the canonical keys built from parts
 * (files, processes, registry paths, keys derived from identifiers for
 * generic input and unmapped types).  Declared in normalize_int.h; the
 * key primitives for hosts, accounts, IPs, hashes and URLs are in
 * pipeline/alert.c.
 *
 * Owns nothing: everything is allocated from the record context's arena.
 * Same threading as sp_normalize(): one message, one thread.
 */
#include "normalize_int.h"

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* ---- entities ------------------------------------------------------------ */

void sp_nz_ent(struct sp_entity *e, const char *type)
{
    memset(e, 0, sizeof(*e));
    e->type = type;
}

static void add_id(struct sp_nz *z, struct sp_entity *e, const char *name,
                   const char *value)
{
    for (uint16_t i = 0; i < e->n_ids; i++) {
        const struct sp_ident *id = &e->ids[i];
        /* Names are mostly the same static strings: pointers first. */
        if (id->name != name &&
            (id->name[0] != name[0] || strcmp(id->name, name) != 0))
            continue;
        if (id->value == value || (id->value[0] == value[0] &&
                                   strcmp(id->value, value) == 0))
            return;
    }
    uint32_t max = z->o->lim.max_ids_per_entity;
    if (!max || max > UINT16_MAX)
        max = UINT16_MAX;
    if (e->n_ids >= max)
        return;
    if (e->n_ids == e->cap_ids) {
        uint32_t cap = e->cap_ids ? (uint32_t)e->cap_ids * 2 : 8;
        if (cap > max)
            cap = max;
        struct sp_ident *ids = sp_arena_alloc(z->a, cap * sizeof(*ids));
        if (!ids) {
            z->nomem = true;
            return;
        }
        if (e->n_ids)
            memcpy(ids, e->ids, e->n_ids * sizeof(*ids));
        e->ids = ids;
        e->cap_ids = (uint16_t)cap;
    }
    e->ids[e->n_ids].name = name;
    e->ids[e->n_ids].value = value;
    e->n_ids++;
}

void sp_nz_id(struct sp_nz *z, struct sp_entity *e, const char *name,
              const char *value)
{
    if (!value || !*value)
        return;
    add_id(z, e, name, value);
}

void sp_nz_idj(struct sp_nz *z, struct sp_entity *e, const char *name,
               const struct sp_json *v)
{
    sp_nz_id(z, e, name, sp_nz_text(z, v));
}

void sp_nz_role(struct sp_nz *z, struct sp_entity *e, const char *role)
{
    const char *r = sp_nz_case(z, role, '-');
    if (!r || strcmp(r, "unknown") == 0 ||
        strcmp(r, "unknown-future-value") == 0 || strcmp(r, "none") == 0)
        return;
    sp_entity_add_role(e, r);
}

int sp_nz_commit(struct sp_nz *z, struct sp_entity *e)
{
    if (!e->n_ids || z->nomem)
        return -1;
    struct sp_alert *al = z->alert;
    if (e->key) {
        for (size_t i = 0; i < al->n_entities; i++) {
            struct sp_entity *d = &al->entities[i];
            if (!d->key || strcmp(d->key, e->key) != 0 ||
                strcmp(d->type, e->type) != 0)
                continue;
            for (uint16_t k = 0; k < e->n_ids; k++)
                add_id(z, d, e->ids[k].name, e->ids[k].value);
            for (uint8_t k = 0; k < e->n_roles; k++)
                sp_entity_add_role(d, e->roles[k]);
            return (int)i;
        }
    }
    uint32_t max = z->o->lim.max_entities;
    if (max && al->n_entities >= max) {
        sp_nz_fail(z, SP_REJECT_TOO_MANY_ENTITIES,
                   "more than %u distinct entities", max);
        return -1;
    }
    struct sp_entity *d = sp_alert_add_entity(z->a, al, e->type, 0);
    if (!d) {
        z->nomem = true;
        return -1;
    }
    *d = *e;
    return (int)(al->n_entities - 1);
}

const char *sp_nz_key(struct sp_nz *z, int idx)
{
    if (idx < 0 || (size_t)idx >= z->alert->n_entities)
        return NULL;
    return z->alert->entities[idx].key;
}

const char *sp_nz_path(struct sp_nz *z, const char *dir, const char *name)
{
    if (!name || !*name)
        return NULL;
    if (!dir || !*dir)
        return name;
    size_t dn = strlen(dir), nn = strlen(name);
    char sep = (strchr(dir, '/') && !strchr(dir, '\\')) ? '/' : '\\';
    /* Some sources put the full path in the directory already. */
    if (dn >= nn && sp_strncaseeq(dir + dn - nn, name, nn) &&
        (dn == nn || dir[dn - nn - 1] == sep))
        return dir;
    bool has_sep = dir[dn - 1] == sep;
    char *p = sp_arena_alloc(z->a, dn + nn + 2);
    if (!p) {
        z->nomem = true;
        return NULL;
    }
    memcpy(p, dir, dn);
    size_t k = dn;
    if (!has_sep)
        p[k++] = sep;
    memcpy(p + k, name, nn + 1);
    return p;
}

const char *sp_nz_pid(struct sp_nz *z, const char *pid)
{
    if (!pid || !*pid)
        return NULL;
    uint64_t v = 0;
    const char *p = pid;
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
        p += 2;
        if (!*p)
            return NULL;
        for (; *p; p++) {
            char c = sp_tolower(*p);
            int d = is_digit(c)               ? c - '0'
                    : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                                             : -1;
            if (d < 0 || v > (UINT64_MAX >> 4))
                return NULL;
            v = v * 16 + (uint64_t)d;
        }
    } else {
        for (; *p; p++) {
            if (!is_digit(*p) || v > UINT64_MAX / 10 - 9)
                return NULL;
            v = v * 10 + (uint64_t)(*p - '0');
        }
        return pid[0] == '0' && pid[1] ? sp_arena_printf(z->a, "%llu",
                                                          (unsigned long long)v)
                                        : pid;
    }
    const char *s = sp_arena_printf(z->a, "%llu", (unsigned long long)v);
    if (!s)
        z->nomem = true;
    return s;
}

const char *sp_nz_time_text(struct sp_nz *z, int64_t us)
{
    if (us == SP_TIME_NONE)
        return NULL;
    char tmp[32];
    size_t n = sp_time_format(us, tmp);
    const char *s = sp_arena_strndup(z->a, tmp, n);
    if (!s)
        z->nomem = true;
    return s;
}

const char *sp_nz_key_lower(struct sp_nz *z, const char *prefix,
                            const char *s)
{
    if (!s)
        return NULL;
    while (*s == ' ')
        s++;
    size_t n = strlen(s);
    while (n && s[n - 1] == ' ')
        n--;
    if (!n)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20)
            return NULL;
    size_t pl = strlen(prefix);
    char *k = sp_arena_alloc(z->a, pl + n + 1);
    if (!k) {
        z->nomem = true;
        return NULL;
    }
    memcpy(k, prefix, pl);
    for (size_t i = 0; i < n; i++)
        k[pl + i] = sp_tolower(s[i]);
    k[pl + n] = '\0';
    return k;
}

const char *sp_nz_key_domain(struct sp_nz *z, const char *name)
{
    if (!name)
        return NULL;
    size_t n = strlen(name);
    while (n && name[n - 1] == ' ')
        n--;
    if (!n || name[n - 1] != '.')
        return sp_nz_key_lower(z, "domain:", name);
    while (n && name[n - 1] == '.')     /* "evil.com." is evil.com */
        n--;
    char *cut = sp_arena_strndup(z->a, name, n);
    if (!cut) {
        z->nomem = true;
        return NULL;
    }
    return sp_nz_key_lower(z, "domain:", cut);
}

const char *sp_nz_lower(struct sp_nz *z, const char *s)
{
    if (!s)
        return NULL;
    const char *p = s;
    while (*p && !(*p >= 'A' && *p <= 'Z'))
        p++;
    if (!*p)
        return s;
    char *c = sp_arena_strdup(z->a, s);
    if (!c) {
        z->nomem = true;
        return NULL;
    }
    return sp_lower(c);
}

const char *sp_nz_concat(struct sp_nz *z, const char *prefix, const char *s)
{
    if (!s)
        return NULL;
    size_t pl = strlen(prefix), sl = strlen(s);
    char *k = sp_arena_alloc(z->a, pl + sl + 1);
    if (!k) {
        z->nomem = true;
        return NULL;
    }
    memcpy(k, prefix, pl);
    memcpy(k + pl, s, sl + 1);
    return k;
}

const char *sp_nz_key_file(struct sp_nz *z, const char *sha256,
                           const char *sha1, const char *md5,
                           const char *path)
{
    const char *h = NULL;
    if (sha256)
        h = sp_canon_hash(z->a, sha256);
    if (!h && sha1)
        h = sp_canon_hash(z->a, sha1);
    if (!h && md5)
        h = sp_canon_hash(z->a, md5);
    if (h)
        return sp_nz_concat(z, "file:", h);
    return sp_nz_key_lower(z, "file:path:", path);
}

const char *sp_nz_key_process(struct sp_nz *z, const char *host_key,
                              const char *device_id, const char *pid,
                              int64_t created)
{
    /* A device id is named like a key: lower-case, one line. */
    const char *where =
        host_key ? host_key : sp_nz_key_lower(z, "", device_id);
    if (!where || !pid || created == SP_TIME_NONE)
        return NULL;
    char t[32];
    size_t tl = sp_time_format(created, t);
    size_t wl = strlen(where), pl = strlen(pid);
    char *k = sp_arena_alloc(z->a, 8 + wl + 1 + pl + 1 + tl + 1);
    if (!k) {
        z->nomem = true;
        return NULL;
    }
    char *o = k;
    memcpy(o, "process:", 8);
    o += 8;
    memcpy(o, where, wl);
    o += wl;
    *o++ = ':';
    memcpy(o, pid, pl);
    o += pl;
    *o++ = ':';
    memcpy(o, t, tl + 1);
    return k;
}

static const struct {
    const char *abbr, *full;
} hives[] = {
    {"HKLM", "HKEY_LOCAL_MACHINE"}, {"HKCU", "HKEY_CURRENT_USER"},
    {"HKU", "HKEY_USERS"},          {"HKCR", "HKEY_CLASSES_ROOT"},
    {"HKCC", "HKEY_CURRENT_CONFIG"},
};

/* Expands a leading hive abbreviation; returns the full hive name and
 * the length consumed, or NULL. */
static const char *hive_prefix(const char *s, size_t *used)
{
    for (size_t i = 0; i < SP_ARRAY_SIZE(hives); i++) {
        size_t la = strlen(hives[i].abbr), lf = strlen(hives[i].full);
        if (sp_strncaseeq(s, hives[i].full, lf) &&
            (s[lf] == '\\' || s[lf] == '\0')) {
            *used = lf;
            return hives[i].full;
        }
        if (sp_strncaseeq(s, hives[i].abbr, la) &&
            (s[la] == '\\' || s[la] == '\0')) {
            *used = la;
            return hives[i].full;
        }
    }
    return NULL;
}

const char *sp_nz_key_registry(struct sp_nz *z, const char *hive,
                               const char *key, const char *value_name,
                               bool is_value, const char **path)
{
    if (path)
        *path = NULL;
    if (!key && !hive)
        return NULL;
    const char *k = key ? key : "";
    while (*k == '\\')
        k++;
    size_t used = 0;
    const char *full_hive = hive_prefix(k, &used);
    const char *rest = k + used;
    if (!full_hive && hive) {
        size_t u2;
        full_hive = hive_prefix(hive, &u2);
        if (!full_hive)
            full_hive = hive;
        rest = k;
    }
    while (*rest == '\\')
        rest++;
    const char *p = rest;
    if (full_hive)
        p = *rest ? sp_arena_printf(z->a, "%s\\%s", full_hive, rest)
                  : full_hive;
    if (!p) {
        z->nomem = true;
        return NULL;
    }
    if (path)
        *path = *p ? p : NULL;
    if (!*p)
        return NULL;
    if (is_value) {
        if (!value_name || !*value_name)
            return NULL;
        const char *pv = sp_arena_printf(z->a, "%s\\%s", p, value_name);
        if (!pv) {
            z->nomem = true;
            return NULL;
        }
        return sp_nz_key_lower(z, "registry:", pv);
    }
    return sp_nz_key_lower(z, "registry:", p);
}

int sp_nz_file(struct sp_nz *z, const char *name, const char *dir,
               const char *sha256, const char *sha1, const char *md5,
               const char *size, const char *host_key)
{
    struct sp_entity e;
    sp_nz_ent(&e, "file");
    const char *path = sp_nz_path(z, dir, name);
    sp_nz_id(z, &e, "name", name);
    sp_nz_id(z, &e, "directory", dir);
    sp_nz_id(z, &e, "path", path);
    sp_nz_id(z, &e, "sha256", sp_nz_lower(z, sha256));
    sp_nz_id(z, &e, "sha1", sp_nz_lower(z, sha1));
    sp_nz_id(z, &e, "md5", sp_nz_lower(z, md5));
    sp_nz_id(z, &e, "size", size);
    sp_nz_id(z, &e, "host", host_key);
    e.key = sp_nz_key_file(z, sha256, sha1, md5, path);
    return sp_nz_commit(z, &e);
}

int sp_nz_ip(struct sp_nz *z, const char *addr, const char *role)
{
    if (!addr)
        return -1;
    struct sp_entity e;
    sp_nz_ent(&e, "ip");
    const char *c = sp_canon_ip(z->a, addr);
    sp_nz_id(z, &e, "address", c ? c : addr);
    e.key = sp_nz_concat(z, "ip:", c);
    if (role)
        sp_entity_add_role(&e, role);
    return sp_nz_commit(z, &e);
}

/* Already a lower-case kebab-case name. */
static bool kebab_name(const char *s)
{
    if (!s || !((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9')))
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              (*s == '-' && s[1] && s[1] != '-')))
            return false;
    return true;
}

static const struct {
    const char *alias, *type;
} type_alias[] = {
    {"machine", "host"},         {"device", "host"},
    {"user", "account"},         {"ip-address", "ip"},
    {"ipaddress", "ip"},         {"filehash", "file"},
    {"cloud-application", "cloud-app"}, {"registry-key", "registry"},
    {"mail-message", "message"}, {"mailmessage", "message"},
    {"email", "message"},        {"dns", "domain"},
};

const char *sp_nz_entity_type(struct sp_nz *z, const char *t)
{
    /* Always a copy: callers may pass a scratch buffer. */
    const char *k = NULL;
    if (kebab_name(t)) {
        k = sp_arena_strdup(z->a, t);
        if (!k)
            z->nomem = true;
    } else {
        k = sp_nz_case(z, t, '-');
    }
    if (!k)
        return NULL;
    for (size_t i = 0; i < SP_ARRAY_SIZE(type_alias); i++)
        if (strcmp(k, type_alias[i].alias) == 0)
            return type_alias[i].type;
    return k;
}

static const char *id_of(const struct sp_entity *e, const char *name)
{
    return sp_entity_id(e, name);
}

/* The key the Microsoft normalizers would give these identifiers. */
const char *sp_nz_derive_key(struct sp_nz *z, const struct sp_entity *e)
{
    const char *t = e->type;
    if (strcmp(t, "host") == 0) {
        const char *h = id_of(e, "hostname");
        return sp_key_host(z->a, h ? h : id_of(e, "netbios"),
                           id_of(e, "dns_domain"), id_of(e, "fqdn"));
    }
    if (strcmp(t, "account") == 0) {
        const char *oid = id_of(e, "aad_user_id");
        return sp_key_account(z->a, id_of(e, "upn"), id_of(e, "nt_domain"),
                              id_of(e, "name"), id_of(e, "sid"),
                              oid ? oid : id_of(e, "object_id"));
    }
    if (strcmp(t, "ip") == 0)
        return sp_nz_concat(z, "ip:", sp_canon_ip(z->a, id_of(e, "address")));
    if (strcmp(t, "url") == 0)
        return sp_nz_concat(z, "url:", sp_canon_url(z->a, id_of(e, "url")));
    if (strcmp(t, "domain") == 0)
        return sp_nz_key_domain(z, id_of(e, "name"));
    if (strcmp(t, "file") == 0)
        return sp_nz_key_file(z, id_of(e, "sha256"), id_of(e, "sha1"),
                              id_of(e, "md5"), id_of(e, "path"));
    if (strcmp(t, "mailbox") == 0) {
        const char *a = id_of(e, "address");
        return sp_nz_key_lower(z, "mailbox:", a ? a : id_of(e, "upn"));
    }
    if (strcmp(t, "message") == 0) {
        const char *n = id_of(e, "network_message_id");
        return sp_nz_key_lower(z, "message:",
                               n ? n : id_of(e, "internet_message_id"));
    }
    if (strcmp(t, "cloud-app") == 0) {
        const char *a = id_of(e, "app_id");
        return sp_nz_key_lower(z, "cloud-app:", a ? a : id_of(e, "name"));
    }
    if (strcmp(t, "process") == 0) {
        int64_t created = SP_TIME_NONE;
        const char *ct = id_of(e, "creation_time");
        if (ct && !sp_time_parse(ct, &created))
            created = SP_TIME_NONE;
        return sp_nz_key_process(z, id_of(e, "host"), id_of(e, "device_id"),
                                 sp_nz_pid(z, id_of(e, "pid")), created);
    }
    if (strcmp(t, "registry") == 0 || strcmp(t, "registry-value") == 0)
        return sp_nz_key_registry(z, id_of(e, "hive"), id_of(e, "key"),
                                  id_of(e, "value_name"), t[8] == '-', NULL);
    return NULL;
}

void sp_nz_generic_ids(struct sp_nz *z, struct sp_entity *e,
                       const struct sp_json *obj,
                       const char *const *skip, size_t n_skip)
{
    sp_json_foreach(obj, m) {
        if (!m->key || m->key[0] == '$' || m->key[0] == '@')
            continue;
        bool skipped = false;
        for (size_t i = 0; i < n_skip && !skipped; i++)
            skipped = strcmp(m->key, skip[i]) == 0;
        if (skipped)
            continue;
        const char *v = sp_nz_text(z, m);
        if (!v)
            continue;
        const char *name = sp_nz_case(z, m->key, '_');
        if (name && *name >= 'a' && *name <= 'z')
            sp_nz_id(z, e, name, v);
    }
}
