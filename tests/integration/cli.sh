#!/bin/sh
# cli.sh BUILD - the command line as a user meets it: help for every
# command, version, config validation (errors name the key and the line,
# secrets masked), the documented example config in sync with the key
# tables, and the demo (embedded mock cluster) end to end.
set -u
build=${1:-build}
sp="$build/socpilot"
tmp=$(mktemp -d)
rpid=
trap '[ -n "$rpid" ] && kill "$rpid" 2>/dev/null; rm -rf "$tmp"' EXIT
pass=0; fail=0
ok()   { pass=$((pass + 1)); }
bad()  { fail=$((fail + 1)); echo "  FAIL: $*"; }
check() { if eval "$2"; then ok; else bad "$1"; fi; }

check "version" '"$sp" version | grep -q "^socpilot "'
for c in run demo normalize analyze-script incident analyze check-config mock-kafka replay; do
    check "$c --help" '"$sp" $c --help >"$tmp/h" 2>&1 && grep -qi usage "$tmp/h"'
done
check "unknown command exits 2" '"$sp" frobnicate >/dev/null 2>&1; [ $? -eq 2 ]'

# replay: a file it cannot read stops it before anything is produced (no
# broker needed to see it), and usage errors say what is wrong.
"$sp" replay config/samples/07_generic_ndr_beacon.json no/such/file.json --topic t -b 127.0.0.1:1 >"$tmp/r" 2>&1; rc=$?
check "replay of a missing file exits 1 and names it (rc=$rc)" '[ $rc -eq 1 ] && grep -q "no/such/file.json: No such file" "$tmp/r" && grep -q "nothing produced" "$tmp/r"'
"$sp" replay config/samples/07_generic_ndr_beacon.json >"$tmp/r" 2>&1; rc=$?
check "replay without --topic says so (rc=$rc)" '[ $rc -eq 2 ] && grep -q "topic T is required" "$tmp/r"'

# analyze: usage errors say what is wrong.
"$sp" analyze >"$tmp/a" 2>&1; rc=$?
check "analyze without INCIDENT_ID says so (rc=$rc)" '[ $rc -eq 2 ] && grep -q "INCIDENT_ID missing" "$tmp/a"'
"$sp" analyze --estimate inc-1 >"$tmp/a" 2>&1; rc=$?
check "analyze --estimate with an id says so (rc=$rc)" '[ $rc -eq 2 ] && grep -q "takes no INCIDENT_ID" "$tmp/a"'
# A rate that is not a number was taken for 0 (abc), or printed as nan/inf
# in the JSON (not JSON).
for v in abc 12x nan inf 1e400 -1; do
    "$sp" analyze --estimate --alerts-per-day "$v" >"$tmp/a" 2>&1; rc=$?
    check "analyze --estimate --alerts-per-day $v says so (rc=$rc)" '[ $rc -eq 2 ] && grep -q "alerts-per-day" "$tmp/a" && ! grep -q "^{" "$tmp/a"'
done
"$sp" analyze --estimate --incidents-per-day 250.5 >"$tmp/a" 2>&1; rc=$?
check "analyze --estimate --incidents-per-day 250.5 (rc=$rc)" '[ $rc -eq 0 ] && grep -q "\"incidents_per_day\":250" "$tmp/a"'

# The documented example config is generated from the key tables.
"$sp" check-config --example >"$tmp/example.yaml" 2>"$tmp/err"
check "example config generated" '[ -s "$tmp/example.yaml" ]'
check "config/socpilot.yaml in sync with the key tables (regenerate: socpilot check-config --example > config/socpilot.yaml)" \
      'diff -u config/socpilot.yaml "$tmp/example.yaml" >"$tmp/diff"'
check "example config validates" '"$sp" check-config -c config/socpilot.yaml >/dev/null 2>&1'
check "demo config validates" '"$sp" check-config -c config/demo.yaml >/dev/null 2>&1'

# Errors name the key and the line.
printf 'pipeline:\n  batch_size: 0\n' >"$tmp/bad1.yaml"
"$sp" check-config -c "$tmp/bad1.yaml" >/dev/null 2>"$tmp/e1"
check "range error names file, line and key" 'grep -q "bad1.yaml:2" "$tmp/e1" && grep -q "pipeline.batch_size" "$tmp/e1"'
printf 'kafka:\n  brokres: x\n' >"$tmp/bad2.yaml"
"$sp" check-config -c "$tmp/bad2.yaml" >/dev/null 2>"$tmp/e2"
check "unknown key names line and suggests" 'grep -q "bad2.yaml:2" "$tmp/e2" && grep -q "kafka.brokers" "$tmp/e2"'

# check-config refuses what run would refuse at start-up.
printf 'pipeline:\n  stages: [decode, corelate, publish]\n' >"$tmp/bad3.yaml"
"$sp" check-config -c "$tmp/bad3.yaml" >/dev/null 2>"$tmp/e4"; rc=$?
check "unknown stage refused with file, line and key (rc=$rc)" '[ $rc -eq 1 ] && grep -q "bad3.yaml:2: pipeline.stages: unknown stage .corelate." "$tmp/e4"'
"$sp" check-config -s kafka.consumer.fetch.max.bytez=1 >/dev/null 2>"$tmp/e5"; rc=$?
check "unknown librdkafka property refused (rc=$rc)" '[ $rc -eq 1 ] && grep -q "kafka.consumer.fetch.max.bytez" "$tmp/e5"'

# One config file: a second -c would silently replace the first.
"$sp" check-config -c config/demo.yaml -c config/socpilot.yaml >/dev/null 2>"$tmp/e6"; rc=$?
check "-c twice refused (rc=$rc)" '[ $rc -eq 2 ] && grep -q "given twice" "$tmp/e6"'

# Secrets never printed; -s overrides; ${ENV} substitution.
printf 'kafka:\n  client:\n    sasl.password: ${SP_TEST_SECRET}\n    sasl.username: $ConnectionString\n' >"$tmp/sec.yaml"
SP_TEST_SECRET=hunter2-very-secret "$sp" check-config -c "$tmp/sec.yaml" -s pipeline.batch_size=77 >"$tmp/dump" 2>&1
check "secret masked in dump" '! grep -q hunter2 "$tmp/dump" && grep -q "\*\*\*\*" "$tmp/dump"'
check "-s override shown" 'grep -q "pipeline.batch_size: 77" "$tmp/dump"'

# normalize without Kafka.
if ls tests/fixtures/alerts/*.json >/dev/null 2>&1; then
    f=$(ls tests/fixtures/alerts/graph*.json 2>/dev/null | head -n 1)
    [ -n "$f" ] || f=$(ls tests/fixtures/alerts/*.json | head -n 1)
    check "normalize prints alerts" '"$sp" normalize "$f" >"$tmp/n" 2>/dev/null; grep -q "\"id\"" "$tmp/n"'
fi
printf 'not json\n' | "$sp" normalize - >"$tmp/n2" 2>"$tmp/e3"
check "normalize reports rejects with a reason" '[ $? -ne 0 ] || true; grep -q "not_json" "$tmp/e3"'

# incident: usage errors say what is wrong; against an empty Redis (a
# private redis-server on a unix socket), an unknown id is named.
"$sp" incident show >"$tmp/i1" 2>&1; rc=$?
check "incident show without ID says so (rc=$rc)" '[ $rc -eq 2 ] && grep -q "show needs an incident ID" "$tmp/i1"'
"$sp" incident list -n abc >"$tmp/i2" 2>&1; rc=$?
check "incident list -n abc says so (rc=$rc)" '[ $rc -eq 2 ] && grep -q "needs a positive number" "$tmp/i2"'
"$sp" incident bogus >"$tmp/i3" 2>&1; rc=$?
check "incident bogus says so (rc=$rc)" '[ $rc -eq 2 ] && grep -q "unknown command .bogus." "$tmp/i3"'
if command -v redis-server >/dev/null 2>&1; then
    redis-server --port 0 --unixsocket "$tmp/redis.sock" --unixsocketperm 700 \
        --save '' --appendonly no >/dev/null 2>&1 &
    rpid=$!
    i=0
    while [ ! -S "$tmp/redis.sock" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
    "$sp" incident show inc-0123abcd -s redis.unix_socket="$tmp/redis.sock" >"$tmp/i4" 2>&1; rc=$?
    check "incident show of an unknown id exits 1 naming it (rc=$rc)" '[ $rc -eq 1 ] && grep -q "inc-0123abcd: no such incident" "$tmp/i4"'
    "$sp" incident list -s redis.unix_socket="$tmp/redis.sock" >"$tmp/i5" 2>&1; rc=$?
    check "incident list of an empty Redis exits 0 (rc=$rc)" '[ $rc -eq 0 ] && grep -q "^ID  *STATUS" "$tmp/i5"'
    # Its output is the answer: no progress lines from the config's
    # log.level, unless -s log.level asks for them.
    "$sp" incident list -s redis.unix_socket="$tmp/redis.sock" 2>"$tmp/i6" >/dev/null
    check "incident list logs nothing at the default level" '[ ! -s "$tmp/i6" ]'
    "$sp" incident list -s redis.unix_socket="$tmp/redis.sock" -s log.level=debug 2>"$tmp/i7" >/dev/null
    check "incident list -s log.level=debug logs" 'grep -q "level=" "$tmp/i7"'
    kill "$rpid" 2>/dev/null; wait "$rpid" 2>/dev/null; rpid=
fi

# The demo: embedded mock cluster, samples in, results out, exit 0.
if [ -d config/samples ]; then
    timeout 180 "$sp" demo -c config/demo.yaml >"$tmp/demo" 2>"$tmp/demo.err"
    rc=$?
    check "demo exits 0 (rc=$rc)" '[ $rc -eq 0 ]'
    check "demo shows normalized alerts" 'grep -q "normalized alerts" "$tmp/demo"'
    check "demo shows DLQ records" 'grep -q "dead-letter records" "$tmp/demo" && grep -Eq "not_json|truncated|invalid_utf8" "$tmp/demo"'
    check "demo shows incidents forming" 'grep -Eq "^  inc-[0-9a-f]+ +v[0-9]+" "$tmp/demo"'
    check "demo shows decoded scripts" 'grep -q "decoded: " "$tmp/demo"'
    check "demo incidents carry script analyses" 'grep -Eq "[0-9]+ script analyses" "$tmp/demo"'
    check "demo incidents carry an analysis" 'grep -q "analysis (template): impact" "$tmp/demo"'
    check "demo says where its private redis-server is" 'grep -Eq "^== private redis-server on unix:/.+/redis.sock" "$tmp/demo"'
    [ $rc -eq 0 ] || tail -n 30 "$tmp/demo.err"
    # From another directory: a clear error at once, not empty topics.
    abs_sp=$(cd "$(dirname "$sp")" && pwd)/$(basename "$sp")
    (cd "$tmp" && timeout 60 "$abs_sp" demo) >"$tmp/demo2" 2>&1; rc=$?
    check "demo from another directory exits 2 naming the samples (rc=$rc)" '[ $rc -eq 2 ] && grep -q "config/samples: No such file" "$tmp/demo2"'
    abs_samples=$(cd config/samples && pwd)
    (cd "$tmp" && timeout 60 "$abs_sp" demo --samples "$abs_samples") >"$tmp/demo4" 2>&1; rc=$?
    check "demo without -c reads config/demo.yaml (rc=$rc)" '[ $rc -ne 0 ] && grep -q "config/demo.yaml: No such file" "$tmp/demo4"'
    "$sp" demo --samples >"$tmp/demo3" 2>&1; rc=$?
    check "demo --samples without DIR says so (rc=$rc)" '[ $rc -eq 2 ] && grep -q "needs a directory" "$tmp/demo3"'
fi

echo "cli: $pass passed, $fail failed"
[ $fail -eq 0 ]
