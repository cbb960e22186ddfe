"""``gk acme renew|status``: get a certificate now (the server runs this itself), or show the one in use."""

from __future__ import annotations

import argparse
from pathlib import Path

from gk import clikit


def configure(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="acme_cmd", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", type=Path, default=argparse.SUPPRESS)
    r = sub.add_parser(
        "renew", parents=[common], help="order a certificate for the host name now (gk serve must answer port 80)"
    )
    r.add_argument("--hostname", default="", help="default: the host name chosen in the wizard")
    sub.add_parser("status", parents=[common], help="the ACME certificate on disk: names and days left")


def handle(args: argparse.Namespace) -> int:

    from gk.acme import cert_paths
    from gk.acme.service import days_left, hostname_for
    from gk.context import hostname_of

    cfg = clikit.load(args)
    host = getattr(args, "hostname", "") or hostname_for(args.data_dir, hostname_of(cfg))
    if args.acme_cmd == "renew":
        from gk.acme.issue import main

        return main(cfg, args.data_dir, host)
    cert, _ = cert_paths(args.data_dir)
    left = days_left(cert)
    if left is None:
        print(f"no ACME certificate ({cert} missing or unreadable); enabled: {cfg.acme.enabled}")
        return 1
    from gk.security.tls import certificate_names

    print(f"{cert}: {', '.join(certificate_names(cert))}; {left:.0f} days left; enabled: {cfg.acme.enabled}")
    return 0
