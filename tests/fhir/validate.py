#!/usr/bin/env python3
"""Validate FHIR R4 Bundle JSON files with the `fhir.resources` models.

Usage: validate.py FILE.json...
Prints one line per failing file and a closing "N passed, N failed"; exits 1 when any file fails.

fhir.resources 6.4.x models FHIR R4 (4.0.1) by default; 6.5.0 moved its default to R4B, so with 6.5 the
R4B models are used (close to R4 for the resources Junction writes, but not the same release). The line
"models:" says which one ran.
"""
import json
import sys

try:
    from fhir.resources import __version__ as VERSION
    from fhir.resources.bundle import Bundle
except ImportError as e:  # pragma: no cover - reported to the caller
    print(f"cannot import fhir.resources: {e}", file=sys.stderr)
    sys.exit(2)


def parse(data):
    # pydantic v1 (fhir.resources 6.x) has parse_obj; v2-based releases have model_validate.
    if hasattr(Bundle, "model_validate"):
        return Bundle.model_validate(data)
    return Bundle.parse_obj(data)


def main(paths):
    print(f"models: fhir.resources {VERSION}")
    passed = failed = 0
    for path in paths:
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
            parse(data)
            passed += 1
        except Exception as e:  # every failure is reported, none stops the run
            failed += 1
            first = str(e).splitlines()[:6]
            print(f"FAIL {path}: " + " | ".join(first))
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
