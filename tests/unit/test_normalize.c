/*
 * test_normalize.c - the normalizers (stages/normalize*.c) on the
 * fixtures in tests/fixtures/alerts/, the demo's config/samples/ and,
 * when ../shared/samples exists, on every real sample there: exact
 * fields, entities, keys, $ref resolution, envelopes, round trips.
 *
 * Runs with cwd = the repository root.  Writes every alert it produces to
 * build/normalized_fixtures.jsonl and build/normalized_samples.jsonl and
 * validates both against schema/alert.schema.json with
 * tests/tools/schema_check.py when python3-jsonschema is installed.
 */
#include "t.h"

#include "normalize_t.h"

#include <glob.h>

static void test_format_parse(void)
{
    enum sp_format f = SP_FMT_GENERIC;
    T_EQ_INT(sp_format_parse("auto", &f), SP_OK);
    T_EQ_INT(f, SP_FMT_AUTO);
    T_EQ_INT(sp_format_parse("graph", &f), SP_OK);
    T_EQ_INT(f, SP_FMT_GRAPH);
    T_EQ_INT(sp_format_parse("Sentinel", &f), SP_OK);
    T_EQ_INT(f, SP_FMT_SENTINEL);
    T_EQ_INT(sp_format_parse("defender-streaming", &f), SP_OK);
    T_EQ_INT(f, SP_FMT_DEFENDER_STREAMING);
    T_EQ_INT(sp_format_parse("generic", &f), SP_OK);
    T_EQ_INT(f, SP_FMT_GENERIC);
    T_EQ_INT(sp_format_parse("splunk", &f), SP_ERR_INVALID);
    T_EQ_INT(sp_format_parse(NULL, &f), SP_ERR_INVALID);
    T_EQ_INT(f, SP_FMT_GENERIC);
    T_EQ_STR(sp_format_name(SP_FMT_DEFENDER_STREAMING), "defender-streaming");
    size_t n;
    const char *const *reasons = sp_normalize_reasons(&n);
    T_EQ_INT(n, 12);
    T_EQ_STR(reasons[0], "not_json");
    T_EQ_STR(reasons[n - 1], "bad_tenant");
}

static void test_graph_alert(void)
{
    struct run r;
    if (!run_file(&r, FIX "graph_alert.json", NULL))
        return;
    T_EQ_INT(r.msg.n_rejects, 0);
    T_EQ_INT(r.msg.n_alerts, 1);
    struct sp_alert *a = alert_by_id(&r.msg, "graph:da11112222333344445555_1");
    T_OK(a != NULL);
    if (!a) {
        run_free(&r);
        return;
    }
    char buf[32];
    T_EQ_STR(a->source, "graph");
    T_EQ_STR(a->tenant, "7a1c9e42-55d0-4c1b-9a8e-0f2d6b3c4e51");
    T_EQ_STR(a->provider, "microsoftDefenderForEndpoint");
    T_EQ_STR(a->provider_alert_id, "da11112222333344445555_1");
    T_EQ_STR(a->provider_incident_id, "4711");
    T_EQ_STR(a->title, "Encoded PowerShell launched by an Office document");
    T_EQ_INT(a->severity, SP_SEV_HIGH);
    T_EQ_STR(a->severity_original, "high");
    T_EQ_STR(a->status, "in_progress");
    T_EQ_STR(a->category, "Execution");
    T_EQ_STR(a->detector, "0c1d2e3f-4a5b-6c7d-8e9f-a0b1c2d3e4f5");
    T_EQ_INT(a->part, SP_PART_WHOLE);
    T_EQ_INT(a->n_tactics, 1);
    T_EQ_STR(a->tactics[0], "execution");
    T_EQ_INT(a->n_techniques, 3);
    T_EQ_STR(a->techniques[0], "T1059.001");
    T_EQ_STR(a->techniques[1], "T1204.002");
    T_EQ_STR(a->techniques[2], "T1105");
    T_EQ_STR(time_str(a->created, buf), "2024-03-05T10:15:30.123456Z");
    T_EQ_STR(time_str(a->updated, buf), "2024-03-05T10:20:00Z");
    T_EQ_STR(time_str(a->first_activity, buf), "2024-03-05T10:12:01.500Z");
    T_EQ_STR(time_str(a->last_activity, buf), "2024-03-05T10:14:59Z");
    T_EQ_INT(a->n_links, 2);
    T_EQ_STR(a->links[0].name, "alert");
    T_CONTAINS(a->links[0].url, "/alerts/da11112222333344445555_1");
    T_EQ_STR(a->links[1].name, "incident");
    T_OK(a->raw == r.msg.payload);

    /* device */
    const struct sp_entity *host = ent(a, "host:ws-042.corp.contoso.com");
    T_OK(host != NULL);
    T_EQ_STR(host ? host->type : NULL, "host");
    T_EQ_STR(idv(host, "hostname"), "WS-042");
    T_EQ_STR(idv(host, "fqdn"), "WS-042.corp.contoso.com");
    T_EQ_STR(idv(host, "device_id"),
             "f00dfeedf00dfeedf00dfeedf00dfeedf00dfeed");
    T_EQ_STR(idv(host, "aad_device_id"),
             "9c8b7a65-4321-4fed-cba9-876543210fed");
    T_EQ_STR(idv(host, "os_build"), "22631");
    T_EQ_STR(idv(host, "external_ip"), "203.0.113.7");
    T_EQ_INT(count_ids(host, "ip"), 2); /* mapped v4 folded into v4 */
    T_OK(has_role(host, "compromised"));
    T_EQ_INT(count_type(a, "host"), 1);
    /* logged-on user */
    const struct sp_entity *lu = ent(a, "account:contoso\\akhan");
    T_OK(has_role(lu, "logged-on"));
    /* process, its image file, its user and its parent */
    const struct sp_entity *proc = ent(
        a,
        "process:host:ws-042.corp.contoso.com:7312:2024-03-05T10:12:01.500Z");
    T_OK(proc != NULL);
    T_EQ_STR(idv(proc, "pid"), "7312");
    T_CONTAINS(idv(proc, "command_line"), "-EncodedCommand SQBFAFgA");
    T_EQ_STR(idv(proc, "image_path"),
             "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe");
    T_EQ_STR(
        idv(proc, "image"),
        "file:sha256:"
        "aaaabbbbccccddddeeeeffff0000111122223333444455556666777788889999");
    T_EQ_STR(idv(proc, "user"), "account:akhan@contoso.com");
    T_EQ_STR(idv(proc, "parent"),
             "process:host:ws-042.corp.contoso.com:4120:2024-03-05T10:11:40Z");
    T_EQ_STR(idv(proc, "parent_pid"), "4120");
    T_EQ_STR(idv(proc, "host"), "host:ws-042.corp.contoso.com");
    T_OK(has_role(proc, "attacker"));
    const struct sp_entity *parent = ent(
        a, "process:host:ws-042.corp.contoso.com:4120:2024-03-05T10:11:40Z");
    T_CONTAINS(idv(parent, "image_path"), "WINWORD.EXE");
    const struct sp_entity *img = ent(
        a, "file:sha256:"
           "aaaabbbbccccddddeeeeffff0000111122223333444455556666777788889999");
    T_EQ_STR(idv(img, "sha1"), "0123456789abcdef0123456789abcdef01234567");
    T_EQ_STR(idv(img, "name"), "powershell.exe");
    T_EQ_STR(idv(img, "publisher"), "Microsoft Corporation");
    /* user evidence merged with the process's user (same UPN) */
    const struct sp_entity *user = ent(a, "account:akhan@contoso.com");
    T_EQ_STR(idv(user, "sid"), "S-1-5-21-1004336348-1177238915-682003330-1105");
    T_EQ_STR(idv(user, "aad_user_id"), "5d3e1f0a-2b4c-4d6e-8f90-a1b2c3d4e5f6");
    T_EQ_INT(count_ids(user, "upn"), 2);
    T_OK(has_role(user, "compromised"));
    T_EQ_INT(count_type(a, "account"), 2);
    /* file evidence by md5 */
    const struct sp_entity *doc =
        ent(a, "file:md5:0cc175b9c0f1b6a831c399e269772661");
    T_EQ_STR(idv(doc, "path"),
             "C:\\Users\\akhan\\Downloads\\Invoice_0342.docm");
    T_EQ_STR(idv(doc, "host"), "host:ws-042.corp.contoso.com");
    T_OK(has_role(doc, "created"));
    /* ip (IPv6, upper-case, uncompressed), url */
    const struct sp_entity *ip = ent(a, "ip:2001:db8::2a");
    T_EQ_STR(idv(ip, "country"), "NL");
    T_EQ_STR(idv(ip, "city"), "Amsterdam");
    T_OK(has_role(ip, "destination"));
    const struct sp_entity *url =
        ent(a, "url:https://stage2.example-cdn.net/payload/a.ps1");
    T_EQ_STR(idv(url, "url"),
             "HTTPS://Stage2.Example-Cdn.NET:443/payload/a.ps1#frag");
    T_OK(has_role(url, "command-and-control"));
    /* registry key and value */
    const struct sp_entity *rk =
        ent(a, "registry:hkey_current_"
               "user\\software\\microsoft\\windows\\currentversion\\run");
    T_EQ_STR(rk ? rk->type : NULL, "registry");
    T_EQ_STR(
        idv(rk, "key"),
        "HKEY_CURRENT_USER\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run");
    const struct sp_entity *rv = ent(a, "registry:hkey_current_"
                                        "user\\software\\microsoft\\windows\\cu"
                                        "rrentversion\\run\\onedriveupdate");
    T_EQ_STR(rv ? rv->type : NULL, "registry-value");
    T_EQ_STR(idv(rv, "value_name"), "OneDriveUpdate");
    T_CONTAINS(idv(rv, "value_data"), "upd.ps1");
    T_EQ_STR(idv(rv, "host"), "host:ws-042.corp.contoso.com");
    /* an evidence type without a mapping is kept generically */
    T_EQ_INT(count_type(a, "kubernetes-pod"), 1);
    for (size_t i = 0; i < a->n_entities; i++)
        if (strcmp(a->entities[i].type, "kubernetes-pod") == 0) {
            T_OK(a->entities[i].key == NULL);
            T_EQ_STR(idv(&a->entities[i], "name"), "billing-api-7d9f");
        }
    T_EQ_INT(a->n_entities, 12);
    run_free(&r);
}

static void test_graph_page(void)
{
    struct run r;
    if (!run_file(&r, FIX "graph_page.json", NULL))
        return;
    T_EQ_INT(r.msg.n_rejects, 0);
    T_EQ_INT(r.msg.n_alerts, 2);
    struct sp_alert *a = alert_by_id(&r.msg, "graph:fa22223333444455556666_2");
    T_OK(a != NULL);
    if (a) {
        T_EQ_STR(a->provider_incident_id, "4711"); /* a number in JSON */
        T_EQ_INT(a->severity, SP_SEV_MEDIUM);
        T_EQ_STR(a->status, "new");
        T_EQ_STR(a->tactics[0], "initial-access");
        /* the raw span is this alert, not the page */
        T_OK(a->raw && a->raw[0] == '{' && a->raw_len < r.msg.len);
        const struct sp_entity *mb = ent(a, "mailbox:akhan@contoso.com");
        T_EQ_STR(idv(mb, "address"), "AKhan@contoso.com");
        T_EQ_STR(idv(mb, "account"), "account:akhan@contoso.com");
        T_OK(has_role(mb, "victim"));
        T_OK(has_role(mb, "recipient")); /* merged from the message */
        const struct sp_entity *msg =
            ent(a, "message:8b2f1c3a-0d4e-4f5a-9b6c-7d8e9f0a1b2c");
        T_EQ_STR(idv(msg, "subject"), "Invoice 0342 overdue");
        T_EQ_STR(idv(msg, "sender"), "billing@fabrikam-invoices.example");
        T_EQ_STR(idv(msg, "recipient"), "akhan@contoso.com");
        T_EQ_STR(idv(msg, "sender_ip"), "198.51.100.23");
        T_EQ_STR(idv(msg, "delivery_action"), "delivered");
        T_EQ_STR(idv(msg, "received"), "2024-03-05T09:55:10Z");
        const struct sp_entity *snd =
            ent(a, "mailbox:billing@fabrikam-invoices.example");
        T_OK(has_role(snd, "sender"));
        const struct sp_entity *ip = ent(a, "ip:198.51.100.23");
        T_OK(has_role(ip, "sender") && has_role(ip, "source"));
        /* the message's URL and the URL evidence are one entity */
        const struct sp_entity *u = ent(
            a,
            "url:https://login.fabrikam-invoices.example/o365/signin?u=akhan");
        T_EQ_INT(count_ids(u, "url"), 2);
        T_OK(ent(a, "url:http://fabrikam-invoices.example/inv/0342.docm") !=
             NULL);
        const struct sp_entity *app = ent(a, "cloud-app:20893");
        T_EQ_STR(idv(app, "name"), "Microsoft Exchange Online");
        T_OK(has_role(app, "contextual"));
        T_EQ_INT(count_type(a, "mail-cluster"), 1);
        T_EQ_INT(count_type(a, "url"), 2);
    }
    struct sp_alert *b = alert_by_id(&r.msg, "graph:da33334444555566667777_3");
    T_OK(b != NULL);
    if (b) {
        T_EQ_INT(b->severity, SP_SEV_INFORMATIONAL);
        T_EQ_STR(b->status, "resolved");
        T_EQ_STR(b->tactics[0], "command-and-control");
        T_EQ_INT(b->n_techniques, 0);
        T_OK(ent(b, "host:ws-042.corp.contoso.com") != NULL);
        T_OK(has_role(ent(b, "ip:2001:db8::2a"), "destination"));
        T_OK(has_role(ent(b, "ip:10.20.30.42"), "source"));
        T_OK(b->provider_incident_id &&
             !strcmp(b->provider_incident_id, "4711"));
    }
    run_free(&r);
}

/* Graph incidents with expanded alerts: each alert is normalized. */
static void test_graph_incident(void)
{
    const char *doc =
        "{\"value\":[{\"id\":\"77\",\"displayName\":\"Multi-stage\","
        "\"incidentWebUrl\":\"https://security.microsoft.com/incidents/77\","
        "\"alerts\":[{\"id\":\"inc-a1\",\"title\":\"one\",\"severity\":\"low\","
        "\"evidence\":[]},{\"id\":\"inc-a2\",\"title\":\"two\","
        "\"incidentId\":\"78\",\"evidence\":[]}]},"
        "{\"id\":\"79\",\"displayName\":\"empty\",\"alerts\":[]}]}";
    struct run r;
    run_str(&r, doc, NULL);
    T_EQ_INT(r.msg.n_alerts, 2);
    T_EQ_INT(r.msg.n_rejects, 1);
    T_OK(has_reject(&r.msg, "empty"));
    struct sp_alert *a = alert_by_id(&r.msg, "graph:inc-a1");
    T_EQ_STR(a ? a->provider_incident_id : NULL, "77");
    struct sp_alert *b = alert_by_id(&r.msg, "graph:inc-a2");
    T_EQ_STR(b ? b->provider_incident_id : NULL, "78");
    run_free(&r);
}

static void test_sentinel_rows(void)
{
    size_t len;
    char *text = slurp(FIX "sentinel_rows.jsonl", &len);
    if (!text)
        return;
    char *save = NULL;
    char *line = strtok_r(text, "\n", &save);
    struct run r;
    char buf[32];

    /* Row 1: the current column set, every entity type, $id/$ref. */
    run_str(&r, line, NULL);
    T_EQ_INT(r.msg.n_rejects, 0);
    struct sp_alert *a =
        alert_by_id(&r.msg, "sentinel:c3d4e5f6-a7b8-4c9d-8e0f-1a2b3c4d5e6f");
    T_OK(a != NULL);
    if (a) {
        T_EQ_STR(a->title, "Office application spawned encoded PowerShell");
        T_EQ_INT(a->severity, SP_SEV_HIGH);
        T_EQ_STR(a->severity_original, "High");
        T_EQ_STR(a->status, "in_progress");
        T_EQ_STR(a->provider, "Azure Sentinel");
        T_EQ_STR(a->provider_incident_id,
                 "8d9e0f1a-2b3c-4d5e-9f6a-7b8c9d0e1f2a");
        T_EQ_INT(a->n_tactics, 2);
        T_EQ_STR(a->tactics[0], "execution");
        T_EQ_STR(a->tactics[1], "command-and-control");
        T_EQ_INT(a->n_techniques, 2);
        T_EQ_STR(a->techniques[0], "T1059");
        T_EQ_STR(a->techniques[1], "T1071.001");
        T_EQ_STR(time_str(a->created, buf), "2024-03-05T10:16:02.123Z");
        T_EQ_STR(time_str(a->updated, buf), "2024-03-05T10:16:05.500Z");
        T_EQ_STR(time_str(a->first_activity, buf), "2024-03-05T10:12:01.500Z");
        T_EQ_INT(a->n_links, 2);
        const struct sp_entity *h = ent(a, "host:ws-042.corp.contoso.com");
        T_OK(has_role(h, "compromised"));
        T_EQ_STR(idv(h, "device_id"),
                 "f00dfeedf00dfeedf00dfeedf00dfeedf00dfeed");
        T_EQ_INT(count_type(a, "host"), 1);
        const struct sp_entity *acct = ent(a, "account:akhan@contoso.com");
        T_EQ_STR(idv(acct, "host"), "host:ws-042.corp.contoso.com");
        T_EQ_STR(idv(acct, "upn"), "akhan@contoso.com");
        const char *pk = "process:host:ws-042.corp.contoso.com:7312:2024-03-"
                         "05T10:12:01.500Z";
        const struct sp_entity *p = ent(a, pk);
        T_OK(p != NULL);
        T_EQ_STR(idv(p, "pid"), "7312"); /* from 0x1c90 */
        T_EQ_STR(idv(p, "user"), "account:akhan@contoso.com");
        T_EQ_STR(
            idv(p, "image"),
            "file:sha256:"
            "aaaabbbbccccddddeeeeffff0000111122223333444455556666777788889999");
        T_EQ_STR(
            idv(p, "parent"),
            "process:host:ws-042.corp.contoso.com:4120:2024-03-05T10:11:40Z");
        T_EQ_STR(
            idv(p, "parent_image_path"),
            "C:\\Program Files\\Microsoft Office\\root\\Office16\\WINWORD.EXE");
        T_EQ_INT(count_type(a, "process"), 2);
        /* the image file absorbed both hashes; {"$ref":"5"} and
         * {"$ref":"6"} at the top level add nothing */
        const struct sp_entity *f = ent(
            a,
            "file:sha256:"
            "aaaabbbbccccddddeeeeffff0000111122223333444455556666777788889999");
        T_EQ_STR(idv(f, "sha1"), "0123456789abcdef0123456789abcdef01234567");
        T_EQ_STR(idv(f, "name"), "powershell.exe");
        T_EQ_INT(count_type(a, "file"), 2);
        T_EQ_STR(idv(ent(a, "ip:203.0.113.7"), "asn"), "64500");
        T_OK(ent(a, "ip:2001:db8::2a") != NULL);
        T_OK(ent(a, "domain:stage2.example-cdn.net") != NULL);
        T_OK(ent(a, "url:https://stage2.example-cdn.net/payload/a.ps1") !=
             NULL);
        T_EQ_STR(idv(ent(a, "mailbox:akhan@contoso.com"), "display_name"),
                 "Aisha Khan");
        const struct sp_entity *m =
            ent(a, "message:8b2f1c3a-0d4e-4f5a-9b6c-7d8e9f0a1b2c");
        T_EQ_STR(idv(m, "sender"), "billing@fabrikam-invoices.example");
        T_OK(has_role(ent(a, "ip:198.51.100.23"), "sender"));
        T_OK(ent(a, "url:https://login.fabrikam-invoices.example/o365/"
                    "signin?u=akhan") != NULL);
        T_EQ_STR(idv(ent(a, "cloud-app:20893"), "name"),
                 "Microsoft Exchange Online");
        T_OK(
            ent(a, "registry:hkey_current_"
                   "user\\software\\microsoft\\windows\\currentversion\\run") !=
            NULL);
        const struct sp_entity *rv =
            ent(a, "registry:hkey_current_"
                   "user\\software\\microsoft\\windows\\currentversion\\run\\on"
                   "edriveupdate");
        T_EQ_STR(idv(rv, "registry_key"),
                 "registry:hkey_current_"
                 "user\\software\\microsoft\\windows\\currentversion\\run");
        T_EQ_STR(idv(rv, "value_type"), "String");
        T_OK(ent(a,
                 "azure-resource:/subscriptions/"
                 "11111111-2222-3333-4444-555555555555/resourcegroups/rg-prod/"
                 "providers/microsoft.compute/virtualmachines/ws-042") != NULL);
        T_OK(ent(a, "malware:trojan:powershell/downloader.a") != NULL);
        const struct sp_entity *ls =
            ent(a, "logon-session:ws-042.corp.contoso.com:0x3e7");
        T_EQ_STR(idv(ls, "account"), "account:akhan@contoso.com");
        T_EQ_STR(idv(ent(a, "group:4c0ffee0-1234-4321-abcd-0123456789ab"),
                     "distinguished_name"),
                 "CN=Finance,OU=Groups,DC=corp,DC=contoso,DC=com");
        T_EQ_INT(count_type(a, "iotdevice"), 1);
        T_EQ_INT(a->n_entities, 22);
    }
    run_free(&r);

    /* Row 2: the legacy column set; a local account named by its host. */
    line = strtok_r(NULL, "\n", &save);
    run_str(&r, line, NULL);
    T_EQ_INT(r.msg.n_rejects, 0);
    a = r.msg.n_alerts ? r.msg.alerts[0] : NULL;
    T_EQ_STR(
        a ? a->id : NULL,
        "sentinel:2518000000000000000_9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a");
    if (a) {
        T_EQ_STR(a->title, "Volume shadow copies deleted");
        T_EQ_INT(a->severity, SP_SEV_MEDIUM);
        T_EQ_STR(a->status, "unknown");
        T_EQ_STR(time_str(a->first_activity, buf), "2024-02-28T22:05:11Z");
        T_OK(has_role(ent(a, "host:filesrv-01"), "compromised"));
        T_OK(ent(a, "account:filesrv-01\\svc_backup") != NULL);
        const struct sp_entity *p =
            ent(a, "process:host:filesrv-01:6512:2024-02-28T22:05:11.250Z");
        T_EQ_STR(idv(p, "command_line"),
                 "vssadmin.exe Delete Shadows /All /Quiet");
        T_EQ_STR(idv(p, "image"),
                 "file:path:c:\\windows\\system32\\vssadmin.exe");
    }
    run_free(&r);

    /* Row 3: VendorOriginalId only; a $ref cycle and a dangling $ref. */
    line = strtok_r(NULL, "\n", &save);
    run_str(&r, line, NULL);
    T_EQ_INT(r.msg.n_rejects, 0);
    a = r.msg.n_alerts ? r.msg.alerts[0] : NULL;
    T_EQ_STR(a ? a->id : NULL, "sentinel:legacy-vendor-0001");
    if (a) {
        T_EQ_INT(a->severity, SP_SEV_INFORMATIONAL);
        T_EQ_STR(a->status, "resolved");
        T_EQ_INT(a->n_tactics, 0); /* "Unknown" is dropped */
        T_EQ_INT(count_type(a, "process"), 3);
        T_OK(ent(a, "file:md5:0cc175b9c0f1b6a831c399e269772661") != NULL);
        T_EQ_INT(a->n_entities, 4);
    }
    run_free(&r);

    /* Row 4: Entities as a real array; bad ExtendedProperties ignored. */
    line = strtok_r(NULL, "\n", &save);
    run_str(&r, line, NULL);
    T_EQ_INT(r.msg.n_rejects, 0);
    a = r.msg.n_alerts ? r.msg.alerts[0] : NULL;
    if (a) {
        T_EQ_STR(a->id, "sentinel:array-entities-0001");
        T_EQ_INT(a->severity, SP_SEV_MEDIUM); /* Sev2 */
        T_EQ_STR(a->status, "resolved");      /* Dismissed */
        T_EQ_STR(time_str(a->created, buf), "2024-03-06T01:00:00Z");
        T_OK(ent(a, "account:contoso\\jdoe") != NULL);
        T_OK(ent(a, "ip:192.0.2.10") != NULL);
        T_EQ_STR(a->tenant, "default");
    }
    run_free(&r);
    free(text);
}

/* $ref chains longer than the bound and self references end, once. */
static void test_sentinel_refs(void)
{
    struct sp_buf b;
    sp_buf_init(&b, 0);
    sp_buf_puts(&b, "[");
    for (int i = 1; i <= 40; i++)
        sp_buf_printf(&b,
                      "%s{\"$id\":\"%d\",\"Type\":\"process\",\"ProcessId\":"
                      "\"%d\",\"ParentProcess\":{\"$ref\":\"%d\"}}",
                      i > 1 ? "," : "", i, i, i + 1);
    sp_buf_puts(&b, ",{\"$id\":\"41\",\"Type\":\"host\",\"HostName\":\"h\","
                    "\"Self\":{\"$ref\":\"41\"}}]");
    json_t *row = json_pack("{s:s,s:s,s:s}", "SystemAlertId", "refs-1",
                            "AlertName", "chains", "Entities", b.data);
    char *doc = json_dumps(row, JSON_COMPACT);
    struct run r;
    run_str(&r, doc, NULL);
    T_EQ_INT(r.msg.n_rejects, 0);
    struct sp_alert *a = r.msg.n_alerts ? r.msg.alerts[0] : NULL;
    T_EQ_INT(count_type(a, "process"), 40);
    T_EQ_INT(count_type(a, "host"), 1);
    run_free(&r);
    free(doc);
    json_decref(row);
    sp_buf_fini(&b);
}

/* Entities without "$id" are built once, like those with one. */
static void test_sentinel_no_id_once(void)
{
    const char *doc =
        "{\"SystemAlertId\":\"once-1\",\"Entities\":["
        "{\"Type\":\"account\",\"Name\":\"bob\"},"
        "{\"Type\":\"process\",\"ProcessId\":\"12\",\"CommandLine\":\"evil\"},"
        "{\"Type\":\"filehash\",\"Algorithm\":\"MD5\","
        "\"Value\":\"0123456789abcdef0123456789abcdef\"}]}";
    struct run r;
    run_str(&r, doc, NULL);
    struct sp_alert *a = r.msg.n_alerts ? r.msg.alerts[0] : NULL;
    T_OK(a != NULL);
    T_EQ_INT(a ? a->n_entities : 0, 3);
    T_EQ_INT(count_type(a, "process"), 1);
    T_EQ_INT(count_type(a, "account"), 1);
    T_EQ_INT(count_type(a, "file"), 1);
    run_free(&r);
    /* 300 accounts fit max_entities (500) with or without "$id" */
    for (int with_id = 0; with_id < 2; with_id++) {
        struct sp_buf b;
        sp_buf_init(&b, 0);
        sp_buf_puts(&b, "{\"SystemAlertId\":\"once-2\",\"Entities\":[");
        for (int i = 0; i < 300; i++) {
            sp_buf_printf(&b, "%s{", i ? "," : "");
            if (with_id)
                sp_buf_printf(&b, "\"$id\":\"%d\",", i);
            sp_buf_puts(&b, "\"Type\":\"process\",\"ProcessId\":\"12\"}");
        }
        sp_buf_puts(&b, "]}");
        run_str(&r, b.data, NULL);
        T_EQ_INT(r.msg.n_rejects, 0);
        a = r.msg.n_alerts ? r.msg.alerts[0] : NULL;
        T_EQ_INT(count_type(a, "process"), 300);
        run_free(&r);
        sp_buf_fini(&b);
    }
}

/* Sentinel "$id" lookups are a binary search, not a scan: 1,900 ids
 * (under the cap) resolved in a few comparisons each. */
static void test_sentinel_ref_index(void)
{
    enum { N = 1900 };
    struct sp_buf b;
    sp_buf_init(&b, 0);
    sp_buf_puts(&b, "{\"SystemAlertId\":\"idx-1\",\"Entities\":[");
    for (int i = 0; i < N; i++)
        sp_buf_printf(&b, "{\"$id\":%d},", i);
    sp_buf_puts(&b, "{\"Type\":\"host\",\"HostName\":\"h\",\"$id\":\"x\"},"
                    "{\"Type\":\"account\",\"Name\":\"bob\","
                    "\"Host\":{\"$ref\":\"x\"}}]}");
    unsigned long before = sp_nz_ref_probes;
    struct run r;
    run_str(&r, b.data, NULL);
    unsigned long probes = sp_nz_ref_probes - before;
    T_EQ_INT(r.msg.n_rejects, 0);
    struct sp_alert *a = r.msg.n_alerts ? r.msg.alerts[0] : NULL;
    T_EQ_INT(count_type(a, "host"), 1);
    T_EQ_STR(idv(ent(a, "account:h\\bob"), "host"), "host:h");
    /* a scan makes ~N*N; a binary search ~4 lookups x log2(N) per id */
    if (probes > (unsigned long)N * 64)
        T_FAILF("%lu comparisons for %d ids", probes, N);
    run_free(&r);
    sp_buf_fini(&b);
}

/* The reported shapes: 74,000 "$id" objects (and 62,000 in the string
 * form) are refused as too many entities, not resolved for a minute. */
static void test_sentinel_ref_cap(void)
{
    struct sp_normalize_opts o;
    sp_normalize_opts_default(&o);
    o.jlim.max_bytes = (size_t)4 << 20;
    struct sp_buf b;
    sp_buf_init(&b, 0);
    sp_buf_puts(&b, "{\"SystemAlertId\":\"x\",\"Entities\":[");
    for (int i = 0; i < 74000; i++)
        sp_buf_printf(&b, "%s{\"$id\":%d}", i ? "," : "", i);
    sp_buf_puts(&b, "]}");
    unsigned long before = sp_nz_ref_probes;
    expect_reject(b.data, b.len, "too_many_entities", &o);
    T_OK(sp_nz_ref_probes - before < 100000);
    sp_buf_reset(&b);
    sp_buf_puts(&b, "{\"SystemAlertId\":\"x\",\"Entities\":\"[");
    for (int i = 0; i < 62000; i++)
        sp_buf_printf(&b, "%s{\\\"$id\\\":%d}", i ? "," : "", i);
    sp_buf_puts(&b, "]\"}");
    expect_reject(b.data, b.len, "too_many_entities", &o);
    /* the cap follows max_entities: 4 ids per entity allowed */
    o.lim.max_entities = 10;
    sp_buf_reset(&b);
    sp_buf_puts(&b, "{\"SystemAlertId\":\"x\",\"Entities\":[");
    for (int i = 0; i < 40; i++)
        sp_buf_printf(&b, "%s{\"$id\":%d}", i ? "," : "", i);
    sp_buf_puts(&b, "]}");
    struct run r;
    run_str(&r, b.data, &o);
    T_EQ_INT(r.msg.n_alerts, 1);
    run_free(&r);
    sp_buf_reset(&b);
    sp_buf_puts(&b, "{\"SystemAlertId\":\"x\",\"Entities\":[");
    for (int i = 0; i < 41; i++)
        sp_buf_printf(&b, "%s{\"$id\":%d}", i ? "," : "", i);
    sp_buf_puts(&b, "]}");
    expect_reject(b.data, b.len, "too_many_entities", &o);
    sp_buf_fini(&b);
}

/* A Log Analytics query response: each row is a SecurityAlert. */
static void test_la_tables(void)
{
    struct run r;
    if (!run_file(&r, FIX "la_response.json", NULL))
        return;
    T_EQ_INT(r.msg.n_alerts, 2);
    T_EQ_INT(r.msg.n_rejects, 1);
    T_OK(has_reject(&r.msg, "wrong_type"));
    struct sp_alert *a = alert_by_id(&r.msg, "sentinel:la-row-0001");
    T_OK(a != NULL);
    if (a) {
        T_EQ_STR(a->title, "Brute force against RDP");
        T_EQ_STR(a->techniques[0], "T1110");
        T_EQ_STR(a->tactics[0], "credential-access");
        T_OK(ent(a, "host:jump-01") != NULL);
        /* raw is the row as an object keyed by column */
        T_OK(a->raw && strncmp(a->raw, "{\"TenantId\":", 12) == 0);
        json_error_t je;
        json_t *j = json_loadb(a->raw, a->raw_len, 0, &je);
        T_OK(j != NULL);
        T_EQ_STR(json_string_value(json_object_get(j, "SystemAlertId")),
                 "la-row-0001");
        json_decref(j);
    }
    run_free(&r);
    const char *empty =
        "{\"tables\":[{\"columns\":[{\"name\":\"a\"}],\"rows\":[]}]}";
    expect_reject(empty, strlen(empty), "empty", NULL);
    const char *broken =
        "{\"tables\":[{\"columns\":[{\"nm\":\"a\"}],\"rows\":[[1]]}]}";
    expect_reject(broken, strlen(broken), "wrong_type", NULL);
}

/* Each column's name is looked up once per table, not once per cell:
 * the reported shape (a column object with 99,000 junk members before
 * its name, 50,000 rows) makes two lookups. */
static void test_la_column_names(void)
{
    struct sp_normalize_opts o;
    sp_normalize_opts_default(&o);
    o.jlim.max_bytes = (size_t)4 << 20;
    struct sp_buf b;
    sp_buf_init(&b, 0);
    sp_buf_puts(&b, "{\"tables\":[{\"columns\":[{");
    for (int i = 0; i < 99000; i++)
        sp_buf_puts(&b, "\"j\":0,");
    sp_buf_puts(&b, "\"name\":\"SystemAlertId\"}],\"rows\":[");
    for (int i = 0; i < 50000; i++)
        sp_buf_printf(&b, "%s[%d]", i ? "," : "", i);
    sp_buf_puts(&b, "]}]}");
    unsigned long before = sp_nz_col_lookups;
    struct run r;
    run_bytes(&r, b.data, b.len, &o);
    T_EQ_INT(sp_nz_col_lookups - before, 2);
    T_EQ_INT(r.msg.n_alerts + r.msg.n_rejects, 50000);
    run_free(&r);
    sp_buf_fini(&b);
}

static void test_defender_streaming(void)
{
    size_t len;
    char *text = slurp(FIX "defender_streaming.jsonl", &len);
    if (!text)
        return;
    char *save = NULL;
    size_t n = 0;
    char buf[32];
    for (char *line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save), n++) {
        struct run r;
        run_str(&r, line, NULL);
        T_EQ_INT(r.msg.n_rejects, 0);
        T_EQ_INT(r.msg.n_alerts, 1);
        struct sp_alert *a = r.msg.n_alerts ? r.msg.alerts[0] : NULL;
        if (!a) {
            run_free(&r);
            continue;
        }
        T_EQ_STR(a->id, "defender-streaming:da44445555666677778888_4");
        T_EQ_STR(a->source, "defender-streaming");
        T_EQ_STR(a->tenant, "7a1c9e42-55d0-4c1b-9a8e-0f2d6b3c4e51");
        T_EQ_STR(a->title, "Ransomware behavior detected in the file system");
        if (n == 0) {
            T_EQ_INT(a->part, SP_PART_INFO);
            T_EQ_INT(a->severity, SP_SEV_HIGH);
            T_EQ_STR(a->status, "new");
            T_EQ_STR(a->provider, "Microsoft Defender for Endpoint");
            T_EQ_INT(a->n_techniques, 3);
            T_EQ_STR(a->techniques[0], "T1486");
            T_EQ_STR(a->techniques[2], "T1059.003");
            T_EQ_STR(a->tactics[0], "impact");
            T_EQ_STR(time_str(a->created, buf), "2024-03-05T10:19:58.500Z");
            T_EQ_INT(a->n_entities, 0);
        } else {
            T_EQ_INT(a->part, SP_PART_EVIDENCE);
            T_EQ_STR(a->tactics[0], "impact"); /* Categories ["Impact"] */
        }
        switch (n) {
        case 1: {
            const struct sp_entity *h =
                ent(a, "host:filesrv-01.corp.contoso.com");
            T_OK(has_role(h, "impacted"));
            T_EQ_STR(idv(h, "ip"), "10.20.40.11");
            T_EQ_STR(idv(h, "device_id"),
                     "0badc0de0badc0de0badc0de0badc0de0badc0de");
            break;
        }
        case 2: {
            const struct sp_entity *f =
                ent(a, "file:sha256:"
                       "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0"
                       "123456789");
            T_OK(has_role(f, "related"));
            T_EQ_STR(idv(f, "threat_family"), "Ransom:Win32/Lockbit");
            T_EQ_STR(idv(f, "path"), "C:\\ProgramData\\Intel\\locker.exe");
            break;
        }
        case 3: {
            const struct sp_entity *p =
                ent(a, "process:host:filesrv-01.corp.contoso.com:9120:2024-03-"
                       "05T10:19:40Z");
            T_OK(has_role(p, "related"));
            T_EQ_STR(idv(p, "user"), "account:contoso\\svc_backup");
            T_CONTAINS(idv(p, "command_line"), "locker.exe -path");
            T_OK(ent(a, "account:contoso\\svc_backup") != NULL);
            break;
        }
        case 4:
            T_OK(has_role(ent(a, "ip:203.0.113.99"), "related"));
            break;
        case 5:
            T_OK(ent(a, "url:http://pay-now.example-onion.net/ticket?id=7") !=
                 NULL);
            break;
        case 6:
            T_OK(
                has_role(ent(a, "account:svc_backup@contoso.com"), "impacted"));
            break;
        case 7:
            T_EQ_STR(idv(ent(a, "message:aa11bb22-cc33-4d44-8e55-ff6677889900"),
                         "recipient"),
                     "it@contoso.com");
            break;
        case 8:
            T_EQ_STR(idv(ent(a, "registry:hkey_local_"
                                "machine\\software\\policies\\microsoft\\window"
                                "s defender\\disableantispyware"),
                         "value_data"),
                     "1");
            break;
        case 9:
            T_EQ_INT(count_type(a, "mail-cluster"), 1);
            break;
        }
        run_free(&r);
    }
    T_EQ_INT(n, 10);
    free(text);
}

static void test_generic(void)
{
    size_t len;
    char *text = slurp(FIX "generic.jsonl", &len);
    if (!text)
        return;
    char buf[32];
    char *save = NULL;
    char *line = strtok_r(text, "\n", &save);
    struct run r;
    run_str(&r, line, NULL);
    T_EQ_INT(r.msg.n_rejects, 0);
    struct sp_alert *a = r.msg.n_alerts ? r.msg.alerts[0] : NULL;
    if (a) {
        T_EQ_STR(a->id, "generic:edr-2024-000117");
        T_EQ_STR(a->source, "generic");
        T_EQ_STR(a->tenant, "contoso-prod");
        T_EQ_STR(a->provider, "AcmeEDR");
        T_EQ_STR(a->provider_incident_id, "case-88");
        T_EQ_INT(a->severity, SP_SEV_HIGH);
        T_EQ_STR(a->severity_original, "Critical");
        T_EQ_STR(a->status, "new");
        T_EQ_INT(a->n_tactics, 2);
        T_EQ_STR(a->tactics[1], "defense-evasion");
        T_EQ_INT(a->n_techniques, 2);
        T_EQ_STR(time_str(a->created, buf), "2024-03-05T10:20:00Z");
        T_EQ_STR(time_str(a->first_activity, buf), "2024-03-05T10:19:00Z");
        T_EQ_INT(a->n_links, 2);
        T_EQ_STR(a->links[1].name, "runbook");
        /* keys derived from identifiers; "machine" merged into the host */
        const struct sp_entity *h = ent(a, "host:filesrv-01.corp.contoso.com");
        T_OK(has_role(h, "compromised") && has_role(h, "impacted"));
        T_EQ_INT(count_type(a, "host"), 1);
        T_OK(ent(a, "account:svc_backup@contoso.com") != NULL);
        T_OK(ent(a, "ip:10.20.40.11") != NULL);
        T_OK(has_role(ent(a, "file:sha256:"
                             "abcdef0123456789abcdef0123456789abcdef0123456789a"
                             "bcdef0123456789"),
                      "created"));
        T_OK(ent(a, "process:host:filesrv-01.corp.contoso.com:9120:2024-03-"
                    "05T10:19:40Z") != NULL);
        T_OK(ent(a, "url:http://pay-now.example-onion.net/ticket?id=7") !=
             NULL);
        const struct sp_entity *c = ent(a, "custom-thing:abc");
        T_EQ_STR(c ? c->type : NULL, "custom-thing");
        T_EQ_STR(idv(c, "some_name"), "x");
        T_EQ_INT(count_ids(c, "multi"), 2);
    }
    run_free(&r);
    line = strtok_r(NULL, "\n", &save);
    run_str(&r, line, NULL);
    a = r.msg.n_alerts ? r.msg.alerts[0] : NULL;
    if (a) {
        T_EQ_STR(a->id, "generic:min-1");
        T_EQ_STR(a->tenant, "default");
        T_EQ_STR(a->status, "unknown");
        T_EQ_INT(a->severity, SP_SEV_UNKNOWN);
        T_OK(a->severity_original == NULL);
    }
    run_free(&r);
    line = strtok_r(NULL, "\n", &save);
    run_str(&r, line, NULL);
    a = r.msg.n_alerts ? r.msg.alerts[0] : NULL;
    if (a) {
        T_EQ_INT(a->severity, SP_SEV_MEDIUM); /* the number 2 */
        T_EQ_STR(a->status, "resolved");
        T_EQ_STR(a->tactics[0], "initial-access");
        T_EQ_STR(a->techniques[1], "T1059.001");
    }
    run_free(&r);
    free(text);

    /* tenant for documents without one */
    struct sp_normalize_opts o;
    sp_normalize_opts_default(&o);
    o.default_tenant = "acme";
    run_str(&r, "{\"id\":\"x1\",\"title\":\"t\"}", &o);
    T_EQ_STR(r.msg.n_alerts ? r.msg.alerts[0]->tenant : NULL, "acme");
    run_free(&r);
    run_str(&r, "{\"id\":\"x2\",\"tenantId\":\"t-9\"}", &o);
    T_EQ_STR(r.msg.n_alerts ? r.msg.alerts[0]->tenant : NULL, "t-9");
    run_free(&r);
}

/* A generic numeric severity is the number, however JSON writes it. */
/* One tenant, one spelling: blanks around it dropped; an overlong tenant
 * or one with control characters is a reject, not a new tenant. */
static void test_tenant_checked(void)
{
    struct run r;
    run_str(&r, "{\"id\":\"t1\",\"source\":\"x\",\"title\":\"t\","
                "\"tenant\":\"  contoso \"}", NULL);
    T_EQ_INT(r.msg.n_alerts, 1);
    if (r.msg.n_alerts)
        T_EQ_STR(r.msg.alerts[0]->tenant, "contoso");
    run_free(&r);
    /* A tenant of blanks only names none: the default tenant, never an
     * empty tenant string that correlation would key on. */
    run_str(&r, "{\"id\":\"t-blank\",\"source\":\"x\",\"title\":\"t\","
                "\"tenant\":\" \\t \"}", NULL);
    T_EQ_INT(r.msg.n_alerts, 1);
    if (r.msg.n_alerts)
        T_EQ_STR(r.msg.alerts[0]->tenant, "default");
    run_free(&r);
    char doc[512], long_tenant[200];
    memset(long_tenant, 'a', sizeof(long_tenant) - 1);
    long_tenant[sizeof(long_tenant) - 1] = '\0';
    /* DEL (U+007F) is a control character too */
    const char *bad[] = {long_tenant, "con\\u0001toso", "con\\ntoso",
                         "con\\u007ftoso"};
    for (size_t i = 0; i < SP_ARRAY_SIZE(bad); i++) {
        snprintf(doc, sizeof(doc), "{\"id\":\"t%zu\",\"source\":\"x\","
                 "\"title\":\"t\",\"tenant\":\"%s\"}", i, bad[i]);
        run_str(&r, doc, NULL);
        T_EQ_INT(r.msg.n_alerts, 0);
        T_EQ_INT(r.msg.n_rejects, 1);
        if (r.msg.n_rejects)
            T_EQ_STR(r.msg.rejects[0].reason, "bad_tenant");
        run_free(&r);
    }
    /* Every reject carries a reason sp_normalize_reasons() lists (the
     * decode stage counts rejects by that list): a Sentinel record whose
     * TenantId holds a newline (normalize_fuzz input) was rejected as
     * bad_tenant, a reason missing from the list. */
    run_str(&r, "{\"TenantId\":\"\\n\",\"AlertName\":\"\"}", NULL);
    T_EQ_INT(r.msg.n_rejects, 1);
    if (r.msg.n_rejects) {
        size_t n;
        const char *const *reasons = sp_normalize_reasons(&n);
        bool listed = false;
        for (size_t i = 0; i < n; i++)
            listed = listed || !strcmp(reasons[i], r.msg.rejects[0].reason);
        T_EQ_STR(r.msg.rejects[0].reason, "bad_tenant");
        T_OK(listed);
    }
    run_free(&r);
    /* 128 bytes is still a tenant. */
    long_tenant[128] = '\0';
    snprintf(doc, sizeof(doc), "{\"id\":\"t9\",\"source\":\"x\","
             "\"title\":\"t\",\"tenant\":\"%s\"}", long_tenant);
    run_str(&r, doc, NULL);
    T_EQ_INT(r.msg.n_alerts, 1);
    run_free(&r);
}

/* Entities merge only when type AND key agree (docs/alert-format.md):
 * a generic alert may give any key, and an account that was handed a
 * host's key must stay an account of its own, not add its identifiers
 * to the host. */
static void test_merge_needs_same_type(void)
{
    struct run r;
    run_str(&r,
            "{\"id\":\"mt-1\",\"title\":\"t\",\"entities\":["
            "{\"type\":\"host\",\"key\":\"host:x\",\"ids\":{\"hostname\":\"x\"}},"
            "{\"type\":\"account\",\"key\":\"host:x\",\"ids\":{\"name\":\"x\"}}]}",
            NULL);
    struct sp_alert *a = r.msg.n_alerts ? r.msg.alerts[0] : NULL;
    T_OK(a != NULL);
    if (a) {
        T_EQ_INT(a->n_entities, 2);
        T_EQ_INT(count_type(a, "host"), 1);
        T_EQ_INT(count_type(a, "account"), 1);
        const struct sp_entity *h = ent(a, "host:x");
        T_EQ_INT(h ? h->n_ids : 0, 1);
    }
    run_free(&r);
}

/* A document with an "id" is a record even when it has a "records"
 * member of its own (a generic alert may carry any field): only an object
 * without an id is an Event Hubs envelope. */
static void test_records_member_of_a_record(void)
{
    struct run r;
    run_str(&r, "{\"id\":\"rm-1\",\"title\":\"t\",\"records\":[1]}", NULL);
    T_EQ_INT(r.msg.n_rejects, 0);
    T_EQ_INT(r.msg.n_alerts, 1);
    T_EQ_STR(r.msg.n_alerts ? r.msg.alerts[0]->id : NULL, "generic:rm-1");
    run_free(&r);
}

static void test_generic_numeric_severity(void)
{
    static const struct {
        const char *sev;
        enum sp_severity want;
    } cases[] = {
        {"3", SP_SEV_HIGH},     {"3.0", SP_SEV_HIGH},
        {"4e0", SP_SEV_HIGH},   {"2.00", SP_SEV_MEDIUM},
        {"1E0", SP_SEV_LOW},    {"0.0", SP_SEV_INFORMATIONAL},
        {"-0", SP_SEV_INFORMATIONAL},
        {"2.5", SP_SEV_UNKNOWN}, {"5", SP_SEV_UNKNOWN},
        {"-1", SP_SEV_UNKNOWN},  {"1e300", SP_SEV_UNKNOWN},
    };
    for (size_t i = 0; i < SP_ARRAY_SIZE(cases); i++) {
        char doc[160];
        snprintf(doc, sizeof(doc),
                 "{\"id\":\"sev-%zu\",\"source\":\"x\",\"title\":\"t\","
                 "\"severity\":%s}", i, cases[i].sev);
        struct run r;
        run_str(&r, doc, NULL);
        struct sp_alert *a = r.msg.n_alerts ? r.msg.alerts[0] : NULL;
        T_OK(a != NULL);
        if (a && a->severity != cases[i].want)
            T_FAILF("severity %s: got %s", cases[i].sev,
                    sp_severity_name(a->severity));
        if (a)
            T_EQ_STR(a->severity_original, cases[i].sev);
        run_free(&r);
    }
}

/* Keys as docs/alert-format.md promises: a domain's trailing dot
 * dropped, an address with blanks around it still an address, a device
 * id lower-case in a process key and never a key with a line break. */
static void test_key_canon(void)
{
    const char *doc =
        "{\"id\":\"keys-1\",\"source\":\"x\",\"title\":\"t\",\"entities\":["
        "{\"type\":\"dns\",\"ids\":{\"name\":\"Evil.COM.\"}},"
        "{\"type\":\"ip\",\"ids\":{\"address\":\" 10.0.0.1\\t\"}},"
        "{\"type\":\"process\",\"ids\":{\"pid\":\"12\","
        "\"creation_time\":\"2024-01-01T00:00:00Z\",\"device_id\":\"ABCdef\"}},"
        "{\"type\":\"process\",\"ids\":{\"pid\":\"13\","
        "\"creation_time\":\"2024-01-01T00:00:00Z\","
        "\"device_id\":\"a\\nprocess:x\"}}]}";
    struct run r;
    run_str(&r, doc, NULL);
    struct sp_alert *a = r.msg.n_alerts ? r.msg.alerts[0] : NULL;
    T_OK(a != NULL);
    T_OK(ent(a, "domain:evil.com") != NULL);
    T_OK(ent(a, "ip:10.0.0.1") != NULL);
    T_OK(ent(a, "process:abcdef:12:2024-01-01T00:00:00Z") != NULL);
    T_EQ_INT(count_type(a, "process"), 2);
    for (size_t i = 0; a && i < a->n_entities; i++) {
        const char *k = a->entities[i].key;
        if (k && strpbrk(k, "\n\r"))
            T_FAILF("key with a line break: %s", k);
    }
    run_free(&r);
    /* Sentinel's dns entity and a bare "." */
    const char *row =
        "{\"SystemAlertId\":\"keys-2\",\"Entities\":["
        "{\"Type\":\"dns\",\"DomainName\":\"bad.example.\"},"
        "{\"Type\":\"dns\",\"DomainName\":\".\"},"
        "{\"Type\":\"ip\",\"Address\":\" 10.0.0.2 \"}]}";
    run_str(&r, row, NULL);
    a = r.msg.n_alerts ? r.msg.alerts[0] : NULL;
    T_OK(ent(a, "domain:bad.example") != NULL);
    T_OK(ent(a, "domain:") == NULL);
    T_OK(ent(a, "ip:10.0.0.2") != NULL);
    run_free(&r);
}

static void test_envelope_mixed(void)
{
    struct run r;
    if (!run_file(&r, FIX "eventhub_envelope.json", NULL))
        return;
    T_EQ_INT(r.msg.n_alerts, 4);
    T_EQ_INT(r.msg.n_rejects, 6);
    T_OK(alert_by_id(&r.msg, "sentinel:env-sent-0001") != NULL);
    T_OK(alert_by_id(&r.msg, "defender-streaming:da55556666777788889999_5") !=
         NULL);
    T_OK(alert_by_id(&r.msg, "graph:env-graph-0001") != NULL);
    T_OK(alert_by_id(&r.msg, "generic:env-gen-0001") != NULL);
    static const char *const want[] = {"wrong_type",     "missing_id",
                                       "unknown_format", "unknown_format",
                                       "wrong_type",     "wrong_type"};
    for (size_t i = 0; i < r.msg.n_rejects && i < 6; i++) {
        const struct sp_reject *rj = &r.msg.rejects[i];
        T_EQ_STR(rj->reason, want[i]);
        /* each reject carries its own record, inside the payload */
        T_OK(rj->bytes > r.msg.payload &&
             rj->bytes + rj->len < r.msg.payload + r.msg.len);
        T_OK(rj->len < 400);
    }
    if (r.msg.n_rejects >= 6) {
        T_OK(r.msg.rejects[0].len == 2 &&
             !memcmp(r.msg.rejects[0].bytes, "42", 2));
        T_CONTAINS(r.msg.rejects[3].detail, "DeviceProcessEvents");
        T_CONTAINS(r.msg.rejects[4].detail, "Entities");
        T_CONTAINS(r.msg.rejects[5].detail, "title");
    }
    /* each alert's raw is its record */
    struct sp_alert *g = alert_by_id(&r.msg, "graph:env-graph-0001");
    T_OK(g && g->raw > r.msg.payload && g->raw[0] == '{');
    run_free(&r);

    /* the real Event Hubs sample shape: records of Defender streaming */
    const char *env =
        "{\"records\":[{\"category\":\"AdvancedHunting-AlertInfo\","
        "\"properties\":{\"AlertId\":\"e1\",\"Title\":\"x\"}},"
        "{\"category\":\"AdvancedHunting-AlertEvidence\","
        "\"properties\":{\"AlertId\":\"e1\",\"EntityType\":\"Ip\","
        "\"RemoteIP\":\"192.0.2.1\"}}]}";
    run_str(&r, env, NULL);
    T_EQ_INT(r.msg.n_alerts, 2);
    if (r.msg.n_alerts == 2) {
        T_EQ_INT(r.msg.alerts[0]->part, SP_PART_INFO);
        T_EQ_INT(r.msg.alerts[1]->part, SP_PART_EVIDENCE);
        T_EQ_STR(r.msg.alerts[1]->id, "defender-streaming:e1");
    }
    run_free(&r);

    /* a top-level array is a batch */
    const char *arr = "[{\"id\":\"b1\"},{\"id\":\"b2\"},\"nope\"]";
    run_str(&r, arr, NULL);
    T_EQ_INT(r.msg.n_alerts, 2);
    T_EQ_INT(r.msg.n_rejects, 1);
    run_free(&r);
}

/* Writing, reading the output back as the generic format, and writing
 * again gives the same bytes; raw is embedded compactly and parses. */
static void roundtrip_file(const char *path)
{
    struct run r;
    if (!run_file(&r, path, NULL))
        return;
    for (size_t i = 0; i < r.msg.n_alerts; i++) {
        struct sp_alert *a = r.msg.alerts[i];
        char *one = write_alert(a, false);
        char *with_raw = write_alert(a, true);
        json_error_t je;
        json_t *j = json_loads(with_raw, 0, &je);
        if (!j)
            T_FAILF("%s: writer output does not parse: %s", path, je.text);
        if (j && a->raw) {
            json_t *orig = json_loadb(a->raw, a->raw_len, 0, &je);
            T_OK(orig && json_equal(orig, json_object_get(j, "raw")));
            json_decref(orig);
        }
        json_decref(j);
        T_OK(strchr(with_raw, '\n') == NULL);
        struct sp_normalize_opts o;
        sp_normalize_opts_default(&o);
        o.format = SP_FMT_GENERIC;
        struct run back;
        run_str(&back, one, &o);
        T_EQ_INT(back.msg.n_alerts, 1);
        if (back.msg.n_alerts == 1) {
            char *two = write_alert(back.msg.alerts[0], false);
            if (strcmp(one, two) != 0)
                T_FAILF("%s: round trip differs:\n  %.600s\n  %.600s", path,
                        one, two);
            free(two);
        }
        run_free(&back);
        free(one);
        free(with_raw);
    }
    run_free(&r);
}

static void test_roundtrip(void)
{
    roundtrip_file(FIX "graph_alert.json");
    roundtrip_file(FIX "graph_page.json");
    roundtrip_file(FIX "eventhub_envelope.json");
    roundtrip_file(FIX "la_response.json");
    size_t len;
    const char *jl[] = {FIX "sentinel_rows.jsonl",
                        FIX "defender_streaming.jsonl", FIX "generic.jsonl"};
    for (size_t f = 0; f < SP_ARRAY_SIZE(jl); f++) {
        char *text = slurp(jl[f], &len);
        if (!text)
            continue;
        char *save = NULL;
        for (char *line = strtok_r(text, "\n", &save); line;
             line = strtok_r(NULL, "\n", &save)) {
            char tmp[] = "build/rt_line.json";
            FILE *fp = fopen(tmp, "w");
            if (!fp)
                break;
            fputs(line, fp);
            fclose(fp);
            roundtrip_file(tmp);
            remove(tmp);
        }
        free(text);
    }
}

/* The raw of a single-document message is the document without the white
 * space around it (a trailing newline of a JSON-lines producer is not
 * part of the record); only rejects keep the payload byte for byte. */
static void test_raw_trimmed(void)
{
    struct run r;
    run_str(&r, "  {\"id\":\"rt\",\"title\":\"t\"}\r\n", NULL);
    struct sp_alert *a = r.msg.n_alerts ? r.msg.alerts[0] : NULL;
    T_OK(a && a->raw != NULL);
    if (a && a->raw) {
        T_EQ_INT(a->raw_len, strlen("{\"id\":\"rt\",\"title\":\"t\"}"));
        T_OK(strncmp(a->raw, "{\"id\":\"rt\"", 10) == 0);
    }
    run_free(&r);
}

static void test_no_raw(void)
{
    struct sp_normalize_opts o;
    sp_normalize_opts_default(&o);
    o.keep_raw = false;
    struct run r;
    run_str(&r, "{\"id\":\"nr\",\"title\":\"t\"}", &o);
    struct sp_alert *a = r.msg.n_alerts ? r.msg.alerts[0] : NULL;
    T_OK(a && a->raw == NULL);
    if (a) {
        char *js = write_alert(a, true);
        T_OK(strstr(js, "\"raw\"") == NULL);
        free(js);
    }
    run_free(&r);
}

/* The demo's samples: one story, every file decodes; every bad/ file is
 * refused with the reason its name starts with. */
static void test_demo_samples(void)
{
    static const char *const good[] = {
        "01_graph_phishing_email.json",
        "02_graph_encoded_powershell.json",
        "03_sentinel_c2.jsonl",
        "04_graph_credential_dumping.json",
        "05_eventhub_sentinel_envelope.json",
        "06_graph_defender_tampering.json",
        "07_generic_ndr_beacon.json",
        "08_sentinel_shadow_copies.json",
        "09_graph_ransomware_page.json",
        "10_defender_streaming_dc.json",
        "11_sentinel_privileged_group.jsonl",
        "12_generic_backup_failure.json",
    };
    size_t alerts = 0, rejects = 0;
    for (size_t i = 0; i < SP_ARRAY_SIZE(good); i++) {
        char path[256];
        snprintf(path, sizeof(path), "config/samples/%s", good[i]);
        sample_file(path, fix_out, &alerts, &rejects,
                    strncmp(good[i], "05_", 3) == 0 ? 1 : 0);
    }
    T_EQ_INT(alerts, 18);
    T_EQ_INT(rejects, 1);
    static const char *const bad[] = {
        "empty.json",
        "invalid_utf8.json",
        "missing_id.json",
        "not_json.txt",
        "too_deep.json",
        "too_large.json",
        "too_many_entities.json",
        "too_many_nodes.json",
        "truncated.json",
        "unknown_format.json",
        "wrong_type_sentinel_entities.json",
        "wrong_type_title.json",
    };
    for (size_t i = 0; i < SP_ARRAY_SIZE(bad); i++) {
        char path[256], reason[64];
        snprintf(path, sizeof(path), "config/samples/bad/%s", bad[i]);
        snprintf(reason, sizeof(reason), "%s", bad[i]);
        char *dot = strrchr(reason, '.');
        if (dot)
            *dot = '\0';
        if (!strncmp(reason, "wrong_type", 10))
            reason[10] = '\0';
        size_t len;
        char *s = slurp(path, &len);
        if (!s)
            continue;
        expect_reject(s, len, reason, NULL);
        free(s);
    }
}

static void test_samples(void)
{
    struct stat sb;
    if (stat(SAMPLES, &sb) != 0 || !S_ISDIR(sb.st_mode))
        T_SKIP("../shared/samples not present");
    FILE *out = fopen("build/normalized_samples.jsonl", "w");
    T_OK(out != NULL);
    /* Every alert sample: Sentinel rows (JSON lines) and query responses,
     * Graph alert and incident pages, Defender streaming records.  Known
     * refusals are listed; any other reject fails the test. */
    static const char *const patterns[] = {
        SAMPLES "sentinel/*.jsonl",
        SAMPLES "sentinel/*loganalytics_query_response*.json",
        SAMPLES "defender/graph_*.json",
        SAMPLES "defender/m365d_streaming_*",
    };
    static const struct {
        const char *file;
        size_t rejects;
    } known[] = {
        /* line 1 is a SecurityIncident row: an incident, not an alert */
        {"stixshifter_securityincident_securityalert_records.jsonl", 1},
    };
    size_t alerts = 0, rejects = 0, n = 0;
    for (size_t p = 0; p < SP_ARRAY_SIZE(patterns); p++) {
        glob_t g;
        if (glob(patterns[p], 0, NULL, &g) != 0)
            continue;
        for (size_t i = 0; i < g.gl_pathc; i++) {
            const char *path = g.gl_pathv[i];
            const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1
                                                  : path;
            size_t expected = 0;
            for (size_t k = 0; k < SP_ARRAY_SIZE(known); k++)
                if (strcmp(base, known[k].file) == 0)
                    expected = known[k].rejects;
            sample_file(path, out, &alerts, &rejects, expected);
            n++;
        }
        globfree(&g);
    }
    /* The legacy Microsoft 365 Defender incidents API is not supported:
     * each of its incidents is refused as unknown_format, explicitly. */
    char path[512];
    snprintf(path, sizeof(path),
             SAMPLES "defender/m365d_api_list_incidents_response.json");
    size_t len;
    char *text = stat(path, &sb) == 0 ? slurp(path, &len) : NULL;
    if (text) {
        struct run r;
        run_bytes(&r, text, len, NULL);
        T_EQ_INT(r.msg.n_alerts, 0);
        T_OK(r.msg.n_rejects > 0);
        for (size_t i = 0; i < r.msg.n_rejects; i++)
            T_EQ_STR(r.msg.rejects[i].reason, "unknown_format");
        fprintf(stderr,
                "  sample defender/m365d_api_list_incidents_response.json: "
                "%zu incidents refused (M365 Defender incidents API not "
                "supported)\n",
                r.msg.n_rejects);
        run_free(&r);
        free(text);
    }
    if (out)
        fclose(out);
    T_OK(n > 0);
    T_OK(alerts >= 200);
    fprintf(stderr,
            "  samples: %zu files, %zu alerts, %zu expected rejects "
            "-> build/normalized_samples.jsonl\n",
            n, alerts, rejects);
}

/* Both output files validate against the JSON Schema. */
static void test_schema(void)
{
    if (fix_out) {
        fclose(fix_out);
        fix_out = NULL;
    }
    if (system("python3 -c 'import jsonschema' >/dev/null 2>&1") != 0)
        T_SKIP("python3-jsonschema not installed");
    T_EQ_INT(system("python3 tests/tools/schema_check.py --require "
                    "build/normalized_fixtures.jsonl >&2"),
             0);
    struct stat sb;
    if (stat("build/normalized_samples.jsonl", &sb) == 0 && sb.st_size > 0)
        T_EQ_INT(system("python3 tests/tools/schema_check.py --require "
                        "build/normalized_samples.jsonl >&2"),
                 0);
}

int main(void)
{
    t_prog = "test_normalize";
    mkdir("build", 0755);
    fix_out = fopen("build/normalized_fixtures.jsonl", "w");
    T_RUN(test_format_parse);
    T_RUN(test_graph_alert);
    T_RUN(test_graph_page);
    T_RUN(test_graph_incident);
    T_RUN(test_sentinel_rows);
    T_RUN(test_sentinel_refs);
    T_RUN(test_sentinel_no_id_once);
    T_RUN(test_sentinel_ref_index);
    T_RUN(test_sentinel_ref_cap);
    T_RUN(test_la_tables);
    T_RUN(test_la_column_names);
    T_RUN(test_defender_streaming);
    T_RUN(test_generic);
    T_RUN(test_generic_numeric_severity);
    T_RUN(test_merge_needs_same_type);
    T_RUN(test_records_member_of_a_record);
    T_RUN(test_tenant_checked);
    T_RUN(test_key_canon);
    T_RUN(test_envelope_mixed);
    T_RUN(test_roundtrip);
    T_RUN(test_no_raw);
    T_RUN(test_raw_trimmed);
    T_RUN(test_demo_samples);
    T_RUN(test_samples);
    T_RUN(test_schema);
    return t_done();
}
