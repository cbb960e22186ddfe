"""``gk claim``: show the claim state, print the setup code, simulate the button, open owner recovery."""

from __future__ import annotations

import argparse
from pathlib import Path

from gk import claim


def configure(p: argparse.ArgumentParser) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", type=Path, default=argparse.SUPPRESS, help="data directory")
    sub = p.add_subparsers(dest="claim_cmd", required=True)
    sub.add_parser("status", parents=[common], help="print the claim state and whether recovery is open")
    sub.add_parser("button", parents=[common], help="act as a press of the hardware button (claims an open claim page)")
    r = sub.add_parser("recover", parents=[common], help="owner recovery: reopen the claim and password steps")
    r.add_argument("--minutes", type=float, default=15.0)


def handle(args: argparse.Namespace) -> int:
    if args.claim_cmd == "status":
        print(f"state: {claim.state(args.data_dir)}; recovery open: {claim.recovery_open(args.data_dir)}")
    elif args.claim_cmd == "button":
        claim.button_pressed(args.data_dir)
        print("button press recorded")
    elif args.claim_cmd == "recover":
        code = claim.open_recovery(args.data_dir, args.minutes)
        print(f"owner recovery open for {args.minutes:g} minutes; setup code: {code}")
    return 0
