"""The ``gk`` command: serve, user, alias, config (and the subcommands later features add).

Every subcommand takes ``--data-dir DIR`` (default: ``$GK_DATA_DIR``, else ``./var`` in a
checkout, else ``/var/lib/gk``). Exit codes: 0 ok, 1 operation refused, 2 bad usage/config.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import getpass  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

from gk import __version__  # noqa: E402
from gk import config as gkconfig  # noqa: E402

# Later features register extra subcommands here: name -> (configure parser, handler).
EXTRA_COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {}


FEATURE_HELP = {
    "queue": "list, show, retry or delete outbound mail (list|show|retry|delete|inject)",
    "dns": "print (and --check) the DNS records a mail domain must publish",
    "claim": "first-boot claim and owner recovery (status|button|recover)",
    "tune": "write the hardware profile for this board (RAM, cores, storage)",
    "button": "run the reset-button service (short press, 10 s recovery, 30 s factory reset)",
    "provision": "first-boot provisioning: config, secrets, TLS, DKIM, setup code",
    "acme": "Let's Encrypt certificate for the host name: renew now, or status",
    "diagnose": "check DNS records, reverse DNS, blocklists, port 25, certificate, clock, disk",
    "chat": "chat rooms and message history (rooms|history)",
    "token": "API tokens for the assistant's OpenAI-compatible API and MCP (add|list|del)",
    "ai": "the private assistant: models on disk, the one in use, memory it needs (status)",
}


def _fail(msg: str, code: int = 1) -> int:
    print(f"gk: {msg}", file=sys.stderr)
    return code


def _load(args: argparse.Namespace) -> gkconfig.Config:
    return gkconfig.load(args.data_dir)


def _read_password(args: argparse.Namespace, prompt: str = "Password: ") -> str:
    if getattr(args, "password_stdin", False):
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    if not sys.stdin.isatty():
        raise SystemExit(_fail("no terminal to ask for a password; pass --password-stdin and pipe it", 2))
    first = getpass.getpass(prompt)
    if getpass.getpass("Again: ") != first:
        raise SystemExit(_fail("the two passwords differ", 2))
    return first


def _accounts(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from gk.context import open_accounts

    return open_accounts(_load(args), args.data_dir)


def cmd_serve(args: argparse.Namespace) -> int:
    from gk.server import serve, setup_logging

    args.data_dir.mkdir(parents=True, exist_ok=True)
    gkconfig.ensure_config_file(args.data_dir)
    cfg = _load(args)
    setup_logging(cfg.server.log_level)
    return serve(cfg, args.data_dir)


def cmd_user(args: argparse.Namespace) -> int:
    from gk.accounts import AccountError

    store = _accounts(args)
    try:
        if args.user_cmd == "add":
            user = store.add_user(args.address, _read_password(args), admin=args.admin)
            print(f"added {user.address}{' (admin)' if user.is_admin else ''}")
        elif args.user_cmd == "passwd":
            store.set_password(args.address, _read_password(args, "New password: "))
            print(f"password changed for {args.address.lower()}")
        elif args.user_cmd == "del":
            store.delete_user(args.address)
            print(f"deleted {args.address.lower()} (its mail stays under mail/ until removed by hand)")
        elif args.user_cmd == "list":
            for u in store.list_users():
                print(f"{u.address}\t{'admin' if u.is_admin else 'user'}")
        elif args.user_cmd == "admin":
            store.set_admin(args.address, not args.revoke)
    except AccountError as exc:
        return _fail(str(exc))
    return 0


def cmd_alias(args: argparse.Namespace) -> int:
    from gk.accounts import AccountError

    store = _accounts(args)
    try:
        if args.alias_cmd == "add":
            store.add_alias(args.source, args.target)
            print(f"{args.source.lower()} -> {args.target.lower()}")
        elif args.alias_cmd == "del":
            store.delete_alias(args.source)
        elif args.alias_cmd == "list":
            for src, dst in store.list_aliases():
                print(f"{src}\t{dst}")
    except AccountError as exc:
        return _fail(str(exc))
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    try:
        cfg = _load(args)
    except gkconfig.ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    if args.config_cmd == "show":
        if cfg.queue.smarthost_password:
            cfg.queue.smarthost_password = "********"  # never print a secret to a terminal or a log
        sys.stdout.write(gkconfig.to_toml(cfg))
    else:
        print(f"{gkconfig.config_path(args.data_dir)}: ok")
    return 0


def cmd_setup(args: argparse.Namespace) -> int:
    from gk.setupfile import AnswersError, apply, parse

    try:
        text = sys.stdin.read() if str(args.answers) == "-" else args.answers.read_text(encoding="utf-8")
    except OSError as exc:
        return _fail(f"cannot read the answers file: {exc}", 2)
    try:
        answers = parse(text, str(args.answers))
        args.data_dir.mkdir(parents=True, exist_ok=True)
        gkconfig.ensure_config_file(args.data_dir)
        for line in apply(args.data_dir, answers):
            print(line)
    except AnswersError as exc:
        print(f"gk setup: {exc}", file=sys.stderr)
        return 2 if "already set up" not in str(exc) else 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    default_dir = gkconfig.default_data_dir()
    # Subcommands accept --data-dir too; SUPPRESS keeps their default from hiding the top-level one.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data-dir", type=Path, default=argparse.SUPPRESS, help=f"data directory (default: {default_dir})"
    )
    p = argparse.ArgumentParser(prog="gk", description="GK home server")
    p.add_argument("--data-dir", type=Path, default=default_dir, help="data directory (default: %(default)s)")
    p.add_argument("--version", action="version", version=f"gk {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", parents=[common], help="run the server (all listeners)")
    s.set_defaults(func=cmd_serve)

    u = sub.add_parser("user", parents=[common], help="manage users")
    us = u.add_subparsers(dest="user_cmd", required=True)
    a = us.add_parser("add", parents=[common], help="add a user (its domain becomes a local mail domain)")
    a.add_argument("address")
    a.add_argument("--admin", action="store_true")
    a.add_argument("--password-stdin", action="store_true", help="read the password from one line of stdin")
    pw = us.add_parser("passwd", parents=[common], help="change a user's password")
    pw.add_argument("address")
    pw.add_argument("--password-stdin", action="store_true")
    d = us.add_parser("del", parents=[common], help="delete a user")
    d.add_argument("address")
    us.add_parser("list", parents=[common], help="list users")
    ad = us.add_parser("admin", parents=[common], help="grant (or --revoke) admin rights")
    ad.add_argument("address")
    ad.add_argument("--revoke", action="store_true")
    u.set_defaults(func=cmd_user)

    al = sub.add_parser("alias", parents=[common], help="manage address aliases")
    als = al.add_subparsers(dest="alias_cmd", required=True)
    aa = als.add_parser("add", parents=[common], help="deliver mail for SOURCE to user TARGET")
    aa.add_argument("source")
    aa.add_argument("target")
    ad2 = als.add_parser("del", parents=[common])
    ad2.add_argument("source")
    als.add_parser("list", parents=[common])
    al.set_defaults(func=cmd_alias)

    st = sub.add_parser("setup", parents=[common], help="first boot without a browser, from a TOML answers file")
    st.add_argument("--answers", type=Path, required=True, help="the answers file ('-' = stdin); see gk/setupfile.py")
    st.set_defaults(func=cmd_setup)

    c = sub.add_parser("config", parents=[common], help="show or check the configuration")
    cs = c.add_subparsers(dest="config_cmd", required=True)
    cs.add_parser("show", parents=[common], help="print the effective configuration as TOML")
    cs.add_parser("check", parents=[common], help="validate DATA_DIR/gk.toml")
    c.set_defaults(func=cmd_config)

    for name, (configure, handler) in EXTRA_COMMANDS.items():
        ep = sub.add_parser(name, parents=[common], help=FEATURE_HELP.get(name))
        configure(ep)
        ep.set_defaults(func=handler)
    return p


def _register_feature_commands() -> None:
    """Import feature modules that add subcommands (queue, dns, tune, button…)."""
    import importlib

    for module in (
        "gk.mail.queue.cli",
        "gk.mail.dnsrecords",
        "gk.hw.cli",
        "gk.claim.cli",
        "gk.diagnosis.cli",
        "gk.acme.cli",
        "gk.chat.cli",
        "gk.ai.cli",
    ):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name and module.startswith(exc.name):
                continue
            raise


def main(argv: list[str] | None = None) -> int:
    _register_feature_commands()
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except gkconfig.ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
