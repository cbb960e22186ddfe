"""Registers ``gk tune``, ``gk button`` and ``gk provision`` (imported by gk.cli when present).

evdev and pyudev are imported only by ``gk button`` itself: the image has them from Debian
(python3-evdev, python3-pyudev); a checkout without them still runs every other command.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from gk.cli import EXTRA_COMMANDS


def _configure_tune(p: argparse.ArgumentParser) -> None:
    p.add_argument("--apply", action="store_true", help="write the profile (tune.json, gk.toml keys, zram)")
    p.add_argument("--systemd", action="store_true", help="also set gk.service MemoryHigh/MemoryMax (at boot)")
    p.add_argument("--etc", type=Path, default=Path("/etc"), help=argparse.SUPPRESS)
    p.add_argument("--ram-mb", type=int, help="pretend this much RAM (to preview a profile)")
    p.add_argument("--cores", type=int, help="pretend this many cores")
    p.add_argument("--table", action="store_true", help="print the docs/tuning.md table")


def _run_tune(args: argparse.Namespace) -> int:
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


def _configure_button(p: argparse.ArgumentParser) -> None:
    p.add_argument("--key", default=os.environ.get("GK_BUTTON_KEY", "KEY_RESTART"), help="evdev key name")
    p.add_argument("--device", default=os.environ.get("GK_BUTTON_DEVICE", "*"), help="input device name glob")
    p.add_argument(
        "--publish",
        default=os.environ.get("GK_BUTTON_PUBLISH", "/usr/lib/gk/firstboot"),
        help="command that shows a new setup code after owner recovery ('' = none)",
    )
    p.add_argument("--led", default=os.environ.get("GK_BUTTON_LED", ""), help="LED name under /sys/class/leds")
    p.add_argument("--no-reboot", action="store_true", help="factory reset without stopping GK or rebooting")
    p.add_argument("--list", action="store_true", help="list matching input devices and exit")


def _run_button(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        from gk.hw.button import ButtonService, find_devices, key_code
        from gk.hw.leds import Led

        code = key_code(args.key)
    except ModuleNotFoundError as exc:
        print(f"gk button: needs {exc.name} (Debian: apt-get install python3-evdev python3-pyudev)", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"gk button: {exc}", file=sys.stderr)
        return 2
    if args.list:
        for d in find_devices(code, args.device):
            print(f"{d.path}\t{d.name}")
        return 0
    publish = args.publish if args.publish and os.path.exists(args.publish.split()[0]) else ""
    ButtonService(args.data_dir, args.key, args.device, publish, Led.find(name=args.led), not args.no_reboot).run()
    return 0


def _configure_provision(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=Path, help="create users from 'address password [admin]' lines (unclaimed only)")
    p.add_argument("--print-setup-code", action="store_true", help="print the setup code (nothing once claimed)")


def _run_provision(args: argparse.Namespace) -> int:
    from gk.hw import provision

    try:
        return provision.main(args.data_dir, args.seed, args.print_setup_code)
    except (PermissionError, ValueError) as exc:
        print(f"gk provision: {exc}", file=sys.stderr)
        return 1


EXTRA_COMMANDS["tune"] = (_configure_tune, _run_tune)
EXTRA_COMMANDS["button"] = (_configure_button, _run_button)
EXTRA_COMMANDS["provision"] = (_configure_provision, _run_provision)
