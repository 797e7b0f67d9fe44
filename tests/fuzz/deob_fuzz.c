/*
 * deob_fuzz.c - libFuzzer harness for the layered deobfuscation engine
 * alone (sp_deob_run): every decoder of deob*.c - PowerShell launcher,
 * -EncodedCommand and the folding engine, the cmd.exe decoders and
 * emulator, the shell and generic decoders - on arbitrary bytes.
 *
 * Limits are kept small (8 layers, 256 KiB of decoded output, 50 ms) so
 * that every input runs fast; the input is handed over without a NUL
 * terminator, as the pipeline does.  Promises checked (abort() = crash):
 * the run succeeds or reports out-of-memory; layer 0 is the input; there
 * are at most max_layers decoded layers and they fit max_output; every
 * layer is NUL-terminated valid UTF-8 without NULs, names a documented
 * technique and differs from the layer before it; only known bounds and
 * languages are reported; freeing the result twice is harmless.
 *
 * Owns nothing across inputs.  Single threaded, as libFuzzer and the
 * corpus replay call it.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "deob.h"

#define FUZZ_LAYERS 8u
#define FUZZ_OUTPUT ((size_t)256 << 10)
#define FUZZ_TIME_US 50000

static void must(bool ok)
{
    if (!ok)
        abort();
}

/* Strict UTF-8: shortest forms only, no surrogates, at most U+10FFFF. */
static bool utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t k;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            k = 1, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            k = 2, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            k = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (n - i <= k)
            return false;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += k + 1;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* a private copy, so reads past `size` are caught by the sanitizer */
    char *in = malloc(size ? size : 1);
    must(in != NULL);
    if (size)
        memcpy(in, data, size);

    struct sp_deob_limits lim;
    sp_deob_limits_default(&lim);
    lim.max_layers = FUZZ_LAYERS;
    lim.max_output = FUZZ_OUTPUT;
    lim.max_time_us = FUZZ_TIME_US;

    struct sp_deob_result r;
    enum sp_err err = sp_deob_run(in, size, &lim, &r);
    if (err != SP_OK) {
        must(err == SP_ERR_NOMEM);
        must(r.n_layers == 0);
        free(in);
        return 0;
    }
    must(r.n_layers >= 1 && r.n_layers <= FUZZ_LAYERS + 1);
    must(!strcmp(r.layers[0].technique, "input"));
    size_t decoded = 0;
    for (size_t i = 0; i < r.n_layers; i++) {
        const struct sp_deob_layer *l = &r.layers[i];
        must(l->text != NULL && l->text[l->len] == '\0');
        must(strlen(l->text) == l->len);
        must(utf8_valid((const unsigned char *)l->text, l->len));
        must(l->technique != NULL && l->description != NULL);
        must(sp_deob_technique_description(l->technique) != NULL);
        if (i == 0)
            continue;
        decoded += l->len;
        const struct sp_deob_layer *prev = &r.layers[i - 1];
        must(l->len != prev->len || memcmp(l->text, prev->text, l->len));
    }
    must(decoded <= FUZZ_OUTPUT);
    must((r.bounds_hit & ~(unsigned)(SP_DEOB_BOUND_LAYERS |
                                     SP_DEOB_BOUND_OUTPUT |
                                     SP_DEOB_BOUND_RATIO |
                                     SP_DEOB_BOUND_TIME)) == 0);
    must(r.language != NULL &&
         (!strcmp(r.language, "powershell") || !strcmp(r.language, "cmd") ||
          !strcmp(r.language, "sh") || !strcmp(r.language, "unknown")));
    sp_deob_result_fini(&r);
    sp_deob_result_fini(&r);
    free(in);
    return 0;
}
