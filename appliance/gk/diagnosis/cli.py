"""``gk diagnose [--json] [--only GROUP ...]``: run the diagnosis and print each finding.

Exit status 0 when nothing is an error (warnings and notes allowed), 1 otherwise, so scripts
and monitoring can call it.
"""

from __future__ import annotations

import argparse
import json

MARK = {"ok": "ok  ", "warning": "WARN", "error": "FAIL", "info": "note"}
GROUPS = ("dns", "network", "certificate", "system")


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="one JSON list of findings")
    p.add_argument("--only", nargs="+", choices=GROUPS, help="run only these groups of checks")


def handle(args: argparse.Namespace) -> int:
    from gk.diagnosis import inputs_from_data_dir, run
    from gk.diagnosis.checks import summary

    findings = run(inputs_from_data_dir(args.data_dir), args.only)
    if args.json:
        print(json.dumps([f.as_dict() for f in findings], indent=2))
    else:
        for f in findings:
            print(f"[{MARK.get(f.status, f.status)}] {f.text(f.title)}")
            for line in (f.text(f.detail), f.text(f.fix)):
                if line:
                    print(f"       {line}")
        counts = summary(findings)
        print(
            f"{counts['error']} error(s), {counts['warning']} warning(s), {counts['ok']} ok, {counts['info']} note(s)"
        )
    return 1 if any(f.status == "error" for f in findings) else 0
