/*
 * test_alert.c - the alert model (pipeline/alert.c): severities, the
 * canonical identifier rules (hosts, accounts, IPs, hashes, URLs), the
 * builders and the writer's handling of ids, roles and sections.
 */
#include "t.h"

#include "normalize_t.h"

static void test_severity(void)
{
    static const struct {
        const char *in;
        enum sp_severity out;
    } cases[] = {
        {"High", SP_SEV_HIGH},
        {"high", SP_SEV_HIGH},
        {"3", SP_SEV_HIGH},
        {"critical", SP_SEV_HIGH},
        {"Sev1", SP_SEV_HIGH},
        {"Sev 0", SP_SEV_HIGH},
        {"Sev2", SP_SEV_MEDIUM},
        {"medium", SP_SEV_MEDIUM},
        {"Moderate", SP_SEV_MEDIUM},
        /* documented in docs/alert-format.md (Azure Monitor's
         * "Warning"); untested it could map anywhere */
        {"Warning", SP_SEV_MEDIUM},
        {"2", SP_SEV_MEDIUM},
        {"low", SP_SEV_LOW},
        {" Low ", SP_SEV_LOW},
        {"sev-3", SP_SEV_LOW},
        {"1", SP_SEV_LOW},
        {"Informational", SP_SEV_INFORMATIONAL},
        {"info", SP_SEV_INFORMATIONAL},
        {"0", SP_SEV_INFORMATIONAL},
        /* "Sev4", the lowest of the Sev scale, is informational (docs);
         * the other Sev levels above would not notice it mapped to low */
        {"Sev4", SP_SEV_INFORMATIONAL},
        {"unknownFutureValue", SP_SEV_UNKNOWN},
        {"", SP_SEV_UNKNOWN},
        {"9", SP_SEV_UNKNOWN},
        {NULL, SP_SEV_UNKNOWN},
    };
    for (size_t i = 0; i < SP_ARRAY_SIZE(cases); i++)
        if (sp_severity_parse(cases[i].in) != cases[i].out)
            T_FAILF("severity \"%s\" -> %d, expected %d",
                    cases[i].in ? cases[i].in : "(null)",
                    sp_severity_parse(cases[i].in), cases[i].out);
    T_EQ_STR(sp_severity_name(SP_SEV_HIGH), "high");
    T_EQ_STR(sp_severity_name(SP_SEV_MEDIUM), "medium");
    T_EQ_STR(sp_severity_name(SP_SEV_LOW), "low");
    T_EQ_STR(sp_severity_name(SP_SEV_INFORMATIONAL), "informational");
    T_EQ_STR(sp_severity_name(SP_SEV_UNKNOWN), "informational");
}

static void test_canon_ip(void)
{
    struct sp_arena a;
    sp_arena_init(&a, 0);
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"10.1.2.3", "10.1.2.3"},
        {"2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1"},
        {"2001:db8:0:1:0:0:0:1", "2001:db8:0:1::1"},
        {"2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"},
        {"2001:db8:1:1:1:1:0:1", "2001:db8:1:1:1:1:0:1"},
        {"::ffff:10.20.30.42", "10.20.30.42"},
        {"::FFFF:0A14:1E2A", "10.20.30.42"},
        {"::1", "::1"},
        {"[2001:db8::2a]", "2001:db8::2a"},
        {"fe80::1%eth0", "fe80::1"},
        {"FE80:0:0:0:0:0:0:1%12", "fe80::1"},
        {"0.0.0.0", "0.0.0.0"},
        {"1.2.3", NULL},
        {"256.1.1.1", NULL},
        {"01.2.3.4", NULL},
        {"1.2.3.4:443", NULL},
        {"1.2.3.4%eth0", NULL},
        {" 1.2.3.4", "1.2.3.4"},            /* blanks around are not part */
        {"\t::1 ", "::1"},
        {"1.2. 3.4", NULL},
        {" ", NULL},
        {"not an ip", NULL},
        {"", NULL},
        {"[::1", NULL},
        {"2001:db8::g", NULL},
        {NULL, NULL},
    };
    for (size_t i = 0; i < SP_ARRAY_SIZE(cases); i++) {
        const char *got = sp_canon_ip(&a, cases[i].in);
        bool ok = (!got && !cases[i].out) ||
                  (got && cases[i].out && strcmp(got, cases[i].out) == 0);
        if (!ok)
            T_FAILF("canon_ip(\"%s\") = %s, expected %s",
                    cases[i].in ? cases[i].in : "(null)", got ? got : "NULL",
                    cases[i].out ? cases[i].out : "NULL");
    }
    sp_arena_fini(&a);
}

static void test_canon_hash_url(void)
{
    struct sp_arena a;
    sp_arena_init(&a, 0);
    T_EQ_STR(sp_canon_hash(&a, "0CC175B9C0F1B6A831C399E269772661"),
             "md5:0cc175b9c0f1b6a831c399e269772661");
    T_EQ_STR(sp_canon_hash(&a, "5F1E8ACEDC065031AAD553B710838EB366CFEE9A"),
             "sha1:5f1e8acedc065031aad553b710838eb366cfee9a");
    T_EQ_STR(
        sp_canon_hash(
            &a,
            "AAAABBBBCCCCDDDDEEEEFFFF0000111122223333444455556666777788889999"),
        "sha256:"
        "aaaabbbbccccddddeeeeffff0000111122223333444455556666777788889999");
    T_OK(sp_canon_hash(&a, "xyz") == NULL);
    T_OK(sp_canon_hash(&a, "0CC175B9C0F1B6A831C399E26977266G") == NULL);
    T_OK(sp_canon_hash(&a, "0CC175B9C0F1B6A831C399E2697726611") == NULL);
    T_OK(sp_canon_hash(&a, NULL) == NULL);

    static const struct {
        const char *in, *out;
    } urls[] = {
        {"HTTPS://Stage2.Example-Cdn.NET:443/payload/A.ps1#frag",
         "https://stage2.example-cdn.net/payload/A.ps1"},
        {"http://Example.com", "http://example.com/"},
        {"http://example.com:80/x?Q=1", "http://example.com/x?Q=1"},
        {"http://example.com:8080/x", "http://example.com:8080/x"},
        {"https://example.com:80/", "https://example.com:80/"},
        {"example.COM/Path", "http://example.com/Path"},
        {"http://User:Pw@EXAMPLE.com/", "http://User:Pw@example.com/"},
        {"http://[2001:DB8::1]:8443/a", "http://[2001:db8::1]:8443/a"},
        {"http://example.com?x=1", "http://example.com/?x=1"},
        {"MAILTO:Someone@Example.com", "mailto:Someone@Example.com"},
        {"http://exa mple.com/", NULL},
        {"http:///nohost", NULL},
        {"", NULL},
    };
    for (size_t i = 0; i < SP_ARRAY_SIZE(urls); i++) {
        const char *got = sp_canon_url(&a, urls[i].in);
        bool ok = (!got && !urls[i].out) ||
                  (got && urls[i].out && strcmp(got, urls[i].out) == 0);
        if (!ok)
            T_FAILF("canon_url(\"%s\") = %s, expected %s", urls[i].in,
                    got ? got : "NULL", urls[i].out ? urls[i].out : "NULL");
    }
    sp_arena_fini(&a);
}

static void test_keys(void)
{
    struct sp_arena a;
    sp_arena_init(&a, 0);
    T_EQ_STR(sp_key_host(&a, "WS-042", "corp.contoso.com", NULL),
             "host:ws-042.corp.contoso.com");
    T_EQ_STR(sp_key_host(&a, "WS-042", NULL, "WS-042.Corp.Contoso.com."),
             "host:ws-042.corp.contoso.com");
    T_EQ_STR(sp_key_host(&a, "WS-042", "", NULL), "host:ws-042");
    T_EQ_STR(sp_key_host(&a, "ws-042.contoso.com", "other.com", NULL),
             "host:ws-042.contoso.com");
    T_OK(sp_key_host(&a, NULL, "contoso.com", NULL) == NULL);
    T_OK(sp_key_host(&a, "two words", NULL, NULL) == NULL);
    T_OK(sp_key_host(&a, "", "", "") == NULL);

    T_EQ_STR(sp_key_account(&a, "AKhan@Contoso.com", "CONTOSO", "akhan",
                            "S-1-5-21-1", NULL),
             "account:akhan@contoso.com");
    T_EQ_STR(sp_key_account(&a, NULL, "CONTOSO", "AKhan", "S-1-5-21-1", NULL),
             "account:contoso\\akhan");
    T_EQ_STR(
        sp_key_account(&a, "not-a-upn", "NT AUTHORITY", "SYSTEM", NULL, NULL),
        "account:nt authority\\system");
    T_EQ_STR(sp_key_account(&a, NULL, NULL, "CONTOSO\\jdoe", NULL, NULL),
             "account:contoso\\jdoe");
    T_EQ_STR(sp_key_account(&a, NULL, NULL, "JDoe@Contoso.com", NULL, NULL),
             "account:jdoe@contoso.com");
    T_EQ_STR(sp_key_account(&a, NULL, NULL, "jdoe", "S-1-5-21-99-1105", NULL),
             "account:s-1-5-21-99-1105");
    T_EQ_STR(sp_key_account(&a, NULL, NULL, NULL, NULL,
                            "5D3E1F0A-2B4C-4D6E-8F90-A1B2C3D4E5F6"),
             "account:5d3e1f0a-2b4c-4d6e-8f90-a1b2c3d4e5f6");
    T_OK(sp_key_account(&a, NULL, NULL, "jdoe", NULL, NULL) == NULL);
    T_OK(sp_key_account(&a, NULL, NULL, NULL, NULL, NULL) == NULL);

    char s[] = "MiXeD Case";
    T_EQ_STR(sp_lower(s), "mixed case");
    sp_arena_fini(&a);
}

static void test_builders(void)
{
    struct sp_arena ar;
    sp_arena_init(&ar, 0);
    struct sp_alert *a = sp_alert_new(&ar);
    T_OK(a != NULL);
    T_EQ_INT(a->created, SP_TIME_NONE);
    for (int i = 0; i < 3; i++)
        T_OK(sp_alert_add_entity(&ar, a, "ip", 3) != NULL);
    T_OK(sp_alert_add_entity(&ar, a, "ip", 3) == NULL);
    T_EQ_INT(a->n_entities, 3);
    struct sp_entity *e = &a->entities[0];
    char val[] = "10.0.0.1";
    T_EQ_INT(sp_entity_add_id(&ar, e, "address", val), SP_OK);
    val[0] = '9'; /* the value was copied */
    T_EQ_STR(sp_entity_id(e, "address"), "10.0.0.1");
    T_EQ_INT(sp_entity_add_id(&ar, e, "address", "10.0.0.1"), SP_OK);
    T_EQ_INT(sp_entity_add_id(&ar, e, "address", ""), SP_OK);
    T_EQ_INT(sp_entity_add_id(&ar, e, "address", NULL), SP_OK);
    T_EQ_INT(e->n_ids, 1);
    for (int i = 0; i < 20; i++) {
        char v[16];
        snprintf(v, sizeof(v), "v%d", i);
        T_EQ_INT(sp_entity_add_id(&ar, e, "other", v), SP_OK);
    }
    T_EQ_INT(e->n_ids, 21);
    T_OK(sp_entity_id(e, "missing") == NULL);
    for (int i = 0; i < 12; i++) {
        static const char *const roles[] = {"a", "b", "c", "d", "e", "f",
                                            "g", "h", "i", "j", "k", "l"};
        sp_entity_add_role(e, roles[i]);
        sp_entity_add_role(e, roles[i]);
    }
    T_EQ_INT(e->n_roles, 8);
    e->key = "ip:10.0.0.1";
    T_OK(sp_alert_find_entity(a, "ip:10.0.0.1") == e);
    T_OK(sp_alert_find_entity(a, "ip:10.0.0.2") == NULL);
    T_OK(sp_alert_find_entity(a, NULL) == NULL);

    T_EQ_INT(sp_alert_add_section(&ar, a, "scripts", "[1,2]", 5), SP_OK);
    T_EQ_INT(sp_alert_add_section(&ar, a, "enrichment", "{\"x\":true}", 10),
             SP_OK);
    T_EQ_INT(sp_alert_add_section(&ar, a, "scripts", "[]", 2), SP_ERR_INVALID);
    T_EQ_INT(sp_alert_add_section(&ar, a, "title", "\"x\"", 3), SP_ERR_INVALID);
    T_EQ_INT(sp_alert_add_section(&ar, a, "", "1", 1), SP_ERR_INVALID);
    a->id = "generic:b1";
    a->tenant = "t";
    a->source = "generic";
    a->provider_alert_id = "b1";
    a->incident_id = "inc-1";
    a->incident_version = 3;
    char *js = write_alert(a, true);
    T_CONTAINS(js, "\"incident_id\":\"inc-1\",\"incident_version\":3,"
                   "\"scripts\":[1,2],\"enrichment\":{\"x\":true}}");
    T_CONTAINS(js, "\"status\":\"unknown\"");
    T_CONTAINS(js, "\"severity\":\"informational\",\"severity_original\":null");
    T_CONTAINS(js, "\"ids\":{\"address\":\"10.0.0.1\",\"other\":[\"v0\",");
    T_OK(strstr(js, "\"raw\"") == NULL); /* no raw document set */
    json_error_t je;
    json_t *j = json_loads(js, 0, &je);
    T_OK(j != NULL);
    json_decref(j);
    free(js);
    sp_arena_fini(&ar);
}

int main(void)
{
    t_prog = "test_alert";
    T_RUN(test_severity);
    T_RUN(test_canon_ip);
    T_RUN(test_canon_hash_url);
    T_RUN(test_keys);
    T_RUN(test_builders);
    return t_done();
}
