"""``gk tune``, ``gk button`` and ``gk provision`` (declared in ``gk.features``).

evdev and pyudev are imported only by ``gk button`` itself: the image has them from Debian
(python3-evdev, python3-pyudev); a checkout without them still runs every other command.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def configure_tune(p: argparse.ArgumentParser) -> None:
    p.add_argument("--apply", action="store_true", help="write the profile (tune.json, gk.toml keys, zram)")
    p.add_argument("--systemd", action="store_true", help="also set gk.service MemoryHigh/MemoryMax (at boot)")
    p.add_argument("--etc", type=Path, default=Path("/etc"), help=argparse.SUPPRESS)
    p.add_argument("--ram-mb", type=int, help="pretend this much RAM (to preview a profile)")
    p.add_argument("--cores", type=int, help="pretend this many cores")
    p.add_argument("--table", action="store_true", help="print the docs/tuning.md table")


def handle_tune(args: argparse.Namespace) -> int:
    import dataclasses

    from gk.hw import tune

    if args.table:
        sys.stdout.write(tune.markdown_table())
        return 0
    hw = tune.measure(args.data_dir)
    if args.ram_mb or args.cores:
        hw = dataclasses.replace(hw, ram_mb=args.ram_mb or hw.ram_mb, cores=args.cores or hw.cores)
    prof = tune.profile_for(hw)
    print(json.dumps({"hardware": dataclasses.asdict(hw), "profile": dataclasses.asdict(prof)}, indent=2))
    if args.apply:
        for line in tune.apply(prof, hw, args.data_dir, etc=args.etc, systemd=args.systemd):
            print(f"tuned {line}", file=sys.stderr)
    return 0


def configure_provision(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=Path, help="create users from 'address password [admin]' lines (unclaimed only)")
    p.add_argument("--print-setup-code", action="store_true", help="print the setup code (nothing once claimed)")


def handle_provision(args: argparse.Namespace) -> int:
    from gk.hw import provision

    try:
        return provision.main(args.data_dir, args.seed, args.print_setup_code)
    except (PermissionError, ValueError) as exc:
        print(f"gk provision: {exc}", file=sys.stderr)
        return 1
