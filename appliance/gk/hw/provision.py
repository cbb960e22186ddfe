"""``gk provision``: first-boot state of a fresh data dir, run as the gk user before ``gk serve``.

Creates gk.toml (commented defaults), the machine secrets, the TLS key and self-signed
certificate, DKIM keys for every local mail domain (more are made when the wizard sets the
domain) and the one-time setup code. Every piece is skipped when it exists, so it is safe to run
again after a power loss. ``--seed FILE`` creates users from ``address password [admin]`` lines
(the QEMU image test hands it in through fw_cfg; only while the box is unclaimed).

Cost: one RSA-2048 and one P-256 key generation per domain / box (~1 s on a Pi 4).
"""

from __future__ import annotations

import sys
from pathlib import Path

from gk import config as gkconfig


def provision(data_dir: Path) -> list[str]:
    from gk.context import hostname_of, open_accounts
    from gk.security.secrets import machine_secret
    from gk.security.tls import ensure_tls

    done: list[str] = []
    data_dir.mkdir(parents=True, exist_ok=True)
    gkconfig.ensure_config_file(data_dir)
    cfg = gkconfig.load(data_dir)
    machine_secret(data_dir, "session")
    machine_secret(data_dir, "srs")  # the SRS key of forwards (gk.mail.smtp.srs)
    done.append("secrets")
    hostname = hostname_of(cfg)
    tls = ensure_tls(data_dir, cfg.tls, hostname)
    done.append(f"tls {tls.cert}")
    domains = sorted(open_accounts(cfg, data_dir).local_domains())
    try:
        from gk.mail.dkim import keys as dkim
    except ModuleNotFoundError:
        dkim = None  # type: ignore[assignment]
    if dkim is not None:
        selectors = [getattr(s, "dkim_selector", None) for s in vars(cfg).values()]
        ed_selectors = [getattr(s, "dkim_ed25519_selector", None) for s in vars(cfg).values()]
        selector = next((s for s in selectors if s), "gk")
        ed = next((s for s in ed_selectors if s), "")
        for domain in domains:
            dkim.ensure_keys(data_dir, domain, selector, ed)
            done.append(f"dkim {domain}")
    from gk import claim

    code = claim.ensure_setup_code(data_dir)
    done.append("setup code" if code else "claimed (no setup code)")
    return done


def apply_seed(data_dir: Path, seed: Path) -> list[str]:
    """Users from a seed file, only while the box is unclaimed."""
    from gk import claim
    from gk.accounts import AccountError
    from gk.context import open_accounts

    if claim.state(data_dir) != claim.UNCLAIMED:
        raise PermissionError("the box is already claimed: a seed is ignored")
    store = open_accounts(gkconfig.load(data_dir), data_dir)
    made = []
    for raw in seed.read_text(encoding="utf-8").splitlines():
        parts = raw.split()
        if not parts or parts[0].startswith("#"):
            continue
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "admin"):
            raise ValueError(f"seed line {raw!r}: expected 'address password [admin]'")
        try:
            store.add_user(parts[0], parts[1], admin=len(parts) == 3)
        except AccountError as exc:
            if "exists" not in str(exc):
                raise
        made.append(parts[0])
    return made


def print_setup_code(data_dir: Path) -> int:
    from gk import claim

    code = claim.ensure_setup_code(data_dir)
    if code:
        print(code)
    return 0


def main(data_dir: Path, seed: Path | None, show_code: bool) -> int:
    if show_code:
        return print_setup_code(data_dir)
    if seed is not None:
        for address in apply_seed(data_dir, seed):
            print(f"seeded user {address}")
    for line in provision(data_dir):
        print(f"provisioned {line}", file=sys.stderr)
    return 0
