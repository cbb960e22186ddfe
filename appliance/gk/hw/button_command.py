"""``gk button`` options and entry point, importable without gk.cli (no gevent): the service runs
``python -m gk.hw.button_command`` and stays ~8 MB smaller than through ``gk button``.
evdev and pyudev are imported only here, at run time (Debian's python3-evdev/python3-pyudev
in the image)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path


def configure(p: argparse.ArgumentParser) -> None:
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


def run(args: argparse.Namespace) -> int:
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="gk button", description="GK reset button service")
    p.add_argument("--data-dir", type=Path, default=Path(os.environ.get("GK_DATA_DIR", "/var/lib/gk")))
    configure(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
