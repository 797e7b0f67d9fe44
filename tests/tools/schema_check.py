#!/usr/bin/env python3
"""schema_check.py - validate normalized alerts against schema/alert.schema.json.

Reads JSON lines (one normalized alert per line) from the files given on
the command line, or from stdin when there are none (or for "-"), and
validates every line against the schema (schema/alert.schema.json, or
--schema FILE, or a first argument ending in ".schema.json").  Prints the first problems and
a summary line "schema: N passed, N failed"; exits 1 when anything
failed (or nothing was checked with --require), 2 on usage errors.

    socpilot normalize alerts.jsonl | tests/tools/schema_check.py
    tests/tools/schema_check.py build/normalized_samples.jsonl
    tests/tools/schema_check.py schema/alert.schema.json build/e2e_alerts.jsonl

Needs python3-jsonschema (Debian package), draft 2020-12 support.
"""
import argparse
import json
import os
import sys

try:
    import jsonschema
except ImportError:
    sys.stderr.write("schema_check: python3-jsonschema is not installed\n")
    sys.exit(2)

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_SCHEMA = os.path.join(HERE, "..", "..", "schema", "alert.schema.json")
MAX_SHOWN = 20


def lines(paths):
    for path in paths or ["-"]:
        stream = sys.stdin if path == "-" else open(path, encoding="utf-8")
        try:
            for number, line in enumerate(stream, 1):
                if line.strip():
                    yield path, number, line
        finally:
            if stream is not sys.stdin:
                stream.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="*", help="JSON lines files (default stdin)")
    ap.add_argument("--schema", default=DEFAULT_SCHEMA)
    ap.add_argument("--require", action="store_true",
                    help="fail when no alert was checked")
    args = ap.parse_args()
    # "schema_check.py SCHEMA.schema.json FILE..." names the schema first.
    if args.files and args.files[0].endswith(".schema.json"):
        args.schema = args.files.pop(0)

    with open(args.schema, encoding="utf-8") as f:
        schema = json.load(f)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    validator = cls(schema, format_checker=cls.FORMAT_CHECKER)

    passed = failed = 0
    for path, number, line in lines(args.files):
        where = "%s:%d" % ("stdin" if path == "-" else path, number)
        try:
            doc = json.loads(line)
        except ValueError as e:
            failed += 1
            if failed <= MAX_SHOWN:
                print("%s: not JSON: %s" % (where, e), file=sys.stderr)
            continue
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
        if errors:
            failed += 1
            if failed <= MAX_SHOWN:
                for e in errors[:3]:
                    loc = "/".join(str(p) for p in e.path) or "(root)"
                    print("%s: %s: %s" % (where, loc, e.message[:300]),
                          file=sys.stderr)
        else:
            passed += 1
    print("schema: %d passed, %d failed" % (passed, failed))
    if failed or (args.require and passed == 0):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
