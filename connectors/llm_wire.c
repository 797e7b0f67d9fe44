/*
 * llm_wire.c - the bytes of the chat completions API: the request URL for
 * OpenAI-compatible servers and for Azure OpenAI deployments, the JSON
 * request body (model, messages, temperature, token cap, response_format),
 * and the response parser (answer text, refusal, finish reason, usage, or
 * the error object of a failed call).
 *
 * Responses are parsed with the bounded arena parser (json.h): the server
 * is outside our trust boundary, so size, depth and node limits apply.
 * Pure functions; any thread.
 */
#include <string.h>

#include "llm_int.h"

/* Appends s with trailing slashes removed. */
static void put_base(struct sp_buf *b, const char *s)
{
    size_t n = strlen(s);
    while (n && s[n - 1] == '/')
        n--;
    sp_buf_put(b, s, n);
}

/* Percent-encodes everything but RFC 3986 unreserved characters. */
static void put_escaped(struct sp_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
            (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
            c == '~') {
            sp_buf_putc(b, (char)c);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            sp_buf_put(b, e, 3);
        }
    }
}

enum sp_err llm_wire_url(const struct sp_llm_opts *o, struct sp_buf *url)
{
    put_base(url, o->base_url ? o->base_url : "");
    if (o->provider == SP_LLM_AZURE) {
        sp_buf_puts(url, "/openai/deployments/");
        put_escaped(url, o->deployment ? o->deployment : "");
        sp_buf_puts(url, "/chat/completions?api-version=");
        put_escaped(url, o->api_version ? o->api_version : "");
    } else {
        sp_buf_puts(url, "/chat/completions");
    }
    return url->overflow ? SP_ERR_LIMIT : SP_OK;
}

enum sp_err llm_wire_body(const struct sp_llm_opts *o,
                          const struct sp_llm_msg *msgs, size_t n_msgs,
                          const char *schema_name, const char *schema,
                          int max_tokens, enum llm_rf_send rf,
                          struct sp_buf *body)
{
    struct sp_jw w;
    sp_jw_init(&w, body);
    sp_jw_obj_open(&w);
    /* Azure picks the model by deployment; OpenAI-compatible servers need
     * the name. */
    if (o->model && *o->model)
        sp_jw_kstr(&w, "model", o->model);
    sp_jw_key(&w, "messages");
    sp_jw_arr_open(&w);
    for (size_t i = 0; i < n_msgs; i++) {
        sp_jw_obj_open(&w);
        sp_jw_kstr(&w, "role", msgs[i].role);
        sp_jw_kstr(&w, "content", msgs[i].content ? msgs[i].content : "");
        sp_jw_obj_close(&w);
    }
    sp_jw_arr_close(&w);
    if (o->temperature >= 0) {
        sp_jw_key(&w, "temperature");
        sp_jw_double(&w, o->temperature);
    }
    if (max_tokens > 0) {
        sp_jw_kint(&w, o->max_completion_tokens ? "max_completion_tokens"
                                                : "max_tokens",
                   max_tokens);
    }
    if (rf == LLM_RF_SEND_SCHEMA && schema) {
        sp_jw_key(&w, "response_format");
        sp_jw_obj_open(&w);
        sp_jw_kstr(&w, "type", "json_schema");
        sp_jw_key(&w, "json_schema");
        sp_jw_obj_open(&w);
        sp_jw_kstr(&w, "name", schema_name && *schema_name ? schema_name
                                                          : "answer");
        sp_jw_kbool(&w, "strict", true);
        sp_jw_key(&w, "schema");
        sp_jw_raw(&w, schema, strlen(schema));
        sp_jw_obj_close(&w);
        sp_jw_obj_close(&w);
    } else if (rf == LLM_RF_SEND_OBJECT && schema) {
        sp_jw_key(&w, "response_format");
        sp_jw_obj_open(&w);
        sp_jw_kstr(&w, "type", "json_object");
        sp_jw_obj_close(&w);
    }
    sp_jw_obj_close(&w);
    return sp_jw_ok(&w) ? SP_OK : SP_ERR_LIMIT;
}

static int64_t get_int(const struct sp_json *obj, const char *key)
{
    int64_t v;
    return sp_json_int(sp_json_get(obj, key), &v) && v >= 0 ? v : 0;
}

enum sp_err llm_wire_parse(struct sp_arena *a, const char *body, size_t len,
                           bool success, struct llm_answer *out)
{
    memset(out, 0, sizeof(*out));
    struct sp_json_limits lim = {len + 1, 64, 200000};
    struct sp_json_error jerr;
    struct sp_json *root = sp_json_parse(a, body, len, &lim, &jerr);
    if (!root || root->type != SP_JSON_OBJECT)
        return SP_ERR_INVALID;
    const struct sp_json *err = sp_json_get(root, "error");
    if (err && err->type == SP_JSON_OBJECT) {
        out->err_message = sp_json_str(err, "message");
        out->err_code = sp_json_scalar(sp_json_get(err, "code"));
        out->err_param = sp_json_str(err, "param");
    } else if (err && err->type == SP_JSON_STRING) {
        out->err_message = err->u.s;     /* some compatible servers */
    }
    if (!success)
        return SP_OK;
    out->model = sp_json_str(root, "model");
    const struct sp_json *usage = sp_json_get(root, "usage");
    out->prompt_tokens = get_int(usage, "prompt_tokens");
    out->completion_tokens = get_int(usage, "completion_tokens");
    out->total_tokens = get_int(usage, "total_tokens");
    if (!out->total_tokens)
        out->total_tokens = out->prompt_tokens + out->completion_tokens;
    const struct sp_json *choices = sp_json_get(root, "choices");
    if (!choices || choices->type != SP_JSON_ARRAY || !choices->u.child)
        return SP_ERR_INVALID;
    const struct sp_json *ch = choices->u.child;
    out->finish_reason = sp_json_str(ch, "finish_reason");
    const struct sp_json *msg = sp_json_get(ch, "message");
    if (!msg || msg->type != SP_JSON_OBJECT)
        return SP_ERR_INVALID;
    out->refusal = sp_json_str(msg, "refusal");
    const struct sp_json *content = sp_json_get(msg, "content");
    if (content && content->type == SP_JSON_STRING) {
        out->content = content->u.s;
        out->content_len = content->n;
    }
    if (!out->content && !out->refusal)
        return SP_ERR_INVALID;
    return SP_OK;
}

static bool has_word(const char *s, const char *w)
{
    return s && strstr(s, w) != NULL;
}

bool llm_wire_rf_refused(const struct llm_answer *ans)
{
    if (ans->err_param && strcmp(ans->err_param, "response_format") == 0)
        return true;
    return has_word(ans->err_message, "response_format") ||
           has_word(ans->err_message, "json_schema") ||
           has_word(ans->err_message, "structured output");
}
