/*
 * normalize_sentinel.c - Microsoft Sentinel SecurityAlert rows (the Log
 * Analytics schema, current and legacy column sets) into the normalized
 * alert.
 *
 * Entities, ExtendedProperties and Techniques arrive as JSON *strings*;
 * Entities is parsed once more (same limits as the message).  Sentinel
 * entities reference each other: an object with "$id" may be pointed at
 * from anywhere by {"$ref": "<id>"} (a process's Host, ImageFile,
 * Account, ParentProcess; an account's Host; a file's FileHashes...).
 * Every "$id" in the document is indexed first (sorted, so a lookup is a
 * binary search; at most SENT_REFS_PER_ENTITY x max_entities of them, more
 * is too_many_entities); each entity is then built once (memoised by its
 * $id, so a reference never duplicates it) with its references resolved
 * first; a reference cycle or a chain deeper than SENT_MAX_DEPTH yields no
 * entity instead of looping.
 *
 * Column names are matched without regard to case (exports differ).
 * Called from sp_normalize() only.
 */
#include <stdlib.h>

#include "normalize_int.h"

#define SENT_MAX_DEPTH 16
#define SENT_MAX_HASHES 8
/* Objects with "$id" allowed per max_entities (hashes, locations and
 * other helper objects carry ids too). */
#define SENT_REFS_PER_ENTITY 4

enum { REF_NEW, REF_BUSY, REF_DONE };

struct ref {
    const char *id;
    const struct sp_json *node;
    size_t ord;                     /* document order: the first $id wins */
    int state;
    int idx;
};

struct sent {
    struct sp_nz *z;
    struct ref *refs;               /* sorted by (id, ord) after indexing */
    size_t n_refs, cap_refs, max_refs;
};

_Thread_local unsigned long sp_nz_ref_probes;

/* ---- the $id index ------------------------------------------------------- */

static void index_refs(struct sent *s, const struct sp_json *v, unsigned depth)
{
    if (!v || depth > 64 || s->z->nomem)
        return;
    if (v->type == SP_JSON_OBJECT) {
        const char *id = sp_json_scalar(sp_json_get(v, "$id"));
        if (id) {
            if (s->n_refs == s->max_refs) {
                sp_nz_fail(s->z, SP_REJECT_TOO_MANY_ENTITIES,
                           "Entities has more than %zu objects with $id",
                           s->max_refs);
                return;
            }
            if (s->n_refs == s->cap_refs) {
                size_t cap = s->cap_refs ? s->cap_refs * 2 : 32;
                struct ref *r = sp_arena_alloc(s->z->a, cap * sizeof(*r));
                if (!r) {
                    s->z->nomem = true;
                    return;
                }
                if (s->n_refs)
                    memcpy(r, s->refs, s->n_refs * sizeof(*r));
                s->refs = r;
                s->cap_refs = cap;
            }
            s->refs[s->n_refs] = (struct ref){id, v, s->n_refs, REF_NEW, -1};
            s->n_refs++;
        }
    }
    if (v->type == SP_JSON_OBJECT || v->type == SP_JSON_ARRAY) {
        sp_json_foreach(v, c) {
            if (s->z->reason)
                return;
            index_refs(s, c, depth + 1);
        }
    }
}

static int ref_cmp(const void *a, const void *b)
{
    const struct ref *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    if (c)
        return c;
    return x->ord < y->ord ? -1 : x->ord > y->ord;
}

/* The first object (in document order) whose $id is id, or NULL. */
static struct ref *find_ref(struct sent *s, const char *id)
{
    size_t lo = 0, hi = s->n_refs;
    while (lo < hi) {               /* lower bound of id */
        size_t mid = lo + (hi - lo) / 2;
        sp_nz_ref_probes++;
        if (strcmp(s->refs[mid].id, id) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < s->n_refs && strcmp(s->refs[lo].id, id) == 0)
        return &s->refs[lo];
    return NULL;
}

/* The object a member stands for: itself, or what its $ref names. */
static const struct sp_json *deref(struct sent *s, const struct sp_json *v,
                                   struct ref **out)
{
    *out = NULL;
    if (!v || v->type != SP_JSON_OBJECT)
        return NULL;
    const char *ref = sp_json_scalar(sp_json_get(v, "$ref"));
    if (ref) {
        struct ref *r = find_ref(s, ref);
        *out = r;
        return r ? r->node : NULL;
    }
    const char *id = sp_json_scalar(sp_json_get(v, "$id"));
    if (id)
        *out = find_ref(s, id);
    return v;
}

/* ---- entity builders ----------------------------------------------------- */

static int resolve(struct sent *s, const struct sp_json *v, unsigned depth);

static const char *t(struct sent *s, const struct sp_json *obj,
                     const char *key)
{
    return sp_nz_text(s->z, sp_json_get(obj, key));
}

static const char *ent_id(struct sent *s, int idx, const char *name)
{
    if (idx < 0)
        return NULL;
    return sp_entity_id(&s->z->alert->entities[idx], name);
}

static int host(struct sent *s, const struct sp_json *o)
{
    struct sp_nz *z = s->z;
    struct sp_entity e;
    sp_nz_ent(&e, "host");
    const char *hostname = t(s, o, "HostName");
    const char *netbios = t(s, o, "NetBiosName");
    const char *dns = t(s, o, "DnsDomain");
    const char *fqdn = t(s, o, "FQDN");
    sp_nz_id(z, &e, "hostname", hostname);
    sp_nz_id(z, &e, "netbios", netbios);
    sp_nz_id(z, &e, "fqdn", fqdn);
    sp_nz_id(z, &e, "dns_domain", dns);
    sp_nz_id(z, &e, "nt_domain", t(s, o, "NTDomain"));
    sp_nz_id(z, &e, "device_id", t(s, o, "MdatpDeviceId"));
    sp_nz_id(z, &e, "azure_id", t(s, o, "AzureID"));
    sp_nz_id(z, &e, "oms_agent_id", t(s, o, "OMSAgentID"));
    sp_nz_id(z, &e, "os_family", t(s, o, "OSFamily"));
    sp_nz_id(z, &e, "os_version", t(s, o, "OSVersion"));
    e.key = sp_key_host(z->a, hostname ? hostname : netbios, dns, fqdn);
    return sp_nz_commit(z, &e);
}

static int account(struct sent *s, const struct sp_json *o, unsigned depth)
{
    struct sp_nz *z = s->z;
    int h = resolve(s, sp_json_get(o, "Host"), depth + 1);
    struct sp_entity e;
    sp_nz_ent(&e, "account");
    const char *name = t(s, o, "Name");
    const char *domain = t(s, o, "NTDomain");
    const char *suffix = t(s, o, "UPNSuffix");
    const char *upn = t(s, o, "UserPrincipalName");
    const char *sid = t(s, o, "Sid");
    const char *aad = t(s, o, "AadUserId");
    if (!upn && name && suffix && !strchr(name, '@'))
        upn = sp_arena_printf(z->a, "%s@%s", name, suffix);
    sp_nz_id(z, &e, "name", name);
    sp_nz_id(z, &e, "nt_domain", domain);
    sp_nz_id(z, &e, "upn", upn);
    sp_nz_id(z, &e, "sid", sid);
    sp_nz_id(z, &e, "aad_user_id", aad);
    sp_nz_id(z, &e, "object_guid", t(s, o, "ObjectGuid"));
    sp_nz_id(z, &e, "puid", t(s, o, "PUID"));
    sp_nz_id(z, &e, "display_name", t(s, o, "DisplayName"));
    sp_nz_id(z, &e, "logon_id", t(s, o, "LogonId"));
    sp_nz_id(z, &e, "host", sp_nz_key(z, h));
    /* A local account (no domain) is named by its machine. */
    if (!domain && h >= 0) {
        domain = ent_id(s, h, "netbios");
        if (!domain)
            domain = ent_id(s, h, "hostname");
    }
    e.key = sp_key_account(z->a, upn, domain, name, sid, aad);
    return sp_nz_commit(z, &e);
}

static int ip(struct sent *s, const struct sp_json *o)
{
    struct sp_nz *z = s->z;
    int idx = sp_nz_ip(z, t(s, o, "Address"), NULL);
    const struct sp_json *loc = sp_json_get(o, "Location");
    if (idx >= 0 && loc && loc->type == SP_JSON_OBJECT) {
        struct sp_entity *e = &z->alert->entities[idx];
        sp_nz_id(z, e, "country", t(s, loc, "CountryCode"));
        sp_nz_id(z, e, "city", t(s, loc, "City"));
        sp_nz_id(z, e, "asn", t(s, loc, "Asn"));
    }
    return idx;
}

/* Hash algorithm name -> identifier name, or NULL. */
static const char *hash_name(const char *alg)
{
    if (!alg)
        return NULL;
    if (sp_strcaseeq(alg, "SHA256"))
        return "sha256";
    if (sp_strcaseeq(alg, "SHA1"))
        return "sha1";
    if (sp_strcaseeq(alg, "MD5"))
        return "md5";
    return NULL;
}

static int file(struct sent *s, const struct sp_json *o, unsigned depth)
{
    struct sp_nz *z = s->z;
    const char *hv[3] = {NULL, NULL, NULL};    /* sha256, sha1, md5 */
    struct ref *absorbed[SENT_MAX_HASHES];
    size_t n_abs = 0;
    const struct sp_json *hashes = sp_json_get(o, "FileHashes");
    if (hashes && hashes->type == SP_JSON_ARRAY) {
        sp_json_foreach(hashes, hn) {
            struct ref *r;
            const struct sp_json *h = deref(s, hn, &r);
            const char *name = hash_name(t(s, h, "Algorithm"));
            const char *val = t(s, h, "Value");
            if (!name || !val)
                continue;
            hv[name[3] == '2' ? 0 : name[0] == 's' ? 1 : 2] = val;
            if (r && r->state == REF_NEW && n_abs < SENT_MAX_HASHES) {
                r->state = REF_BUSY;
                absorbed[n_abs++] = r;
            }
        }
    }
    int h = resolve(s, sp_json_get(o, "Host"), depth + 1);
    int idx = sp_nz_file(z, t(s, o, "Name"), t(s, o, "Directory"), hv[0],
                         hv[1], hv[2], t(s, o, "Size"), sp_nz_key(z, h));
    /* The hashes are part of this file, not entities of their own. */
    for (size_t i = 0; i < n_abs; i++) {
        absorbed[i]->state = REF_DONE;
        absorbed[i]->idx = idx;
    }
    return idx;
}

static int filehash(struct sent *s, const struct sp_json *o)
{
    const char *name = hash_name(t(s, o, "Algorithm"));
    const char *val = t(s, o, "Value");
    if (!name || !val)
        return -1;
    return sp_nz_file(s->z, NULL, NULL, name[3] == '2' ? val : NULL,
                      strcmp(name, "sha1") == 0 ? val : NULL,
                      name[0] == 'm' ? val : NULL, NULL, NULL);
}

static int process(struct sent *s, const struct sp_json *o, unsigned depth)
{
    struct sp_nz *z = s->z;
    int h = resolve(s, sp_json_get(o, "Host"), depth + 1);
    int acct = resolve(s, sp_json_get(o, "Account"), depth + 1);
    int img = resolve(s, sp_json_get(o, "ImageFile"), depth + 1);
    int parent = resolve(s, sp_json_get(o, "ParentProcess"), depth + 1);
    const char *host_key = sp_nz_key(z, h);
    const char *device = ent_id(s, h, "device_id");
    const char *pid = sp_nz_pid(z, t(s, o, "ProcessId"));
    int64_t created = sp_nz_time_lax(sp_json_get(o, "CreationTimeUtc"));
    struct sp_entity e;
    sp_nz_ent(&e, "process");
    sp_nz_id(z, &e, "pid", pid);
    sp_nz_id(z, &e, "command_line", t(s, o, "CommandLine"));
    sp_nz_id(z, &e, "creation_time", sp_nz_time_text(z, created));
    sp_nz_id(z, &e, "elevation_token", t(s, o, "ElevationToken"));
    sp_nz_id(z, &e, "image_path", ent_id(s, img, "path"));
    sp_nz_id(z, &e, "image_sha256", ent_id(s, img, "sha256"));
    sp_nz_id(z, &e, "image", sp_nz_key(z, img));
    sp_nz_id(z, &e, "parent_pid", ent_id(s, parent, "pid"));
    sp_nz_id(z, &e, "parent_image_path", ent_id(s, parent, "image_path"));
    sp_nz_id(z, &e, "parent", sp_nz_key(z, parent));
    sp_nz_id(z, &e, "user", sp_nz_key(z, acct));
    sp_nz_id(z, &e, "host", host_key);
    sp_nz_id(z, &e, "device_id", device);
    e.key = sp_nz_key_process(z, host_key, device, pid, created);
    return sp_nz_commit(z, &e);
}

static int registry(struct sent *s, const struct sp_json *o, bool is_value,
                    unsigned depth)
{
    struct sp_nz *z = s->z;
    const struct sp_json *keynode = o;
    int key_idx = -1;
    if (is_value) {
        struct ref *r;
        keynode = deref(s, sp_json_get(o, "Key"), &r);
        key_idx = resolve(s, sp_json_get(o, "Key"), depth + 1);
    }
    const char *hive = t(s, keynode, "Hive");
    const char *key = t(s, keynode, "Key");
    const char *vname = is_value ? t(s, o, "Name") : NULL;
    const char *path = NULL;
    struct sp_entity e;
    sp_nz_ent(&e, is_value ? "registry-value" : "registry");
    e.key = sp_nz_key_registry(z, hive, key, vname, is_value, &path);
    sp_nz_id(z, &e, "key", path);
    sp_nz_id(z, &e, "hive", hive);
    if (is_value) {
        sp_nz_id(z, &e, "value_name", vname);
        sp_nz_id(z, &e, "value_data", t(s, o, "Value"));
        sp_nz_id(z, &e, "value_type", t(s, o, "ValueType"));
        sp_nz_id(z, &e, "registry_key", sp_nz_key(z, key_idx));
    }
    return sp_nz_commit(z, &e);
}

static int message(struct sent *s, const struct sp_json *o)
{
    struct sp_nz *z = s->z;
    struct sp_entity e;
    sp_nz_ent(&e, "message");
    const char *nmid = t(s, o, "NetworkMessageId");
    const char *imid = t(s, o, "InternetMessageId");
    const char *sender_ip = t(s, o, "SenderIP");
    sp_nz_id(z, &e, "network_message_id", nmid);
    sp_nz_id(z, &e, "internet_message_id", imid);
    sp_nz_id(z, &e, "subject", t(s, o, "Subject"));
    sp_nz_id(z, &e, "sender", t(s, o, "P1Sender"));
    sp_nz_id(z, &e, "sender_p2", t(s, o, "P2Sender"));
    sp_nz_id(z, &e, "recipient", t(s, o, "Recipient"));
    sp_nz_id(z, &e, "sender_ip", sender_ip);
    sp_nz_id(z, &e, "delivery_action", t(s, o, "DeliveryAction"));
    sp_nz_id(z, &e, "delivery_location", t(s, o, "DeliveryLocation"));
    e.key = sp_nz_key_lower(z, "message:", nmid ? nmid : imid);
    int idx = sp_nz_commit(z, &e);
    sp_nz_ip(z, sender_ip, "sender");
    const struct sp_json *urls = sp_json_get(o, "Urls");
    if (urls && urls->type == SP_JSON_ARRAY) {
        sp_json_foreach(urls, u) {
            const char *url = sp_nz_text(z, u);
            if (!url)
                continue;
            struct sp_entity ue;
            sp_nz_ent(&ue, "url");
            sp_nz_id(z, &ue, "url", url);
            ue.key = sp_nz_concat(z, "url:", sp_canon_url(z->a, url));
            sp_nz_commit(z, &ue);
        }
    }
    return idx;
}

static int logon_session(struct sent *s, const struct sp_json *o,
                         unsigned depth)
{
    struct sp_nz *z = s->z;
    int h = resolve(s, sp_json_get(o, "Host"), depth + 1);
    int acct = resolve(s, sp_json_get(o, "Account"), depth + 1);
    const char *sid = t(s, o, "SessionId");
    const char *host_key = sp_nz_key(z, h);
    struct sp_entity e;
    sp_nz_ent(&e, "logon-session");
    sp_nz_id(z, &e, "session_id", sid);
    int64_t start = sp_nz_time_lax(sp_json_get(o, "StartTimeUtc"));
    sp_nz_id(z, &e, "start_time", sp_nz_time_text(z, start));
    sp_nz_id(z, &e, "host", host_key);
    sp_nz_id(z, &e, "account", sp_nz_key(z, acct));
    if (sid && host_key && strlen(host_key) > 5)
        e.key = sp_nz_key_lower(
            z, "logon-session:",
            sp_arena_printf(z->a, "%s:%s", host_key + 5, sid));
    return sp_nz_commit(z, &e);
}

/* Entity members that only point at other entities. */
static void resolve_members(struct sent *s, const struct sp_json *o,
                            unsigned depth)
{
    sp_json_foreach(o, m) {
        if (m->type == SP_JSON_OBJECT) {
            resolve(s, m, depth + 1);
        } else if (m->type == SP_JSON_ARRAY) {
            sp_json_foreach(m, c) {
                if (c->type == SP_JSON_OBJECT)
                    resolve(s, c, depth + 1);
            }
        }
    }
}

static const char *const generic_skip[] = {"Type", "Count"};

/* An entity of plain fields; the first of the leading n_key fields that
 * is present names it. */
static int simple(struct sent *s, const struct sp_json *o, const char *type,
                  const char *prefix, const char *const *fields,
                  const char *const *names, size_t n, size_t n_key)
{
    struct sp_nz *z = s->z;
    struct sp_entity e;
    sp_nz_ent(&e, type);
    const char *first = NULL;
    for (size_t i = 0; i < n; i++) {
        const char *v = t(s, o, fields[i]);
        sp_nz_id(z, &e, names[i], v);
        if (!first && i < n_key)
            first = v;
    }
    e.key = sp_nz_key_lower(z, prefix, first);
    return sp_nz_commit(z, &e);
}

static int build(struct sent *s, const struct sp_json *o, unsigned depth)
{
    struct sp_nz *z = s->z;
    const char *type = sp_json_str(o, "Type");
    if (!type)
        type = "unknown";
#define IS(x) sp_strcaseeq(type, x)
    if (IS("host"))
        return host(s, o);
    if (IS("account"))
        return account(s, o, depth);
    if (IS("ip"))
        return ip(s, o);
    if (IS("process"))
        return process(s, o, depth);
    if (IS("file"))
        return file(s, o, depth);
    if (IS("filehash"))
        return filehash(s, o);
    if (IS("registry-key"))
        return registry(s, o, false, depth);
    if (IS("registry-value"))
        return registry(s, o, true, depth);
    if (IS("mailMessage") || IS("mail-message"))
        return message(s, o);
    if (IS("host-logon-session"))
        return logon_session(s, o, depth);
    if (IS("url")) {
        const char *url = t(s, o, "Url");
        struct sp_entity e;
        sp_nz_ent(&e, "url");
        sp_nz_id(z, &e, "url", url);
        e.key = sp_nz_concat(z, "url:", sp_canon_url(z->a, url));
        return sp_nz_commit(z, &e);
    }
    if (IS("dns")) {
        resolve_members(s, o, depth);
        const char *name = t(s, o, "DomainName");
        struct sp_entity e;
        sp_nz_ent(&e, "domain");
        sp_nz_id(z, &e, "name", name);
        e.key = sp_nz_key_domain(z, name);
        return sp_nz_commit(z, &e);
    }
    if (IS("mailbox")) {
        static const char *const f[] = {"MailboxPrimaryAddress", "Upn",
                                        "DisplayName", "AadId"};
        static const char *const nm[] = {"address", "upn", "display_name",
                                         "aad_user_id"};
        return simple(s, o, "mailbox", "mailbox:", f, nm, 4, 2);
    }
    if (IS("cloud-application")) {
        static const char *const f[] = {"AppId", "Name", "InstanceName",
                                        "InstanceId"};
        static const char *const nm[] = {"app_id", "name", "instance_name",
                                         "instance_id"};
        return simple(s, o, "cloud-app", "cloud-app:", f, nm, 4, 2);
    }
    if (IS("azure-resource")) {
        static const char *const f[] = {"ResourceId"};
        static const char *const nm[] = {"resource_id"};
        return simple(s, o, "azure-resource", "azure-resource:", f, nm, 1, 1);
    }
    if (IS("malware")) {
        resolve_members(s, o, depth);
        static const char *const f[] = {"Name", "Category"};
        static const char *const nm[] = {"name", "category"};
        return simple(s, o, "malware", "malware:", f, nm, 2, 1);
    }
    if (IS("security-group")) {
        static const char *const f[] = {"ObjectGuid", "SID",
                                        "DistinguishedName"};
        static const char *const nm[] = {"object_guid", "sid",
                                         "distinguished_name"};
        return simple(s, o, "security-group", "group:", f, nm, 3, 3);
    }
#undef IS
    /* Any other type: its scalar fields, and its references resolved. */
    resolve_members(s, o, depth);
    const char *kebab = sp_nz_entity_type(z, type);
    struct sp_entity e;
    sp_nz_ent(&e, kebab ? kebab : "unknown");
    sp_nz_generic_ids(z, &e, o, generic_skip, SP_ARRAY_SIZE(generic_skip));
    e.key = sp_nz_derive_key(z, &e);
    return sp_nz_commit(z, &e);
}

static int resolve(struct sent *s, const struct sp_json *v, unsigned depth)
{
    if (!v || v->type != SP_JSON_OBJECT || depth > SENT_MAX_DEPTH ||
        s->z->reason || s->z->nomem)
        return -1;
    struct ref *r;
    const struct sp_json *o = deref(s, v, &r);
    if (!o)
        return -1;
    if (r) {
        if (r->state == REF_DONE)
            return r->idx;
        if (r->state == REF_BUSY)
            return -1;              /* a cycle */
        r->state = REF_BUSY;
    }
    int idx = build(s, o, depth);
    if (r) {
        r->state = REF_DONE;
        r->idx = idx;
    }
    return idx;
}

static bool is_filehash(struct sent *s, const struct sp_json *v)
{
    struct ref *r;
    const struct sp_json *o = deref(s, v, &r);
    const char *type = sp_json_str(o, "Type");
    return type && sp_strcaseeq(type, "filehash");
}

static void entities(struct sp_nz *z, const struct sp_json *ents)
{
    if (ents->type != SP_JSON_ARRAY) {
        sp_nz_wrong(z, "Entities", "a JSON array");
        return;
    }
    struct sent s = {.z = z};
    s.max_refs = (size_t)z->o->lim.max_entities * SENT_REFS_PER_ENTITY;
    index_refs(&s, ents, 0);
    if (z->reason || z->nomem)
        return;
    if (s.n_refs > 1)
        qsort(s.refs, s.n_refs, sizeof(*s.refs), ref_cmp);
    sp_json_foreach(ents, v) {
        if (v->type != SP_JSON_OBJECT) {
            sp_nz_wrong(z, "Entities items", "objects");
            return;
        }
    }
    /* Files first claim their hashes; leftover hashes come last.  Each
     * item is built by one of the two passes (an item without $id has no
     * memo, so a second resolve would build it again). */
    sp_json_foreach(ents, v) {
        if (!is_filehash(&s, v))
            resolve(&s, v, 0);
    }
    sp_json_foreach(ents, v) {
        if (is_filehash(&s, v))
            resolve(&s, v, 0);
    }
}

/* CompromisedEntity names a host or account of the alert. */
static void mark_compromised(struct sp_nz *z, const char *name)
{
    static const char *const ids[] = {"hostname", "fqdn", "netbios", "name",
                                      "upn"};
    for (size_t i = 0; i < z->alert->n_entities; i++) {
        struct sp_entity *e = &z->alert->entities[i];
        if (strcmp(e->type, "host") != 0 && strcmp(e->type, "account") != 0)
            continue;
        for (size_t k = 0; k < SP_ARRAY_SIZE(ids); k++) {
            const char *v = sp_entity_id(e, ids[k]);
            if (v && sp_strcaseeq(v, name)) {
                sp_entity_add_role(e, "compromised");
                break;
            }
        }
    }
}

static void extended(struct sp_nz *z, const struct sp_json *ext)
{
    if (!ext || ext->type != SP_JSON_OBJECT)
        return;
    sp_json_foreach(ext, m) {
        if (SP_NZ_IKEY(m, "IncidentId") || SP_NZ_IKEY(m, "Incident Id") ||
            SP_NZ_IKEY(m, "ProviderIncidentId")) {
            if (!z->alert->provider_incident_id)
                z->alert->provider_incident_id = sp_nz_text(z, m);
        } else if (SP_NZ_IKEY(m, "ProviderIncidentUrl") ||
                   SP_NZ_IKEY(m, "IncidentUrl")) {
            sp_nz_link(z, "incident", sp_nz_text(z, m));
        }
    }
}

enum sp_err sp_nz_sentinel(struct sp_nz *z, const struct sp_json *rec)
{
    struct sp_alert *al = sp_nz_begin(z, "sentinel");
    if (!al)
        return SP_ERR_NOMEM;
    const char *sys_id = NULL, *vendor_id = NULL, *prov_id = NULL;
    const char *display = NULL, *adisplay = NULL, *name = NULL;
    const char *product = NULL, *provider = NULL, *compromised = NULL;
    const struct sp_json *ents = NULL, *ext = NULL;
    int64_t generated = SP_TIME_NONE, processed = SP_TIME_NONE;
    sp_json_foreach(rec, m) {
        if (SP_NZ_IKEY(m, "SystemAlertId"))
            sys_id = sp_nz_str(z, m, "SystemAlertId");
        else if (SP_NZ_IKEY(m, "VendorOriginalId"))
            vendor_id = sp_nz_str(z, m, "VendorOriginalId");
        else if (SP_NZ_IKEY(m, "ProviderAlertId"))
            prov_id = sp_nz_str(z, m, "ProviderAlertId");
        else if (SP_NZ_IKEY(m, "DisplayName"))
            display = sp_nz_str(z, m, "DisplayName");
        else if (SP_NZ_IKEY(m, "AlertDisplayName"))
            adisplay = sp_nz_str(z, m, "AlertDisplayName");
        else if (SP_NZ_IKEY(m, "AlertName"))
            name = sp_nz_str(z, m, "AlertName");
        else if (SP_NZ_IKEY(m, "Description"))
            al->description = sp_nz_str(z, m, "Description");
        else if (SP_NZ_IKEY(m, "AlertSeverity") || SP_NZ_IKEY(m, "Severity"))
            sp_nz_severity(z, sp_nz_str(z, m, "AlertSeverity"));
        else if (SP_NZ_IKEY(m, "Status"))
            al->status = sp_nz_status(sp_nz_str(z, m, "Status"));
        else if (SP_NZ_IKEY(m, "TenantId"))
            sp_nz_tenant(z, sp_nz_str(z, m, "TenantId"));
        else if (SP_NZ_IKEY(m, "ProductName"))
            product = sp_nz_str(z, m, "ProductName");
        else if (SP_NZ_IKEY(m, "ProviderName"))
            provider = sp_nz_str(z, m, "ProviderName");
        else if (SP_NZ_IKEY(m, "AlertType"))
            al->detector = sp_nz_str(z, m, "AlertType");
        else if (SP_NZ_IKEY(m, "StartTime") || SP_NZ_IKEY(m, "StartTimeUtc"))
            al->first_activity = sp_nz_time(z, m, "StartTime");
        else if (SP_NZ_IKEY(m, "EndTime") || SP_NZ_IKEY(m, "EndTimeUtc"))
            al->last_activity = sp_nz_time(z, m, "EndTime");
        else if (SP_NZ_IKEY(m, "TimeGenerated"))
            generated = sp_nz_time(z, m, "TimeGenerated");
        else if (SP_NZ_IKEY(m, "ProcessingEndTime"))
            processed = sp_nz_time(z, m, "ProcessingEndTime");
        else if (SP_NZ_IKEY(m, "Tactics"))
            sp_nz_tactics(z, sp_nz_text(z, m));
        else if (SP_NZ_IKEY(m, "Techniques") || SP_NZ_IKEY(m, "SubTechniques"))
            sp_nz_techniques(z, sp_nz_text(z, m));
        else if (SP_NZ_IKEY(m, "AlertLink"))
            sp_nz_link(z, "alert", sp_nz_str(z, m, "AlertLink"));
        else if (SP_NZ_IKEY(m, "ProviderIncidentId"))
            al->provider_incident_id = sp_nz_text(z, m);
        else if (SP_NZ_IKEY(m, "CompromisedEntity"))
            compromised = sp_nz_text(z, m);
        else if (SP_NZ_IKEY(m, "Entities"))
            ents = m;
        else if (SP_NZ_IKEY(m, "ExtendedProperties"))
            ext = m;
    }
    /* Techniques as JSON arrays in a string parse the same way as text;
     * Tactics in the REST shape may be a real array. */
    al->provider_alert_id = sys_id ? sys_id : vendor_id ? vendor_id : prov_id;
    al->title = display ? display : adisplay ? adisplay : name;
    al->provider = product ? product : provider;
    al->created = generated;
    al->updated = processed != SP_TIME_NONE && processed > generated
                      ? processed
                      : generated;
    if (z->reason)
        return sp_nz_finish(z);
    if (ext)
        extended(z, sp_nz_parse_inner(z, ext, NULL));
    if (ents) {
        struct sp_json *doc = sp_nz_parse_inner(z, ents, "Entities");
        if (doc)
            entities(z, doc);
    }
    if (compromised && !z->reason)
        mark_compromised(z, compromised);
    return sp_nz_finish(z);
}
