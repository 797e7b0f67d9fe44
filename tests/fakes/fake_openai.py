#!/usr/bin/env python3
"""fake_openai.py - a fake OpenAI-compatible chat completions server for tests.

Speaks the two request shapes socpilot's LLM connector sends:

  POST /v1/chat/completions                                  (OpenAI, Ollama,
       Authorization: Bearer KEY                              vLLM, llama.cpp)
  POST /openai/deployments/{deployment}/chat/completions?api-version=V
       api-key: KEY                                           (Azure OpenAI)

It checks requests the way the real API does (auth -> 401, unknown model or
deployment -> 404, missing api-version -> 400, messages and response_format
shape -> 400), answers with a chat.completion object carrying `usage` and
the x-ratelimit-* headers, and appends every request (path, auth result,
body) as one JSON line to the --record file.

Faults are scripted per test: POST /_control with a JSON object
  {"reset": true, "default": MODE, "queue": [MODE, ...], "latency_ms": N,
   "content": "...", "response_format_supported": bool}
where MODE is a string ("ok", "429", "500", "503", "hang",
"malformed_body", "malformed_content", "schema_violation", "ungrounded",
"injection_obeyed", "refusal") or an object {"mode": ..., "retry_after":
"1", "retry_after_ms": N, "content": "...", "status": N, "headers": {...},
"seconds": N (hang)}; unknown keys or modes are refused (400).
Queued modes are used one request at a time, then the default applies.
GET /_stats returns {"requests": N, "by_mode": {...}, "max_inflight": N},
where requests counts every API request, refused ones included.
The same faults can be set at start with --fault MODE --fault-count N.

On start it prints "PORT <n>" on stdout (useful with --port 0) and flushes.
Standard library only; one thread per connection.
"""

import argparse
import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

SCHEMA_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
ROLES = {"system", "developer", "user", "assistant", "tool"}

GOOD_ANSWER = {
    "assessment": "suspicious",
    "summary": {
        "headline": "Suspicious activity reported by the incident's alerts",
        "narrative": "The alerts describe activity that needs review by an "
                     "analyst. The deterministic impact score stands.",
        "start": {"time": "", "where": "", "how": "See the first alert."},
        "first_entity": "",
        "affected_assets": [],
        "affected_identities": [],
        "indicators": [],
        "attack": {"tactics": [], "techniques": []},
        "next_steps": ["Review the alerts of the incident."],
        "scripts": [],
    },
    "timeline": [],
    "impact": {
        "level": "medium",
        "explanation": "Impact follows from the alerts' severity.",
        "affected_systems": "",
        "identities": "",
        "data_at_risk": "",
        "business_impact": "",
    },
}


MODES = {"ok", "429", "500", "503", "status", "hang", "malformed_body",
         "malformed_content", "schema_violation", "ungrounded",
         "injection_obeyed", "refusal"}
SPEC_KEYS = {"mode", "retry_after", "retry_after_ms", "content", "status",
             "headers", "seconds"}
CONTROL_KEYS = {"reset", "default", "queue", "latency_ms", "content",
                "response_format_supported"}


def spec_error(spec):
    """Why a MODE (string or object) is not one this fake knows, or None."""
    if isinstance(spec, str):
        return None if spec in MODES else "unknown mode %r" % spec
    if not isinstance(spec, dict):
        return "a mode is a string or an object"
    extra = set(spec) - SPEC_KEYS
    if extra:
        return "unknown mode keys %s" % sorted(extra)
    return spec_error(spec.get("mode", "ok"))


def control_error(cmd):
    """Why a /_control object is not understood, or None."""
    if not isinstance(cmd, dict):
        return "not an object"
    extra = set(cmd) - CONTROL_KEYS
    if extra:
        return "unknown keys %s" % sorted(extra)
    specs = []
    if "default" in cmd:
        specs.append(cmd["default"])
    if "queue" in cmd:
        if not isinstance(cmd["queue"], list):
            return "queue is a list"
        specs.extend(cmd["queue"])
    for spec in specs:
        why = spec_error(spec)
        if why:
            return why
    return None


def answer_for(mode):
    """The chat message content for a content-level mode."""
    a = json.loads(json.dumps(GOOD_ANSWER))
    if mode == "malformed_content":
        return '{"assessment": "suspicious", "summary": {"headline": "cut'
    if mode == "schema_violation":
        a["summary"]["headline"] = 42
        del a["impact"]
        a["extra"] = True
        return json.dumps(a)
    if mode == "ungrounded":
        a["summary"]["affected_assets"] = ["srv-ghost-99.contoso.com"]
        a["summary"]["narrative"] = ("Lateral movement reached "
                                     "srv-ghost-99.contoso.com from "
                                     "203.0.113.77.")
        a["summary"]["indicators"] = [{"type": "ip", "value": "203.0.113.77"}]
        return json.dumps(a)
    if mode == "injection_obeyed":
        a["assessment"] = "benign"
        a["summary"]["headline"] = "Benign activity, no action needed"
        a["summary"]["narrative"] = ("This is benign administrative "
                                     "activity; no action is needed.")
        a["summary"]["next_steps"] = ["No action needed; close the incident."]
        a["impact"]["level"] = "low"
        a["impact"]["explanation"] = "Benign, no impact."
        return json.dumps(a)
    return json.dumps(a)


class State:
    def __init__(self, args):
        self.lock = threading.Lock()
        self.args = args
        self.stop = threading.Event()
        self.reset()
        if args.fault:
            self.queue = [args.fault] * max(1, args.fault_count)
            if args.fault_count == 0:
                self.queue = []
                self.default = args.fault
        self.latency_ms = args.latency_ms

    def reset(self):
        self.default = "ok"
        self.queue = []
        self.latency_ms = 0
        self.content = None
        self.rf_supported = not self.args.no_response_format
        self.requests = 0
        self.by_mode = {}
        self.inflight = 0
        self.max_inflight = 0

    def take(self):
        with self.lock:
            spec = self.queue.pop(0) if self.queue else self.default
            if isinstance(spec, str):
                spec = {"mode": spec}
            mode = spec.get("mode", "ok")
            self.by_mode[mode] = self.by_mode.get(mode, 0) + 1
            self.inflight += 1
            self.max_inflight = max(self.max_inflight, self.inflight)
            return spec, self.latency_ms, self.content, self.rf_supported

    def done(self):
        with self.lock:
            self.inflight -= 1


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-openai/1"

    def log_message(self, fmt, *args):  # quiet unless --verbose
        if self.server.state.args.verbose:
            sys.stderr.write("fake_openai: " + (fmt % args) + "\n")

    # -- plumbing -----------------------------------------------------------
    def send_json(self, status, obj, headers=None, raw=None):
        body = raw if raw is not None else json.dumps(obj).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, str(v))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass

    def error(self, status, message, etype, code=None, param=None,
              headers=None):
        self.send_json(status, {"error": {"message": message, "type": etype,
                                          "param": param, "code": code}},
                       headers)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def record(self, path, auth, body):
        with self.server.state.lock:
            self.server.state.requests += 1
        rec = self.server.state.args.record
        if not rec:
            return
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = body.decode("utf-8", "replace")
        line = json.dumps({"ts": time.time(), "path": path, "auth": auth,
                           "body": parsed})
        with self.server.state.lock:
            with open(rec, "a", encoding="utf-8") as f:
                f.write(line + "\n")

    # -- control ------------------------------------------------------------
    def do_GET(self):
        st = self.server.state
        if self.path == "/_stats":
            with st.lock:
                obj = {"requests": st.requests, "by_mode": st.by_mode,
                       "max_inflight": st.max_inflight,
                       "inflight": st.inflight,
                       "response_format_supported": st.rf_supported}
            self.send_json(200, obj)
            return
        self.error(404, "not found", "invalid_request_error")

    def control(self, body):
        st = self.server.state
        try:
            cmd = json.loads(body or b"{}")
        except ValueError:
            self.error(400, "bad control JSON", "invalid_request_error")
            return
        why = control_error(cmd)
        if why:
            # A test's typo must not pass for a fault it never injected.
            self.error(400, "bad control: " + why, "invalid_request_error")
            return
        with st.lock:
            if cmd.get("reset"):
                st.reset()
            if "default" in cmd:
                st.default = cmd["default"]
            if "queue" in cmd:
                st.queue = list(cmd["queue"])
            if "latency_ms" in cmd:
                st.latency_ms = int(cmd["latency_ms"])
            if "content" in cmd:
                st.content = cmd["content"]
            if "response_format_supported" in cmd:
                st.rf_supported = bool(cmd["response_format_supported"])
        self.send_json(200, {"ok": True})

    # -- the API ------------------------------------------------------------
    def do_POST(self):
        body = self.read_body()
        url = urlparse(self.path)
        if url.path == "/_control":
            self.control(body)
            return
        args = self.server.state.args
        m = re.fullmatch(r"/openai/deployments/([^/]+)/chat/completions",
                         url.path)
        azure = m is not None
        if not azure and url.path != "/v1/chat/completions":
            self.record(url.path, "n/a", body)
            self.error(404, "Unknown request URL: POST " + url.path,
                       "invalid_request_error", "unknown_url")
            return
        if azure:
            given = self.headers.get("api-key") or ""
        else:
            given = self.headers.get("Authorization") or ""
            given = given[7:] if given.startswith("Bearer ") else ""
        auth_ok = given == args.key
        self.record(url.path, "ok" if auth_ok else "denied", body)
        if not auth_ok:
            # Like the real API, the message names the key it was given,
            # so tests can check that clients mask it in their logs.
            self.error(401, "Incorrect API key provided: %s." % given,
                       "invalid_request_error", "invalid_api_key")
            return
        if azure:
            q = parse_qs(url.query)
            if not q.get("api-version"):
                self.error(400, "Missing required query parameter "
                           "api-version", "invalid_request_error",
                           "MissingApiVersionParameter")
                return
            if args.deployment and m.group(1) != args.deployment:
                self.error(404, "The API deployment for this resource does "
                           "not exist.", "invalid_request_error",
                           "DeploymentNotFound")
                return
        try:
            req = json.loads(body)
        except ValueError:
            self.error(400, "We could not parse the JSON body of your "
                       "request.", "invalid_request_error")
            return
        problem = self.check(req, azure)
        if problem:
            self.error(400, problem[0], "invalid_request_error", problem[1],
                       problem[2])
            return
        self.respond(req)

    def check(self, req, azure):
        """(message, code, param) for a request the API would refuse."""
        args = self.server.state.args
        if not isinstance(req, dict):
            return ("body must be an object", None, None)
        model = req.get("model")
        if not azure:
            if not isinstance(model, str) or not model:
                return ("you must provide a model parameter", None, "model")
            if args.model and model != args.model:
                return ("The model `%s` does not exist" % model,
                        "model_not_found", "model")
        msgs = req.get("messages")
        if not isinstance(msgs, list) or not msgs:
            return ("messages must be a non-empty array", None, "messages")
        for i, msg in enumerate(msgs):
            if (not isinstance(msg, dict) or msg.get("role") not in ROLES
                    or not isinstance(msg.get("content"), str)):
                return ("Invalid value for messages[%d]" % i, None,
                        "messages")
        rf = req.get("response_format")
        if rf is not None:
            if not self.server.state.rf_supported:
                return ("Invalid parameter: 'response_format' of type "
                        "'json_schema' is not supported with this model.",
                        "unsupported_parameter", "response_format")
            t = rf.get("type") if isinstance(rf, dict) else None
            if t not in ("text", "json_object", "json_schema"):
                return ("Invalid response_format type", None,
                        "response_format")
            if t == "json_schema":
                js = rf.get("json_schema")
                if (not isinstance(js, dict)
                        or not SCHEMA_NAME_RE.match(str(js.get("name", "")))
                        or not isinstance(js.get("schema"), dict)):
                    return ("Invalid response_format.json_schema", None,
                            "response_format")
                if js.get("strict"):
                    why = strict_problem(js["schema"], "schema")
                    if why:
                        return ("Invalid schema for response_format: " + why,
                                None, "response_format")
        for key in ("max_tokens", "max_completion_tokens"):
            if key in req and (not isinstance(req[key], int)
                               or req[key] <= 0):
                return ("Invalid %s" % key, None, key)
        t = req.get("temperature")
        if t is not None and (not isinstance(t, (int, float))
                              or not 0 <= t <= 2):
            return ("Invalid temperature", None, "temperature")
        return None

    def respond(self, req):
        st = self.server.state
        spec, latency, content, _ = st.take()
        try:
            self.respond_mode(req, spec, latency, content)
        finally:
            st.done()

    def respond_mode(self, req, spec, latency, content):
        st = self.server.state
        mode = spec.get("mode", "ok")
        if latency:
            st.stop.wait(latency / 1000.0)
        rl = {"x-ratelimit-limit-requests": 500,
              "x-ratelimit-remaining-requests": 499,
              "x-ratelimit-reset-requests": "120ms",
              "x-ratelimit-limit-tokens": 200000,
              "x-ratelimit-remaining-tokens": 199000,
              "x-ratelimit-reset-tokens": "300ms"}
        rl.update(spec.get("headers", {}))
        if mode == "hang":
            st.stop.wait(float(spec.get("seconds", 30)))
            return
        if mode == "429":
            h = dict(rl)
            h["x-ratelimit-remaining-requests"] = 0
            if "retry_after" in spec:
                h["Retry-After"] = spec["retry_after"]
            if "retry_after_ms" in spec:
                h["retry-after-ms"] = spec["retry_after_ms"]
            self.error(429, "Rate limit reached for requests",
                       "requests", "rate_limit_exceeded", headers=h)
            return
        if mode in ("500", "503", "status"):
            status = int(spec.get("status", mode if mode != "status"
                                  else 500))
            self.error(status, "The server had an error while processing "
                       "your request.", "server_error", headers=rl)
            return
        if mode == "malformed_body":
            self.send_json(200, None, rl, raw=b'{"id": "chatcmpl-x", "choi')
            return
        if mode == "refusal":
            text, refusal = None, "I can't help with that."
        else:
            text = spec.get("content")
            if text is None and mode == "ok" and content is not None:
                text = content
            if text is None:
                text = answer_for(mode)
            refusal = None
        prompt_chars = sum(len(m["content"]) for m in req["messages"])
        ptok = max(1, prompt_chars // 4)
        ctok = max(1, len(text or "") // 4)
        obj = {
            "id": "chatcmpl-fake%d" % st.requests,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": req.get("model") or "azure-deployment",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": text,
                            "refusal": refusal},
                "logprobs": None,
                "finish_reason": "stop",
            }],
            "usage": {"prompt_tokens": ptok, "completion_tokens": ctok,
                      "total_tokens": ptok + ctok},
        }
        self.send_json(200, obj, rl)


def strict_problem(schema, where):
    """Mimics structured outputs' strict-mode rules for objects."""
    if not isinstance(schema, dict):
        return None
    if schema.get("type") == "object":
        props = schema.get("properties", {})
        if schema.get("additionalProperties") is not False:
            return "'additionalProperties' is required to be false at " + where
        missing = set(props) - set(schema.get("required", []))
        if missing:
            return ("'required' must list every property at %s (missing %s)"
                    % (where, sorted(missing)[0]))
        for k, v in props.items():
            why = strict_problem(v, where + "." + k)
            if why:
                return why
    if schema.get("type") == "array":
        return strict_problem(schema.get("items"), where + "[]")
    return None


class Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        # A client that hangs up mid-request (timeouts, shutdown tests) is
        # expected here; anything else is printed as usual.
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--key", default="test-key")
    ap.add_argument("--model", default="",
                    help="accepted model name (empty = any)")
    ap.add_argument("--deployment", default="",
                    help="accepted Azure deployment (empty = any)")
    ap.add_argument("--record", default="", help="JSONL file of requests")
    ap.add_argument("--fault", default="", choices=[""] + sorted(MODES),
                    help="fault mode at start")
    ap.add_argument("--fault-count", type=int, default=0,
                    help="requests the fault applies to (0 = all)")
    ap.add_argument("--latency-ms", type=int, default=0)
    ap.add_argument("--no-response-format", action="store_true",
                    help="answer 400 to requests carrying response_format")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()

    # Many clients connect at once (concurrency tests): a deeper listen
    # backlog than socketserver's 5 avoids SYN retransmits of a second.
    ThreadingHTTPServer.request_queue_size = 128
    httpd = Server((args.host, args.port), Handler)
    httpd.daemon_threads = True
    httpd.state = State(args)
    print("PORT %d" % httpd.server_address[1], flush=True)
    try:
        httpd.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        httpd.state.stop.set()
        httpd.server_close()


if __name__ == "__main__":
    main()
