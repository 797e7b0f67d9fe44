/*
 * gen.h - deterministic alert traffic for the integration tests, the
 * crash test and the benchmarks: Graph alerts v2 (single and list
 * pages), Sentinel SecurityAlert rows (Entities as a JSON string with
 * $id/$ref), Event Hubs {"records":[...]} envelopes, and malformed
 * messages of every DLQ kind, each with what the pipeline must make of it.
 *
 * gen_make(i) depends only on (seed, i), so a test can regenerate any
 * message's expectation without storing them all.
 */
#ifndef SP_TEST_GEN_H
#define SP_TEST_GEN_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sp.h"

struct gen_opts {
    unsigned seed;
    int bad_per_100;          /* share of malformed messages */
    size_t too_large;         /* size of "too_large" messages */
    int hosts;                /* entity pools: overlap between alerts */
    int users;
    int tenants;
};

#define GEN_MAX_IDS 4

/* What one alert of a message must come out as. */
struct gen_expect {
    char id[96];
    char tenant[48];
    char host_key[96];        /* an entity key the alert must carry */
    char account_key[96];     /* and another */
    char severity[16];
};

struct gen_item {
    struct sp_buf buf;        /* the message bytes */
    const char *reason;       /* expected DLQ reason, NULL when valid */
    int n_ids;
    struct gen_expect exp[GEN_MAX_IDS];
};

static inline void gen_opts_default(struct gen_opts *o)
{
    o->seed = 42;
    o->bad_per_100 = 5;
    o->too_large = (size_t)140 << 10;
    o->hosts = 200;
    o->users = 100;
    o->tenants = 3;
}

/* splitmix64: small, good, and the same everywhere. */
static inline uint64_t gen_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static inline void gen_put(struct sp_buf *b, const char *fmt, ...)
    SP_PRINTF(2, 3);
static inline void gen_put(struct sp_buf *b, const char *fmt, ...)
{
    char tmp[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    sp_buf_put(b, tmp, (size_t)(n < (int)sizeof(tmp) ? n : (int)sizeof(tmp) - 1));
}

static const char *const gen_sevs[] = {"informational", "low", "medium", "high"};
static const char *const gen_sent_sevs[] = {"Informational", "Low", "Medium", "High"};

/* Padding text: realistic alert descriptions are long prose. */
static inline void gen_pad(struct sp_buf *b, uint64_t *rs, size_t bytes)
{
    static const char *const words[] = {
        "suspicious", "process", "execution", "observed", "on", "the", "device",
        "attacker", "credential", "access", "lateral", "movement", "encoded",
        "command", "network", "connection", "to", "remote", "host", "was",
        "blocked", "review", "timeline", "and", "isolate"};
    size_t start = b->len;
    while (b->len - start < bytes) {
        sp_buf_puts(b, words[gen_rand(rs) % SP_ARRAY_SIZE(words)]);
        sp_buf_putc(b, ' ');
    }
}

static inline void gen_graph_alert(struct sp_buf *b, struct gen_item *it,
                                   uint64_t *rs, const struct gen_opts *o,
                                   size_t idx, int sub, int entities,
                                   bool omit_id, bool bad_title,
                                   bool bad_utf8)
{
    int host = (int)(gen_rand(rs) % (uint64_t)o->hosts);
    int user = (int)(gen_rand(rs) % (uint64_t)o->users);
    int sev = (int)(gen_rand(rs) % 4);
    int tenant = (int)(idx % (size_t)o->tenants);
    char id[64];
    snprintf(id, sizeof(id), "da%016llx_%d", (unsigned long long)(idx * 7 + 1),
             sub);
    char tenant_id[48];
    snprintf(tenant_id, sizeof(tenant_id),
             "0000000%d-1111-2222-3333-444444444444", tenant);
    if (!omit_id && it->n_ids < GEN_MAX_IDS) {
        struct gen_expect *x = &it->exp[it->n_ids++];
        snprintf(x->id, sizeof(x->id), "graph:%s", id);
        snprintf(x->tenant, sizeof(x->tenant), "%s", tenant_id);
        snprintf(x->host_key, sizeof(x->host_key), "host:ws-%03d.contoso.com",
                 host);
        snprintf(x->account_key, sizeof(x->account_key),
                 "account:user%d@contoso.com", user);
        snprintf(x->severity, sizeof(x->severity), "%s", gen_sevs[sev]);
    }
    gen_put(b, "{\"@odata.type\":\"#microsoft.graph.security.alert\",");
    if (!omit_id)
        gen_put(b, "\"id\":\"%s\",", id);
    gen_put(b, "\"providerAlertId\":\"%s\",\"incidentId\":\"%zu\","
               "\"status\":\"new\",\"severity\":\"%s\","
               "\"classification\":null,\"determination\":null,"
               "\"serviceSource\":\"microsoftDefenderForEndpoint\","
               "\"detectionSource\":\"edr\","
               "\"detectorId\":\"7f1c1a3e-0000-4000-8000-%012zu\","
               "\"tenantId\":\"%s\",",
           id, 1000 + idx / 3, gen_sevs[sev], idx % 97, tenant_id);
    if (bad_title)
        gen_put(b, "\"title\":{\"text\":\"not a string\"},");
    else
        gen_put(b, "\"title\":\"Suspicious PowerShell command line %zu%s\",",
                idx % 13, bad_utf8 ? " \xff\xfe" : "");
    sp_buf_puts(b, "\"description\":\"");
    gen_pad(b, rs, 1200 + (size_t)(gen_rand(rs) % 2800));
    gen_put(b, "\",\"category\":\"Execution\","
               "\"alertWebUrl\":\"https://security.microsoft.com/alerts/%s\","
               "\"incidentWebUrl\":\"https://security.microsoft.com/incidents/%zu\","
               "\"mitreTechniques\":[\"T1059.001\",\"T1027\"],"
               "\"createdDateTime\":\"2026-11-28T10:%02zu:%02zu.1234567Z\","
               "\"lastUpdateDateTime\":\"2026-11-28T10:%02zu:%02zu.2234567Z\","
               "\"firstActivityDateTime\":\"2026-11-28T09:%02zu:00Z\","
               "\"lastActivityDateTime\":\"2026-11-28T09:%02zu:30Z\",",
           id, 1000 + idx / 3, idx % 60, (idx / 60) % 60, idx % 60,
           (idx / 60) % 60, idx % 60, idx % 60);
    sp_buf_puts(b, "\"evidence\":[");
    gen_put(b, "{\"@odata.type\":\"#microsoft.graph.security.deviceEvidence\","
               "\"createdDateTime\":\"2026-11-28T10:00:00Z\",\"verdict\":\"suspicious\","
               "\"remediationStatus\":\"none\",\"roles\":[\"compromised\"],"
               "\"deviceDnsName\":\"WS-%03d.contoso.com\",\"hostName\":\"ws-%03d\","
               "\"mdeDeviceId\":\"%040d\",\"osPlatform\":\"Windows11\"},",
           host, host, host);
    gen_put(b, "{\"@odata.type\":\"#microsoft.graph.security.userEvidence\","
               "\"createdDateTime\":\"2026-11-28T10:00:00Z\",\"verdict\":\"suspicious\","
               "\"roles\":[],\"userAccount\":{\"accountName\":\"user%d\","
               "\"domainName\":\"CONTOSO\",\"userSid\":\"S-1-5-21-1-2-3-%d\","
               "\"azureAdUserId\":\"00000000-0000-0000-0000-%012d\","
               "\"userPrincipalName\":\"User%d@Contoso.com\"}},",
           user, 1000 + user, user, user);
    gen_put(b, "{\"@odata.type\":\"#microsoft.graph.security.processEvidence\","
               "\"createdDateTime\":\"2026-11-28T10:00:00Z\",\"verdict\":\"suspicious\","
               "\"roles\":[],\"processId\":%d,"
               "\"processCommandLine\":\"powershell.exe -nop -w hidden -enc "
               "SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoAZQBjAHQAKQA=\","
               "\"processCreationDateTime\":\"2026-11-28T09:59:00Z\","
               "\"imageFile\":{\"sha256\":\"%064d\",\"fileName\":\"powershell.exe\","
               "\"filePath\":\"C:\\\\Windows\\\\System32\\\\WindowsPowerShell\\\\v1.0\"}}",
           4000 + (int)(idx % 1000), 7);
    for (int e = 0; e < entities; e++)
        gen_put(b, ",{\"@odata.type\":\"#microsoft.graph.security.ipEvidence\","
                   "\"createdDateTime\":\"2026-11-28T10:00:00Z\",\"verdict\":\"unknown\","
                   "\"roles\":[],\"ipAddress\":\"10.%d.%d.%d\"}",
                (e >> 16) & 255, (e >> 8) & 255, e & 255);
    sp_buf_puts(b, "]}");
}

static inline void gen_sentinel_row(struct sp_buf *b, struct gen_item *it,
                                    uint64_t *rs, const struct gen_opts *o,
                                    size_t idx, int sub)
{
    int host = (int)(gen_rand(rs) % (uint64_t)o->hosts);
    int user = (int)(gen_rand(rs) % (uint64_t)o->users);
    int sev = (int)(gen_rand(rs) % 4);
    int tenant = (int)(idx % (size_t)o->tenants);
    char id[64];
    snprintf(id, sizeof(id), "5e0c7a1b-%04zx-4c1d-9e2f-%08zx%04d", idx % 65536,
             idx, sub);
    char tenant_id[48];
    snprintf(tenant_id, sizeof(tenant_id),
             "0000000%d-1111-2222-3333-444444444444", tenant);
    if (it->n_ids < GEN_MAX_IDS) {
        struct gen_expect *x = &it->exp[it->n_ids++];
        snprintf(x->id, sizeof(x->id), "sentinel:%s", id);
        snprintf(x->tenant, sizeof(x->tenant), "%s", tenant_id);
        snprintf(x->host_key, sizeof(x->host_key), "host:ws-%03d.contoso.com",
                 host);
        snprintf(x->account_key, sizeof(x->account_key),
                 "account:user%d@contoso.com", user);
        snprintf(x->severity, sizeof(x->severity), "%s", gen_sevs[sev]);
    }
    gen_put(b, "{\"TenantId\":\"%s\",\"TimeGenerated\":\"2026-11-28T10:%02zu:00.5Z\","
               "\"DisplayName\":\"Mass download by user %d\","
               "\"AlertName\":\"Mass download by user %d\","
               "\"AlertSeverity\":\"%s\",\"Description\":\"",
           tenant_id, idx % 60, user, user, gen_sent_sevs[sev]);
    gen_pad(b, rs, 800 + (size_t)(gen_rand(rs) % 1500));
    gen_put(b, "\",\"ProviderName\":\"ASI Scheduled Alerts\",\"VendorName\":\"Microsoft\","
               "\"SystemAlertId\":\"%s\",\"ProductName\":\"Azure Sentinel\","
               "\"ProductComponentName\":\"Scheduled Alerts\","
               "\"AlertType\":\"e7d1b6a0-1111-4222-8333-%012d\","
               "\"StartTime\":\"2026-11-28T09:%02zu:00Z\",\"EndTime\":\"2026-11-28T09:%02zu:59Z\","
               "\"Status\":\"New\",\"Tactics\":\"Exfiltration,Collection\","
               "\"Techniques\":\"[\\\"T1567\\\",\\\"T1530\\\"]\","
               "\"ExtendedProperties\":\"{\\\"Query Period\\\":\\\"00:05:00\\\"}\","
               "\"Entities\":\"[{\\\"$id\\\":\\\"2\\\",\\\"HostName\\\":\\\"WS-%03d\\\","
               "\\\"DnsDomain\\\":\\\"contoso.com\\\",\\\"Type\\\":\\\"host\\\"},"
               "{\\\"$id\\\":\\\"3\\\",\\\"Name\\\":\\\"user%d\\\",\\\"UPNSuffix\\\":"
               "\\\"contoso.com\\\",\\\"Host\\\":{\\\"$ref\\\":\\\"2\\\"},\\\"Type\\\":\\\"account\\\"},"
               "{\\\"$id\\\":\\\"4\\\",\\\"Address\\\":\\\"192.0.2.%d\\\",\\\"Type\\\":\\\"ip\\\"}]\","
               "\"SourceSystem\":\"Detection\",\"Type\":\"SecurityAlert\"}",
           id, (int)(idx % 9), idx % 60, idx % 60, host, user, (int)(idx % 250));
}

/* The message kinds, in rotation for valid traffic. */
enum { GEN_GRAPH, GEN_GRAPH_PAGE, GEN_SENTINEL, GEN_ENVELOPE, GEN__VALID };

static const char *const gen_bad_reasons[] = {
    "not_json", "truncated", "invalid_utf8", "wrong_type", "missing_id",
    "too_large", "too_deep", "too_many_entities", "unknown_format",
};

static inline void gen_make(struct gen_item *it, size_t idx,
                            const struct gen_opts *o)
{
    uint64_t rs = ((uint64_t)o->seed << 32) ^ (idx * 0x9E3779B97F4A7C15ULL);
    sp_buf_reset(&it->buf);
    it->reason = NULL;
    it->n_ids = 0;
    struct sp_buf *b = &it->buf;
    bool bad = (int)(gen_rand(&rs) % 100) < o->bad_per_100;
    if (bad) {
        size_t kind = (size_t)(gen_rand(&rs) % SP_ARRAY_SIZE(gen_bad_reasons));
        it->reason = gen_bad_reasons[kind];
        struct gen_item scratch;
        memset(&scratch, 0, sizeof(scratch));
        switch (kind) {
        case 0:
            gen_put(b, "this is not json, message %zu", idx);
            break;
        case 1:
            gen_graph_alert(b, &scratch, &rs, o, idx, 0, 0, false, false, false);
            b->len /= 2;
            b->data[b->len] = '\0';
            break;
        case 2:
            gen_graph_alert(b, &scratch, &rs, o, idx, 0, 0, false, false, true);
            break;
        case 3:
            gen_graph_alert(b, &scratch, &rs, o, idx, 0, 0, false, true, false);
            break;
        case 4:
            gen_graph_alert(b, &scratch, &rs, o, idx, 0, 0, true, false, false);
            break;
        case 5:
            gen_graph_alert(b, &scratch, &rs, o, idx, 0, 0, false, false, false);
            b->len--;   /* reopen the object, pad, close */
            gen_put(b, ",\"padding\":\"");
            while (b->len < o->too_large)
                sp_buf_puts(b, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
            sp_buf_puts(b, "\"}");
            break;
        case 6:
            sp_buf_puts(b, "{\"@odata.type\":\"#microsoft.graph.security.alert\",\"x\":");
            for (int d = 0; d < 200; d++)
                sp_buf_putc(b, '[');
            for (int d = 0; d < 200; d++)
                sp_buf_putc(b, ']');
            sp_buf_putc(b, '}');
            break;
        case 7:
            gen_graph_alert(b, &scratch, &rs, o, idx, 0, 600, false, false, false);
            break;
        default:
            gen_put(b, "{\"hello\":\"world\",\"n\":%zu,\"items\":[1,2,3]}", idx);
            break;
        }
        return;
    }
    switch (idx % GEN__VALID) {
    case GEN_GRAPH:
        gen_graph_alert(b, it, &rs, o, idx, 0, 1, false, false, false);
        break;
    case GEN_GRAPH_PAGE: {
        sp_buf_puts(b, "{\"@odata.context\":\"https://graph.microsoft.com/v1.0/"
                       "$metadata#security/alerts_v2\",\"value\":[");
        gen_graph_alert(b, it, &rs, o, idx, 0, 0, false, false, false);
        sp_buf_putc(b, ',');
        gen_graph_alert(b, it, &rs, o, idx, 1, 0, false, false, false);
        sp_buf_puts(b, "]}");
        break;
    }
    case GEN_SENTINEL:
        gen_sentinel_row(b, it, &rs, o, idx, 0);
        break;
    default: {
        sp_buf_puts(b, "{\"records\":[");
        gen_sentinel_row(b, it, &rs, o, idx, 0);
        sp_buf_putc(b, ',');
        gen_sentinel_row(b, it, &rs, o, idx, 1);
        sp_buf_puts(b, "]}");
        break;
    }
    }
}

#endif /* SP_TEST_GEN_H */
