#!/usr/bin/env python3
"""Regenerate the vocabulary maps in this folder from the HL7 v2-to-FHIR IG concept-map CSVs (CC0).

Usage: generate.py <path to v2-to-fhir/mappings/codesystems>

Each IG sheet `HL7 Concept Map_ Name[Qualifier] - Sheet1.csv` becomes `name-qualifier.csv` with the columns
`v2_code,v2_display,code,display,system`. Rows without a v2 code (FHIR-only codes) and rows whose FHIR code is
empty (the IG's "no mapping") are left out: the Rust loader then reports "unmapped" and the scripts keep the
original v2 code. Several rows may share a v2 code (several codings); the loader keeps their order.
"""
import csv
import glob
import os
import re
import sys


def kebab(title: str) -> str:
    """`PatientClass[EncounterClass]` -> `patient-class-encounter-class`."""
    s = title.replace("[", "-").replace("]", "").replace("/", "-").replace(".", "-")
    s = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", s)
    s = re.sub(r"[^A-Za-z0-9]+", "-", s)
    return s.strip("-").lower()


def convert(path: str):
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f))
    header = rows[1]
    # The FHIR side starts at the second "Code" column; older sheets have fewer condition columns.
    codes = [i for i, h in enumerate(header) if h.strip() == "Code"]
    fhir_code = codes[1]
    system = next(i for i in range(fhir_code + 1, len(header)) if header[i].strip() == "Code System")
    out = []
    for r in rows[2:]:
        r = r + [""] * (len(header) + 2)
        v2_code, v2_text = r[0].strip(), r[1].strip()
        code = r[fhir_code].strip()
        if not v2_code or not code:
            continue
        # The display sits in the labelled column, or in the unlabelled one before it in some sheets.
        display = next((r[i].strip() for i in range(fhir_code + 1, system) if r[i].strip()), "")
        out.append([v2_code, v2_text, code, display, r[system].strip()])
    return out


def main():
    src = sys.argv[1]
    here = os.path.dirname(os.path.abspath(__file__))
    for path in sorted(glob.glob(os.path.join(src, "HL7 Concept Map_ *.csv"))):
        title = os.path.basename(path)[len("HL7 Concept Map_ "):].rsplit(" - Sheet1.csv", 1)[0]
        rows = convert(path)
        if not rows:
            continue
        with open(os.path.join(here, kebab(title) + ".csv"), "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["v2_code", "v2_display", "code", "display", "system"])
            w.writerows(rows)


if __name__ == "__main__":
    main()
