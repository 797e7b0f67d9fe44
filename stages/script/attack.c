/*
 * attack.c - the ATT&CK technique table and the hit list (see attack.h).
 *
 * The table holds only the techniques the rules emit: id, name as MITRE
 * words it, the primary tactic, and a severity weight used by the risk
 * score.  Weights follow one idea: what an attacker gains.  Running an
 * interpreter is everyday (5); discovery is cheap (5-10); proxy execution,
 * downloads and persistence are the middle (15-20); credential theft,
 * defence tampering, destruction and reverse shells are the top (30-40).
 *
 * The table is sorted by id so lookups are a binary search; a unit test
 * checks the order.  Also here: the marker-count guess of a script's
 * language, used when the decoder could not tell.
 *
 * Read-only data and per-list state only: any thread may call this on
 * its own list.
 */
#include "attack.h"

#include <stdlib.h>
#include <string.h>

#define T(id, name, tactic, w) {id, name, tactic, w}

static const struct sp_attack_technique techniques[] = {
    T("T1003", "OS Credential Dumping", "credential-access", 35),
    T("T1003.001", "OS Credential Dumping: LSASS Memory", "credential-access", 40),
    T("T1003.002", "OS Credential Dumping: Security Account Manager", "credential-access", 40),
    T("T1003.003", "OS Credential Dumping: NTDS", "credential-access", 40),
    T("T1003.006", "OS Credential Dumping: DCSync", "credential-access", 40),
    T("T1012", "Query Registry", "discovery", 5),
    T("T1016", "System Network Configuration Discovery", "discovery", 5),
    T("T1018", "Remote System Discovery", "discovery", 5),
    T("T1021.001", "Remote Services: Remote Desktop Protocol", "lateral-movement", 15),
    T("T1021.002", "Remote Services: SMB/Windows Admin Shares", "lateral-movement", 20),
    T("T1021.004", "Remote Services: SSH", "lateral-movement", 10),
    T("T1021.006", "Remote Services: Windows Remote Management", "lateral-movement", 20),
    T("T1027", "Obfuscated Files or Information", "defense-evasion", 15),
    T("T1027.013", "Obfuscated Files or Information: Encrypted/Encoded File", "defense-evasion", 15),
    T("T1033", "System Owner/User Discovery", "discovery", 5),
    T("T1036", "Masquerading", "defense-evasion", 10),
    T("T1036.005", "Masquerading: Match Legitimate Name or Location", "defense-evasion", 10),
    T("T1037.004", "Boot or Logon Initialization Scripts: RC Scripts", "persistence", 20),
    T("T1040", "Network Sniffing", "credential-access", 15),
    T("T1047", "Windows Management Instrumentation", "execution", 10),
    T("T1048", "Exfiltration Over Alternative Protocol", "exfiltration", 25),
    T("T1048.003", "Exfiltration Over Alternative Protocol: Exfiltration Over Unencrypted Non-C2 Protocol", "exfiltration", 25),
    T("T1049", "System Network Connections Discovery", "discovery", 5),
    T("T1053.002", "Scheduled Task/Job: At", "persistence", 15),
    T("T1053.003", "Scheduled Task/Job: Cron", "persistence", 15),
    T("T1053.005", "Scheduled Task/Job: Scheduled Task", "persistence", 15),
    T("T1055", "Process Injection", "defense-evasion", 30),
    T("T1057", "Process Discovery", "discovery", 5),
    T("T1059", "Command and Scripting Interpreter", "execution", 5),
    T("T1059.001", "Command and Scripting Interpreter: PowerShell", "execution", 5),
    T("T1059.002", "Command and Scripting Interpreter: AppleScript", "execution", 5),
    T("T1059.003", "Command and Scripting Interpreter: Windows Command Shell", "execution", 5),
    T("T1059.004", "Command and Scripting Interpreter: Unix Shell", "execution", 5),
    T("T1059.005", "Command and Scripting Interpreter: Visual Basic", "execution", 5),
    T("T1059.006", "Command and Scripting Interpreter: Python", "execution", 5),
    T("T1059.007", "Command and Scripting Interpreter: JavaScript", "execution", 5),
    T("T1069.001", "Permission Groups Discovery: Local Groups", "discovery", 5),
    T("T1069.002", "Permission Groups Discovery: Domain Groups", "discovery", 10),
    T("T1070", "Indicator Removal", "defense-evasion", 10),
    T("T1070.001", "Indicator Removal: Clear Windows Event Logs", "defense-evasion", 25),
    T("T1078", "Valid Accounts", "defense-evasion", 10),
    T("T1082", "System Information Discovery", "discovery", 5),
    T("T1087.001", "Account Discovery: Local Account", "discovery", 5),
    T("T1087.002", "Account Discovery: Domain Account", "discovery", 10),
    T("T1095", "Non-Application Layer Protocol", "command-and-control", 30),
    T("T1098", "Account Manipulation", "persistence", 20),
    T("T1105", "Ingress Tool Transfer", "command-and-control", 20),
    T("T1112", "Modify Registry", "defense-evasion", 5),
    T("T1113", "Screen Capture", "collection", 10),
    T("T1127", "Trusted Developer Utilities Proxy Execution", "defense-evasion", 20),
    T("T1127.001", "Trusted Developer Utilities Proxy Execution: MSBuild", "defense-evasion", 20),
    T("T1135", "Network Share Discovery", "discovery", 5),
    T("T1136.001", "Create Account: Local Account", "persistence", 20),
    T("T1140", "Deobfuscate/Decode Files or Information", "defense-evasion", 10),
    T("T1187", "Forced Authentication", "credential-access", 20),
    T("T1197", "BITS Jobs", "defense-evasion", 15),
    T("T1202", "Indirect Command Execution", "defense-evasion", 15),
    T("T1216", "System Script Proxy Execution", "defense-evasion", 20),
    T("T1216.001", "System Script Proxy Execution: PubPrn", "defense-evasion", 20),
    T("T1216.002", "System Script Proxy Execution: SyncAppvPublishingServer", "defense-evasion", 20),
    T("T1218", "System Binary Proxy Execution", "defense-evasion", 20),
    T("T1218.001", "System Binary Proxy Execution: Compiled HTML File", "defense-evasion", 20),
    T("T1218.002", "System Binary Proxy Execution: Control Panel", "defense-evasion", 20),
    T("T1218.003", "System Binary Proxy Execution: CMSTP", "defense-evasion", 20),
    T("T1218.004", "System Binary Proxy Execution: InstallUtil", "defense-evasion", 20),
    T("T1218.005", "System Binary Proxy Execution: Mshta", "defense-evasion", 20),
    T("T1218.007", "System Binary Proxy Execution: Msiexec", "defense-evasion", 20),
    T("T1218.008", "System Binary Proxy Execution: Odbcconf", "defense-evasion", 20),
    T("T1218.009", "System Binary Proxy Execution: Regsvcs/Regasm", "defense-evasion", 20),
    T("T1218.010", "System Binary Proxy Execution: Regsvr32", "defense-evasion", 20),
    T("T1218.011", "System Binary Proxy Execution: Rundll32", "defense-evasion", 20),
    T("T1218.012", "System Binary Proxy Execution: Verclsid", "defense-evasion", 20),
    T("T1218.013", "System Binary Proxy Execution: Mavinject", "defense-evasion", 20),
    T("T1218.014", "System Binary Proxy Execution: MMC", "defense-evasion", 20),
    T("T1218.015", "System Binary Proxy Execution: Electron Applications", "defense-evasion", 20),
    T("T1219", "Remote Access Tools", "command-and-control", 20),
    T("T1220", "XSL Script Processing", "defense-evasion", 20),
    T("T1482", "Domain Trust Discovery", "discovery", 10),
    T("T1485", "Data Destruction", "impact", 35),
    T("T1489", "Service Stop", "impact", 15),
    T("T1490", "Inhibit System Recovery", "impact", 35),
    T("T1543.003", "Create or Modify System Process: Windows Service", "persistence", 15),
    T("T1546.003", "Event Triggered Execution: Windows Management Instrumentation Event Subscription", "persistence", 25),
    T("T1546.007", "Event Triggered Execution: Netsh Helper DLL", "persistence", 20),
    T("T1547", "Boot or Logon Autostart Execution", "persistence", 15),
    T("T1547.001", "Boot or Logon Autostart Execution: Registry Run Keys / Startup Folder", "persistence", 20),
    T("T1548.002", "Abuse Elevation Control Mechanism: Bypass User Account Control", "privilege-escalation", 25),
    T("T1552.001", "Unsecured Credentials: Credentials In Files", "credential-access", 20),
    T("T1558", "Steal or Forge Kerberos Tickets", "credential-access", 35),
    T("T1562.001", "Impair Defenses: Disable or Modify Tools", "defense-evasion", 30),
    T("T1562.004", "Impair Defenses: Disable or Modify System Firewall", "defense-evasion", 25),
    T("T1564", "Hide Artifacts", "defense-evasion", 10),
    T("T1564.003", "Hide Artifacts: Hidden Window", "defense-evasion", 10),
    T("T1564.004", "Hide Artifacts: NTFS File Attributes", "defense-evasion", 20),
    T("T1567", "Exfiltration Over Web Service", "exfiltration", 25),
    T("T1569.002", "System Services: Service Execution", "execution", 15),
    T("T1571", "Non-Standard Port", "command-and-control", 10),
};

#undef T

static int tech_cmp(const void *key, const void *elem)
{
    const struct sp_attack_technique *t = elem;
    return strcmp(key, t->id);
}

const struct sp_attack_technique *sp_attack_lookup(const char *id)
{
    if (!id)
        return NULL;
    return bsearch(id, techniques, SP_ARRAY_SIZE(techniques),
                   sizeof(techniques[0]), tech_cmp);
}

size_t sp_attack_technique_count(void)
{
    return SP_ARRAY_SIZE(techniques);
}

const struct sp_attack_technique *sp_attack_technique_at(size_t i)
{
    return i < SP_ARRAY_SIZE(techniques) ? &techniques[i] : NULL;
}

/* ---- hit list ------------------------------------------------------------ */

void sp_attack_list_init(struct sp_attack_list *l, struct sp_arena *a,
                         size_t max)
{
    memset(l, 0, sizeof(*l));
    l->arena = a;
    l->max = max ? max : SP_ATTACK_DEFAULT_MAX;
}

bool sp_attack_list_has(const struct sp_attack_list *l, const char *id)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i].tech->id, id) == 0)
            return true;
    return false;
}

/* Copies at most SP_ATTACK_EVIDENCE_MAX bytes, folding runs of white
 * space (and control bytes) into one space and never cutting a UTF-8
 * sequence in half. */
static char *evidence_copy(struct sp_arena *a, const char *s, size_t n)
{
    char *out = sp_arena_alloc(a, SP_ATTACK_EVIDENCE_MAX + 4);
    if (!out)
        return NULL;
    size_t o = 0;
    bool space = true;        /* drops leading white space */
    for (size_t i = 0; i < n && o < SP_ATTACK_EVIDENCE_MAX; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < ' ' || c == 0x7f) {
            if (!space)
                out[o++] = ' ';
            space = true;
            continue;
        }
        if (c == ' ') {
            if (!space)
                out[o++] = ' ';
            space = true;
            continue;
        }
        out[o++] = (char)c;
        space = false;
    }
    /* back off a partial UTF-8 sequence at the cut */
    if (o == SP_ATTACK_EVIDENCE_MAX) {
        size_t k = o;
        while (k > 0 && ((unsigned char)out[k - 1] & 0xC0) == 0x80)
            k--;
        if (k > 0 && ((unsigned char)out[k - 1] & 0x80)) {
            unsigned char lead = (unsigned char)out[k - 1];
            size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
            if (o - (k - 1) < need)
                o = k - 1;
        }
    }
    while (o > 0 && out[o - 1] == ' ')
        o--;
    out[o] = '\0';
    return out;
}

enum sp_err sp_attack_add(struct sp_attack_list *l, const char *id,
                          const char *what, const char *evidence,
                          size_t evidence_len, unsigned layer)
{
    const struct sp_attack_technique *t = sp_attack_lookup(id);
    if (!t)
        return SP_ERR_INVALID;
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i].tech == t)
            return SP_OK;
    if (l->n >= l->max) {
        l->truncated = true;
        return SP_OK;
    }
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        if (cap > l->max)
            cap = l->max;
        struct sp_attack_hit *v = sp_arena_alloc(l->arena, cap * sizeof(*v));
        if (!v)
            return SP_ERR_NOMEM;
        if (l->n)
            memcpy(v, l->v, l->n * sizeof(*v));
        l->v = v;
        l->cap = cap;
    }
    char *ev = evidence_copy(l->arena, evidence ? evidence : "",
                             evidence ? evidence_len : 0);
    if (!ev)
        return SP_ERR_NOMEM;
    l->v[l->n].tech = t;
    l->v[l->n].what = what;
    l->v[l->n].evidence = ev;
    l->v[l->n].layer = layer;
    l->n++;
    return SP_OK;
}

/* ---- language guess ------------------------------------------------------------------ */

struct marker {
    const char *s;
    unsigned char lang;
};

enum { L_PS, L_CMD, L_SH, L_PY, L_VBS, L_JS, L__N };

static const char *const lang_names[L__N] = {
    "powershell", "cmd", "sh", "python", "vbscript", "javascript",
};

static const struct marker markers[] = {
    {"new-object", L_PS}, {"invoke-", L_PS}, {"iex", L_PS}, {"write-host", L_PS},
    {"[convert]::", L_PS}, {"[char]", L_PS}, {"-join", L_PS}, {"$env:", L_PS},
    {"start-process", L_PS}, {"foreach-object", L_PS}, {"get-", L_PS},
    {"set-", L_PS}, {".invoke(", L_PS}, {"[string]", L_PS}, {"-replace", L_PS},
    {"-split", L_PS}, {"-bxor", L_PS}, {"frombase64string", L_PS},
    {"powershell", L_PS}, {"[system.", L_PS},
    {"cmd", L_CMD}, {"%comspec%", L_CMD}, {"/c ", L_CMD}, {"set ", L_CMD},
    {"for /f", L_CMD}, {"for /l", L_CMD}, {"echo ", L_CMD}, {"call ", L_CMD},
    {":~", L_CMD}, {"/v:", L_CMD}, {"^", L_CMD},
    {"/bin/", L_SH}, {"$(", L_SH}, {"; do", L_SH}, {"done", L_SH},
    {"| sh", L_SH}, {"| bash", L_SH}, {"/dev/tcp", L_SH}, {"export ", L_SH},
    {"chmod ", L_SH}, {"/tmp/", L_SH}, {"base64 -d", L_SH}, {"sudo ", L_SH},
    {"#!/", L_SH}, {"mkfifo", L_SH},
    {"import ", L_PY}, {"__import__", L_PY}, {"python", L_PY},
    {"createobject(", L_VBS}, {"vbscript", L_VBS}, {"dim ", L_VBS},
    {"activexobject", L_JS}, {"javascript:", L_JS}, {"function(", L_JS},
    {"eval(", L_JS},
};

const char *sp_attack_guess_language(const char *text, size_t len)
{
    unsigned score[L__N] = {0};
    char buf[2048];
    size_t n = SP_MIN(len, sizeof(buf));
    for (size_t i = 0; i < n; i++)
        buf[i] = sp_tolower(text[i]);
    for (size_t k = 0; k < SP_ARRAY_SIZE(markers); k++)
        if (memmem(buf, n, markers[k].s, strlen(markers[k].s)))
            score[markers[k].lang]++;
    unsigned best = 0, which = L__N;
    bool tie = false;
    for (unsigned k = 0; k < L__N; k++) {
        if (score[k] > best) {
            best = score[k];
            which = k;
            tie = false;
        } else if (score[k] == best && best > 0) {
            tie = true;
        }
    }
    if (which == L__N || tie)
        return "unknown";
    return lang_names[which];
}
