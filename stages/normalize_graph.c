/*
 * normalize_graph.c - Microsoft Graph security alert v2
 * (microsoft.graph.security.alert) into the normalized alert.
 *
 * One pass over the alert's members, then the evidence in two passes:
 * devices first (they map mdeDeviceId to a host key that processes,
 * files and registry values on that device refer to), then the rest.
 * Every evidence type (@odata.type "#microsoft.graph.security.<x>Evidence")
 * becomes one or more entities; a process also yields its image file,
 * its user account and, when it can be named, its parent process.  Types
 * without a dedicated mapping keep their scalar fields as identifiers.
 *
 * This is the hot path's common case: no lookups by name on the alert
 * object, no copies of decoded strings.  Called from sp_normalize() only.
 */
#include "normalize_int.h"

#define GRAPH_MAX_DEVICES 64

struct graph {
    struct sp_nz *z;
    struct {
        const char *id;
        const char *key;
    } dev[GRAPH_MAX_DEVICES];
    size_t n_dev;
};

static const char *host_for(const struct graph *g, const char *device_id)
{
    if (!device_id)
        return NULL;
    for (size_t i = 0; i < g->n_dev; i++)
        if (strcmp(g->dev[i].id, device_id) == 0)
            return g->dev[i].key;
    return NULL;
}

static const char *get_text(struct sp_nz *z, const struct sp_json *obj,
                            const char *key)
{
    return sp_nz_text(z, sp_json_get(obj, key));
}

/* Roles and verdict, common to every evidence type. */
static void common(struct sp_nz *z, const struct sp_json *ev,
                   struct sp_entity *e)
{
    const struct sp_json *roles = sp_json_get(ev, "roles");
    if (roles && roles->type == SP_JSON_ARRAY) {
        sp_json_foreach(roles, r) {
            if (r->type == SP_JSON_STRING)
                sp_nz_role(z, e, r->u.s);
        }
    }
    const char *verdict = get_text(z, ev, "verdict");
    if (verdict && strcmp(verdict, "unknown") != 0)
        sp_nz_id(z, e, "verdict", verdict);
}

/* userAccount -> account entity. */
static int account(struct sp_nz *z, const struct sp_json *ua,
                   const struct sp_json *ev, const char *role)
{
    if (!ua || ua->type != SP_JSON_OBJECT)
        return -1;
    struct sp_entity e;
    sp_nz_ent(&e, "account");
    const char *name = get_text(z, ua, "accountName");
    const char *domain = get_text(z, ua, "domainName");
    const char *sid = get_text(z, ua, "userSid");
    const char *aad = get_text(z, ua, "azureAdUserId");
    const char *upn = get_text(z, ua, "userPrincipalName");
    sp_nz_id(z, &e, "name", name);
    sp_nz_id(z, &e, "nt_domain", domain);
    sp_nz_id(z, &e, "upn", upn);
    sp_nz_id(z, &e, "sid", sid);
    sp_nz_id(z, &e, "aad_user_id", aad);
    sp_nz_id(z, &e, "display_name", get_text(z, ua, "displayName"));
    sp_nz_id(z, &e, "object_guid",
             get_text(z, ua, "activeDirectoryObjectGuid"));
    e.key = sp_key_account(z->a, upn, domain, name, sid, aad);
    if (ev)
        common(z, ev, &e);
    if (role)
        sp_entity_add_role(&e, role);
    return sp_nz_commit(z, &e);
}

/* fileDetails -> file entity. */
static int file(struct sp_nz *z, const struct sp_json *fd,
                const char *host_key)
{
    if (!fd || fd->type != SP_JSON_OBJECT)
        return -1;
    int idx = sp_nz_file(z, get_text(z, fd, "fileName"),
                         get_text(z, fd, "filePath"),
                         get_text(z, fd, "sha256"), get_text(z, fd, "sha1"),
                         get_text(z, fd, "md5"), get_text(z, fd, "fileSize"),
                         host_key);
    if (idx >= 0) {
        struct sp_entity *e = &z->alert->entities[idx];
        sp_nz_id(z, e, "publisher", get_text(z, fd, "filePublisher"));
        sp_nz_id(z, e, "signer", get_text(z, fd, "signer"));
    }
    return idx;
}

static void device(struct graph *g, const struct sp_json *ev)
{
    struct sp_nz *z = g->z;
    struct sp_entity e;
    sp_nz_ent(&e, "host");
    const char *hostname = get_text(z, ev, "hostName");
    const char *dns = get_text(z, ev, "dnsDomain");
    const char *fqdn = get_text(z, ev, "deviceDnsName");
    const char *mde = get_text(z, ev, "mdeDeviceId");
    sp_nz_id(z, &e, "hostname", hostname);
    sp_nz_id(z, &e, "fqdn", fqdn);
    sp_nz_id(z, &e, "dns_domain", dns);
    sp_nz_id(z, &e, "nt_domain", get_text(z, ev, "ntDomain"));
    sp_nz_id(z, &e, "device_id", mde);
    sp_nz_id(z, &e, "aad_device_id", get_text(z, ev, "azureAdDeviceId"));
    sp_nz_id(z, &e, "os_platform", get_text(z, ev, "osPlatform"));
    sp_nz_id(z, &e, "os_build", get_text(z, ev, "osBuild"));
    sp_nz_id(z, &e, "os_version", get_text(z, ev, "version"));
    sp_nz_id(z, &e, "risk_score", get_text(z, ev, "riskScore"));
    const char *ip = get_text(z, ev, "lastIpAddress");
    const char *cip = sp_canon_ip(z->a, ip);
    sp_nz_id(z, &e, "last_ip", cip ? cip : ip);
    ip = get_text(z, ev, "lastExternalIpAddress");
    cip = sp_canon_ip(z->a, ip);
    sp_nz_id(z, &e, "external_ip", cip ? cip : ip);
    const struct sp_json *ifs = sp_json_get(ev, "ipInterfaces");
    if (ifs && ifs->type == SP_JSON_ARRAY) {
        sp_json_foreach(ifs, v) {
            const char *a = sp_nz_text(z, v);
            cip = sp_canon_ip(z->a, a);
            sp_nz_id(z, &e, "ip", cip ? cip : a);
        }
    }
    const struct sp_json *vm = sp_json_get(ev, "vmMetadata");
    if (vm && vm->type == SP_JSON_OBJECT) {
        sp_nz_id(z, &e, "vm_id", get_text(z, vm, "vmId"));
        sp_nz_id(z, &e, "azure_id", get_text(z, vm, "resourceId"));
        sp_nz_id(z, &e, "cloud_provider", get_text(z, vm, "cloudProvider"));
    }
    common(z, ev, &e);
    e.key = sp_key_host(z->a, hostname, dns, fqdn);
    int idx = sp_nz_commit(z, &e);
    if (idx >= 0 && mde && g->n_dev < GRAPH_MAX_DEVICES && !host_for(g, mde)) {
        g->dev[g->n_dev].id = mde;
        g->dev[g->n_dev].key = sp_nz_key(z, idx);
        if (g->dev[g->n_dev].key)
            g->n_dev++;
    }
    const struct sp_json *users = sp_json_get(ev, "loggedOnUsers");
    if (users && users->type == SP_JSON_ARRAY) {
        sp_json_foreach(users, u) {
            if (u->type != SP_JSON_OBJECT)
                continue;
            struct sp_entity a;
            sp_nz_ent(&a, "account");
            const char *name = get_text(z, u, "accountName");
            const char *domain = get_text(z, u, "domainName");
            sp_nz_id(z, &a, "name", name);
            sp_nz_id(z, &a, "nt_domain", domain);
            a.key = sp_key_account(z->a, NULL, domain, name, NULL, NULL);
            sp_entity_add_role(&a, "logged-on");
            sp_nz_commit(z, &a);
        }
    }
}

static void process(struct graph *g, const struct sp_json *ev)
{
    struct sp_nz *z = g->z;
    const char *dev = get_text(z, ev, "mdeDeviceId");
    const char *host = host_for(g, dev);
    const char *pid = sp_nz_pid(z, get_text(z, ev, "processId"));
    const char *ppid = sp_nz_pid(z, get_text(z, ev, "parentProcessId"));
    int64_t created =
        sp_nz_time_lax(sp_json_get(ev, "processCreationDateTime"));
    int64_t pcreated =
        sp_nz_time_lax(sp_json_get(ev, "parentProcessCreationDateTime"));
    const struct sp_json *img = sp_json_get(ev, "imageFile");
    const struct sp_json *pimg = sp_json_get(ev, "parentProcessImageFile");
    int img_idx = file(z, img, host);
    int user_idx = account(z, sp_json_get(ev, "userAccount"), NULL, NULL);
    const char *pimg_path =
        pimg && pimg->type == SP_JSON_OBJECT
            ? sp_nz_path(z, get_text(z, pimg, "filePath"),
                         get_text(z, pimg, "fileName"))
            : NULL;
    const char *parent_key = NULL;
    if (ppid) {
        struct sp_entity p;
        sp_nz_ent(&p, "process");
        sp_nz_id(z, &p, "pid", ppid);
        sp_nz_id(z, &p, "creation_time", sp_nz_time_text(z, pcreated));
        sp_nz_id(z, &p, "image_path", pimg_path);
        sp_nz_id(z, &p, "host", host);
        sp_nz_id(z, &p, "device_id", dev);
        p.key = sp_nz_key_process(z, host, dev, ppid, pcreated);
        if (p.key)
            parent_key = sp_nz_key(z, sp_nz_commit(z, &p));
    }
    struct sp_entity e;
    sp_nz_ent(&e, "process");
    sp_nz_id(z, &e, "pid", pid);
    sp_nz_id(z, &e, "command_line", get_text(z, ev, "processCommandLine"));
    sp_nz_id(z, &e, "creation_time", sp_nz_time_text(z, created));
    if (img && img->type == SP_JSON_OBJECT) {
        const char *dir = get_text(z, img, "filePath");
        const char *name = get_text(z, img, "fileName");
        sp_nz_id(z, &e, "image_path", sp_nz_path(z, dir, name));
        sp_nz_id(z, &e, "image_sha256",
                 sp_nz_lower(z, get_text(z, img, "sha256")));
    }
    sp_nz_id(z, &e, "image", sp_nz_key(z, img_idx));
    sp_nz_id(z, &e, "parent_pid", ppid);
    sp_nz_id(z, &e, "parent_image_path", pimg_path);
    sp_nz_id(z, &e, "parent", parent_key);
    sp_nz_id(z, &e, "user", sp_nz_key(z, user_idx));
    sp_nz_id(z, &e, "host", host);
    sp_nz_id(z, &e, "device_id", dev);
    common(z, ev, &e);
    e.key = sp_nz_key_process(z, host, dev, pid, created);
    sp_nz_commit(z, &e);
}

static void message(struct sp_nz *z, const struct sp_json *ev)
{
    struct sp_entity e;
    sp_nz_ent(&e, "message");
    const char *nmid = get_text(z, ev, "networkMessageId");
    const char *imid = get_text(z, ev, "internetMessageId");
    const char *recipient = get_text(z, ev, "recipientEmailAddress");
    const struct sp_json *p1 = sp_json_get(ev, "p1Sender");
    const struct sp_json *p2 = sp_json_get(ev, "p2Sender");
    const char *sender1 = get_text(z, p1, "emailAddress");
    const char *sender2 = get_text(z, p2, "emailAddress");
    const char *sender_ip = get_text(z, ev, "senderIp");
    sp_nz_id(z, &e, "network_message_id", nmid);
    sp_nz_id(z, &e, "internet_message_id", imid);
    sp_nz_id(z, &e, "subject", get_text(z, ev, "subject"));
    sp_nz_id(z, &e, "sender", sender1);
    sp_nz_id(z, &e, "sender_p2", sender2);
    sp_nz_id(z, &e, "recipient", recipient);
    sp_nz_id(z, &e, "sender_ip", sender_ip);
    sp_nz_id(z, &e, "delivery_action", get_text(z, ev, "deliveryAction"));
    const struct sp_json *loc = sp_json_get(ev, "deliveryLocation");
    sp_nz_id(z, &e, "delivery_location", sp_nz_text(z, loc));
    sp_nz_id(z, &e, "received", sp_nz_time_text(z, sp_nz_time_lax(
        sp_json_get(ev, "receivedDateTime"))));
    common(z, ev, &e);
    e.key = nmid ? sp_nz_key_lower(z, "message:", nmid)
                 : sp_nz_key_lower(z, "message:", imid);
    sp_nz_commit(z, &e);
    sp_nz_ip(z, sender_ip, "sender");
    const char *boxes[2] = {recipient, sender1};
    const char *roles[2] = {"recipient", "sender"};
    for (int i = 0; i < 2; i++) {
        if (!boxes[i])
            continue;
        struct sp_entity m;
        sp_nz_ent(&m, "mailbox");
        sp_nz_id(z, &m, "address", boxes[i]);
        m.key = sp_nz_key_lower(z, "mailbox:", boxes[i]);
        sp_entity_add_role(&m, roles[i]);
        sp_nz_commit(z, &m);
    }
    const struct sp_json *urls = sp_json_get(ev, "urls");
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
}

/* Skipped by the generic mapping: bookkeeping, not identity. */
static const char *const generic_skip[] = {
    "createdDateTime", "remediationStatus", "remediationStatusDetails",
    "verdict", "detectionStatus",
};

static void evidence(struct graph *g, const struct sp_json *ev,
                     const char *kind)
{
    struct sp_nz *z = g->z;
    struct sp_entity e;
    if (strcmp(kind, "process") == 0) {
        process(g, ev);
        return;
    }
    if (strcmp(kind, "analyzedMessage") == 0) {
        message(z, ev);
        return;
    }
    if (strcmp(kind, "user") == 0) {
        account(z, sp_json_get(ev, "userAccount"), ev, NULL);
        return;
    }
    if (strcmp(kind, "file") == 0) {
        const char *dev = get_text(z, ev, "mdeDeviceId");
        int idx = file(z, sp_json_get(ev, "fileDetails"), host_for(g, dev));
        if (idx >= 0) {
            sp_nz_ent(&e, "file");
            common(z, ev, &e);
            struct sp_entity *d = &z->alert->entities[idx];
            for (uint8_t i = 0; i < e.n_roles; i++)
                sp_entity_add_role(d, e.roles[i]);
            for (uint16_t i = 0; i < e.n_ids; i++)
                sp_nz_id(z, d, e.ids[i].name, e.ids[i].value);
        }
        return;
    }
    if (strcmp(kind, "ip") == 0) {
        const char *addr = get_text(z, ev, "ipAddress");
        const char *c = sp_canon_ip(z->a, addr);
        sp_nz_ent(&e, "ip");
        sp_nz_id(z, &e, "address", c ? c : addr);
        sp_nz_id(z, &e, "country", get_text(z, ev, "countryLetterCode"));
        const struct sp_json *loc = sp_json_get(ev, "location");
        if (loc && loc->type == SP_JSON_OBJECT) {
            sp_nz_id(z, &e, "city", get_text(z, loc, "city"));
            sp_nz_id(z, &e, "country_name", get_text(z, loc, "countryName"));
            sp_nz_id(z, &e, "asn", get_text(z, loc, "asn"));
        }
        e.key = sp_nz_concat(z, "ip:", c);
    } else if (strcmp(kind, "url") == 0) {
        const char *url = get_text(z, ev, "url");
        sp_nz_ent(&e, "url");
        sp_nz_id(z, &e, "url", url);
        e.key = sp_nz_concat(z, "url:", sp_canon_url(z->a, url));
    } else if (strcmp(kind, "mailbox") == 0) {
        const char *addr = get_text(z, ev, "primaryAddress");
        const char *upn = get_text(z, ev, "upn");
        sp_nz_ent(&e, "mailbox");
        sp_nz_id(z, &e, "address", addr);
        sp_nz_id(z, &e, "display_name", get_text(z, ev, "displayName"));
        sp_nz_id(z, &e, "upn", upn);
        int ua = account(z, sp_json_get(ev, "userAccount"), NULL, NULL);
        sp_nz_id(z, &e, "account", sp_nz_key(z, ua));
        e.key = sp_nz_key_lower(z, "mailbox:", addr ? addr : upn);
    } else if (strcmp(kind, "cloudApplication") == 0) {
        const char *app = get_text(z, ev, "appId");
        const char *name = get_text(z, ev, "displayName");
        sp_nz_ent(&e, "cloud-app");
        sp_nz_id(z, &e, "app_id", app);
        sp_nz_id(z, &e, "name", name);
        sp_nz_id(z, &e, "instance_id", get_text(z, ev, "instanceId"));
        sp_nz_id(z, &e, "instance_name", get_text(z, ev, "instanceName"));
        sp_nz_id(z, &e, "saas_app_id", get_text(z, ev, "saasAppId"));
        e.key = sp_nz_key_lower(z, "cloud-app:", app ? app : name);
    } else if (strcmp(kind, "registryKey") == 0 ||
               strcmp(kind, "registryValue") == 0) {
        bool is_value = kind[8] == 'V';
        const char *hive = get_text(z, ev, "registryHive");
        const char *key = get_text(z, ev, "registryKey");
        const char *vname = get_text(z, ev, "registryValueName");
        const char *path = NULL;
        sp_nz_ent(&e, is_value ? "registry-value" : "registry");
        const char *k = sp_nz_key_registry(z, hive, key, vname, is_value,
                                           &path);
        sp_nz_id(z, &e, "key", path);
        sp_nz_id(z, &e, "hive", hive);
        if (is_value) {
            sp_nz_id(z, &e, "value_name", vname);
            sp_nz_id(z, &e, "value_data", get_text(z, ev, "registryValue"));
            sp_nz_id(z, &e, "value_type", get_text(z, ev, "registryValueType"));
            sp_nz_id(z, &e, "host",
                     host_for(g, get_text(z, ev, "mdeDeviceId")));
        }
        e.key = k;
    } else if (strcmp(kind, "securityGroup") == 0) {
        const char *id = get_text(z, ev, "securityGroupId");
        sp_nz_ent(&e, "security-group");
        sp_nz_id(z, &e, "object_id", id);
        sp_nz_id(z, &e, "name", get_text(z, ev, "displayName"));
        e.key = sp_nz_key_lower(z, "group:", id);
    } else if (strcmp(kind, "oauthApplication") == 0) {
        const char *app = get_text(z, ev, "appId");
        sp_nz_ent(&e, "oauth-app");
        sp_nz_id(z, &e, "app_id", app);
        sp_nz_id(z, &e, "name", get_text(z, ev, "displayName"));
        sp_nz_id(z, &e, "object_id", get_text(z, ev, "objectId"));
        sp_nz_id(z, &e, "publisher", get_text(z, ev, "publisher"));
        e.key = sp_nz_key_lower(z, "oauth-app:", app);
    } else if (strcmp(kind, "azureResource") == 0) {
        const char *rid = get_text(z, ev, "resourceId");
        sp_nz_ent(&e, "azure-resource");
        sp_nz_id(z, &e, "resource_id", rid);
        sp_nz_id(z, &e, "name", get_text(z, ev, "resourceName"));
        sp_nz_id(z, &e, "resource_type", get_text(z, ev, "resourceType"));
        e.key = sp_nz_key_lower(z, "azure-resource:", rid);
    } else if (strcmp(kind, "malware") == 0) {
        const char *name = get_text(z, ev, "name");
        sp_nz_ent(&e, "malware");
        sp_nz_id(z, &e, "name", name);
        sp_nz_id(z, &e, "category", get_text(z, ev, "category"));
        e.key = sp_nz_key_lower(z, "malware:", name);
    } else if (strcmp(kind, "dns") == 0) {
        const char *name = get_text(z, ev, "domainName");
        sp_nz_ent(&e, "domain");
        sp_nz_id(z, &e, "name", name);
        e.key = sp_nz_key_domain(z, name);
    } else {
        const char *type = sp_nz_entity_type(z, kind);
        sp_nz_ent(&e, type ? type : "unknown");
        sp_nz_generic_ids(z, &e, ev, generic_skip,
                          SP_ARRAY_SIZE(generic_skip));
        e.key = sp_nz_derive_key(z, &e);
    }
    common(z, ev, &e);
    sp_nz_commit(z, &e);
}

/* "#microsoft.graph.security.fileEvidence" -> "file" (in a small buffer). */
static const char *evidence_kind(const struct sp_json *ev, char *buf,
                                 size_t n)
{
    const char *t = sp_json_str(ev, "@odata.type");
    if (!t)
        return "unknown";
    const char *dot = strrchr(t, '.');
    const char *s = dot ? dot + 1 : (t[0] == '#' ? t + 1 : t);
    size_t len = strlen(s);
    if (len > 8 && strcmp(s + len - 8, "Evidence") == 0)
        len -= 8;
    if (len == 0 || len >= n)
        return "unknown";
    memcpy(buf, s, len);
    buf[len] = '\0';
    return buf;
}

enum sp_err sp_nz_graph(struct sp_nz *z, const struct sp_json *rec)
{
    struct sp_alert *al = sp_nz_begin(z, "graph");
    if (!al)
        return SP_ERR_NOMEM;
    const struct sp_json *evid = NULL;
    const char *product = NULL;
    sp_json_foreach(rec, m) {
        if (SP_NZ_KEY(m, "id"))
            al->provider_alert_id = sp_nz_str(z, m, "id");
        else if (SP_NZ_KEY(m, "title"))
            al->title = sp_nz_str(z, m, "title");
        else if (SP_NZ_KEY(m, "description"))
            al->description = sp_nz_str(z, m, "description");
        else if (SP_NZ_KEY(m, "severity"))
            sp_nz_severity(z, sp_nz_str(z, m, "severity"));
        else if (SP_NZ_KEY(m, "status"))
            al->status = sp_nz_status(sp_nz_str(z, m, "status"));
        else if (SP_NZ_KEY(m, "incidentId"))
            al->provider_incident_id = sp_nz_text(z, m);
        else if (SP_NZ_KEY(m, "tenantId"))
            sp_nz_tenant(z, sp_nz_str(z, m, "tenantId"));
        else if (SP_NZ_KEY(m, "serviceSource"))
            al->provider = sp_nz_str(z, m, "serviceSource");
        else if (SP_NZ_KEY(m, "productName"))
            product = sp_nz_str(z, m, "productName");
        else if (SP_NZ_KEY(m, "detectorId"))
            al->detector = sp_nz_str(z, m, "detectorId");
        else if (SP_NZ_KEY(m, "category"))
            al->category = sp_nz_str(z, m, "category");
        else if (SP_NZ_KEY(m, "alertWebUrl"))
            sp_nz_link(z, "alert", sp_nz_str(z, m, "alertWebUrl"));
        else if (SP_NZ_KEY(m, "incidentWebUrl"))
            sp_nz_link(z, "incident", sp_nz_str(z, m, "incidentWebUrl"));
        else if (SP_NZ_KEY(m, "createdDateTime"))
            al->created = sp_nz_time(z, m, "createdDateTime");
        else if (SP_NZ_KEY(m, "lastUpdateDateTime"))
            al->updated = sp_nz_time(z, m, "lastUpdateDateTime");
        else if (SP_NZ_KEY(m, "firstActivityDateTime"))
            al->first_activity = sp_nz_time(z, m, "firstActivityDateTime");
        else if (SP_NZ_KEY(m, "lastActivityDateTime"))
            al->last_activity = sp_nz_time(z, m, "lastActivityDateTime");
        else if (SP_NZ_KEY(m, "mitreTechniques")) {
            if (m->type == SP_JSON_ARRAY) {
                sp_json_foreach(m, t) {
                    if (t->type == SP_JSON_STRING)
                        sp_nz_techniques(z, t->u.s);
                }
            } else if (m->type != SP_JSON_NULL) {
                sp_nz_wrong(z, "mitreTechniques", "an array");
            }
        } else if (SP_NZ_KEY(m, "evidence")) {
            if (m->type == SP_JSON_ARRAY)
                evid = m;
            else if (m->type != SP_JSON_NULL)
                sp_nz_wrong(z, "evidence", "an array");
        }
    }
    if (!al->provider)
        al->provider = product;
    sp_nz_category_tactic(z, al->category);
    if (!evid || z->reason)
        return sp_nz_finish(z);
    struct graph g = {.z = z};
    char kind[64];
    sp_json_foreach(evid, ev) {
        if (ev->type != SP_JSON_OBJECT)
            return sp_nz_fail(z, SP_REJECT_WRONG_TYPE,
                              "evidence items must be objects");
        if (strcmp(evidence_kind(ev, kind, sizeof(kind)), "device") == 0)
            device(&g, ev);
    }
    sp_json_foreach(evid, ev) {
        if (z->reason || z->nomem)
            break;
        const char *k = evidence_kind(ev, kind, sizeof(kind));
        if (strcmp(k, "device") != 0)
            evidence(&g, ev, k);
    }
    return sp_nz_finish(z);
}
