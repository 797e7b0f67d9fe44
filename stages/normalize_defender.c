/*
 * normalize_defender.c - Defender XDR streaming API records (Event Hubs
 * or storage): AdvancedHunting-AlertInfo and AdvancedHunting-AlertEvidence,
 * in the {"time","tenantId","category","properties":{...}} wrapper or as
 * flat Advanced Hunting rows.
 *
 * The stream splits one alert into an AlertInfo row (title, severity,
 * techniques) and one AlertEvidence row per entity.  Each row becomes an
 * alert part (SP_PART_INFO / SP_PART_EVIDENCE) with the same id,
 * "defender-streaming:<AlertId>"; correlation assembles the parts.  An
 * evidence row yields its entity (by EntityType) plus the device and
 * account it was seen with; the row's EvidenceRole is the entity's role.
 *
 * Called from sp_normalize() only.
 */
#include "normalize_int.h"

static const char *t(struct sp_nz *z, const struct sp_json *obj,
                     const char *key)
{
    return sp_nz_text(z, sp_json_get(obj, key));
}

static int device(struct sp_nz *z, const struct sp_json *p)
{
    const char *name = t(z, p, "DeviceName");
    const char *id = t(z, p, "DeviceId");
    if (!name && !id)
        return -1;
    struct sp_entity e;
    sp_nz_ent(&e, "host");
    sp_nz_id(z, &e, name && strchr(name, '.') ? "fqdn" : "hostname", name);
    sp_nz_id(z, &e, "device_id", id);
    const char *ip = t(z, p, "LocalIP");
    const char *c = sp_canon_ip(z->a, ip);
    sp_nz_id(z, &e, "ip", c ? c : ip);
    sp_nz_id(z, &e, "machine_group", t(z, p, "MachineGroup"));
    e.key = sp_key_host(z->a, name, NULL, NULL);
    return sp_nz_commit(z, &e);
}

static int account(struct sp_nz *z, const struct sp_json *p)
{
    const char *name = t(z, p, "AccountName");
    const char *domain = t(z, p, "AccountDomain");
    const char *sid = t(z, p, "AccountSid");
    const char *oid = t(z, p, "AccountObjectId");
    const char *upn = t(z, p, "AccountUpn");
    if (!name && !sid && !oid && !upn)
        return -1;
    struct sp_entity e;
    sp_nz_ent(&e, "account");
    sp_nz_id(z, &e, "name", name);
    sp_nz_id(z, &e, "nt_domain", domain);
    sp_nz_id(z, &e, "upn", upn);
    sp_nz_id(z, &e, "sid", sid);
    sp_nz_id(z, &e, "aad_user_id", oid);
    e.key = sp_key_account(z->a, upn, domain, name, sid, oid);
    return sp_nz_commit(z, &e);
}

static int file(struct sp_nz *z, const struct sp_json *p, const char *host)
{
    const char *name = t(z, p, "FileName");
    const char *sha256 = t(z, p, "SHA256");
    const char *sha1 = t(z, p, "SHA1");
    if (!name && !sha256 && !sha1)
        return -1;
    int idx = sp_nz_file(z, name, t(z, p, "FolderPath"), sha256, sha1, NULL,
                         t(z, p, "FileSize"), host);
    if (idx >= 0)
        sp_nz_id(z, &z->alert->entities[idx], "threat_family",
                 t(z, p, "ThreatFamily"));
    return idx;
}

/* The main entity of an evidence row, by EntityType; roles go on it. */
static void evidence(struct sp_nz *z, const struct sp_json *p,
                     const char *type, const char *role)
{
    int host = device(z, p);
    const char *host_key = sp_nz_key(z, host);
    struct sp_json *add =
        sp_nz_parse_inner(z, sp_json_get(p, "AdditionalFields"), NULL);
    int main_idx = -1;
    struct sp_entity e;
    sp_nz_ent(&e, NULL);
#define IS(x) sp_strcaseeq(type, x)
    if (IS("Machine")) {
        main_idx = host;
    } else if (IS("User")) {
        main_idx = account(z, p);
    } else if (IS("File")) {
        account(z, p);
        main_idx = file(z, p, host_key);
    } else if (IS("Process")) {
        int user = account(z, p);
        int img = file(z, p, host_key);
        const char *pid = sp_nz_pid(z, t(z, add, "ProcessId"));
        struct sp_json *ct = sp_json_get(add, "CreationTimeUtc");
        if (!ct)
            ct = sp_json_get(add, "ProcessCreationTime");
        int64_t created = sp_nz_time_lax(ct);
        const char *dev = sp_entity_id(host >= 0 ? &z->alert->entities[host]
                                                 : &e, "device_id");
        sp_nz_ent(&e, "process");
        sp_nz_id(z, &e, "pid", pid);
        sp_nz_id(z, &e, "command_line", t(z, p, "ProcessCommandLine"));
        sp_nz_id(z, &e, "creation_time", sp_nz_time_text(z, created));
        if (img >= 0) {
            struct sp_entity *f = &z->alert->entities[img];
            sp_nz_id(z, &e, "image_path", sp_entity_id(f, "path"));
            sp_nz_id(z, &e, "image_sha256", sp_entity_id(f, "sha256"));
        }
        sp_nz_id(z, &e, "image", sp_nz_key(z, img));
        sp_nz_id(z, &e, "user", sp_nz_key(z, user));
        sp_nz_id(z, &e, "host", host_key);
        sp_nz_id(z, &e, "device_id", dev);
        e.key = sp_nz_key_process(z, host_key, dev, pid, created);
    } else if (IS("Ip")) {
        const char *ip = t(z, p, "RemoteIP");
        main_idx = sp_nz_ip(z, ip ? ip : t(z, p, "LocalIP"), NULL);
    } else if (IS("Url")) {
        const char *url = t(z, p, "RemoteUrl");
        sp_nz_ent(&e, "url");
        sp_nz_id(z, &e, "url", url);
        e.key = sp_nz_concat(z, "url:", sp_canon_url(z->a, url));
    } else if (IS("MailMessage")) {
        const char *nmid = t(z, p, "NetworkMessageId");
        sp_nz_ent(&e, "message");
        sp_nz_id(z, &e, "network_message_id", nmid);
        sp_nz_id(z, &e, "subject", t(z, p, "EmailSubject"));
        sp_nz_id(z, &e, "sender", t(z, add, "Sender"));
        sp_nz_id(z, &e, "recipient", t(z, add, "Recipient"));
        e.key = sp_nz_key_lower(z, "message:", nmid);
    } else if (IS("Mailbox")) {
        const char *addr = t(z, add, "MailboxPrimaryAddress");
        const char *upn = t(z, p, "AccountUpn");
        sp_nz_ent(&e, "mailbox");
        sp_nz_id(z, &e, "address", addr);
        sp_nz_id(z, &e, "upn", upn);
        sp_nz_id(z, &e, "display_name", t(z, add, "DisplayName"));
        e.key = sp_nz_key_lower(z, "mailbox:", addr ? addr : upn);
    } else if (IS("CloudApplication")) {
        const char *app = t(z, p, "ApplicationId");
        const char *name = t(z, p, "Application");
        sp_nz_ent(&e, "cloud-app");
        sp_nz_id(z, &e, "app_id", app);
        sp_nz_id(z, &e, "name", name);
        e.key = sp_nz_key_lower(z, "cloud-app:", app ? app : name);
    } else if (IS("OAuthApplication")) {
        const char *app = t(z, p, "OAuthApplicationId");
        sp_nz_ent(&e, "oauth-app");
        sp_nz_id(z, &e, "app_id", app);
        sp_nz_id(z, &e, "name", t(z, p, "Application"));
        e.key = sp_nz_key_lower(z, "oauth-app:", app);
    } else if (IS("RegistryKey") || IS("RegistryValue")) {
        bool is_value = IS("RegistryValue");
        const char *vname = t(z, p, "RegistryValueName");
        const char *path = NULL;
        sp_nz_ent(&e, is_value ? "registry-value" : "registry");
        e.key = sp_nz_key_registry(z, NULL, t(z, p, "RegistryKey"), vname,
                                   is_value, &path);
        sp_nz_id(z, &e, "key", path);
        if (is_value) {
            sp_nz_id(z, &e, "value_name", vname);
            sp_nz_id(z, &e, "value_data", t(z, p, "RegistryValueData"));
        }
        sp_nz_id(z, &e, "host", host_key);
    } else {
        /* MailCluster, SecurityGroup, ...: what AdditionalFields says. */
        const char *kebab = sp_nz_entity_type(z, type);
        sp_nz_ent(&e, kebab ? kebab : "unknown");
        static const char *const skip[] = {"Type"};
        sp_nz_generic_ids(z, &e, add, skip, SP_ARRAY_SIZE(skip));
        e.key = sp_nz_derive_key(z, &e);
        account(z, p);
    }
#undef IS
    if (e.type)
        main_idx = sp_nz_commit(z, &e);
    if (main_idx >= 0 && role)
        sp_nz_role(z, &z->alert->entities[main_idx], role);
}

enum sp_err sp_nz_defender(struct sp_nz *z, const struct sp_json *rec)
{
    struct sp_alert *al = sp_nz_begin(z, "defender-streaming");
    if (!al)
        return SP_ERR_NOMEM;
    const struct sp_json *p = sp_json_get(rec, "properties");
    const char *category = sp_json_str(rec, "category");
    if (!p) {
        p = rec;                    /* a flat Advanced Hunting row */
    } else if (p->type != SP_JSON_OBJECT) {
        sp_nz_wrong(z, "properties", "an object");
        return sp_nz_finish(z);
    }
    sp_nz_tenant(z, sp_nz_str(z, sp_json_get(rec, "tenantId"), "tenantId"));
    sp_nz_tenant(z, sp_nz_str(z, sp_json_get(p, "TenantId"), "TenantId"));
    const char *type = NULL, *role = NULL;
    sp_json_foreach(p, m) {
        if (SP_NZ_KEY(m, "AlertId"))
            al->provider_alert_id = sp_nz_str(z, m, "AlertId");
        else if (SP_NZ_KEY(m, "Title"))
            al->title = sp_nz_str(z, m, "Title");
        else if (SP_NZ_KEY(m, "Category"))
            al->category = sp_nz_str(z, m, "Category");
        else if (SP_NZ_KEY(m, "Categories") && !al->category)
            al->category = sp_nz_text(z, m);
        else if (SP_NZ_KEY(m, "Severity"))
            sp_nz_severity(z, sp_nz_str(z, m, "Severity"));
        else if (SP_NZ_KEY(m, "ServiceSource"))
            al->provider = sp_nz_str(z, m, "ServiceSource");
        else if (SP_NZ_KEY(m, "AttackTechniques"))
            sp_nz_techniques(z, sp_nz_text(z, m));
        else if (SP_NZ_KEY(m, "Timestamp"))
            al->created = sp_nz_time(z, m, "Timestamp");
        else if (SP_NZ_KEY(m, "EntityType"))
            type = sp_nz_str(z, m, "EntityType");
        else if (SP_NZ_KEY(m, "EvidenceRole"))
            role = sp_nz_str(z, m, "EvidenceRole");
    }
    al->updated = al->created;
    bool is_evidence = category ? strcmp(category,
                                         "AdvancedHunting-AlertEvidence") == 0
                                : type != NULL;
    al->part = is_evidence ? SP_PART_EVIDENCE : SP_PART_INFO;
    if (al->category && al->category[0] == '[')
        sp_nz_tactics(z, al->category);     /* Categories: ["Execution"] */
    else
        sp_nz_category_tactic(z, al->category);
    if (!is_evidence) {
        al->status = "new";
        return sp_nz_finish(z);
    }
    if (!z->reason && al->provider_alert_id)
        evidence(z, p, type ? type : "Unknown", role);
    return sp_nz_finish(z);
}
