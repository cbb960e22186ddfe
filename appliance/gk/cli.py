"""The ``gk`` command: serve, user, alias, domain, setup, config, and the commands ``gk.features`` declares.

Only this module is the entry point (it monkey-patches on import): feature ``cli.py`` modules
use ``gk.clikit`` and never import it. A feature command's module is imported only when that
command is given, so ``gk --help`` imports no feature code. Every subcommand takes ``--data-dir DIR`` (default: ``$GK_DATA_DIR``, else ``./var`` in a
checkout, else ``/var/lib/gk``). Exit codes: 0 ok, 1 operation refused, 2 bad usage/config.
"""

from __future__ import annotations

from gevent import events, monkey

# patch_all() looks for gevent plugins 25 times, each a scan of every installed package's
# metadata with importlib.metadata (~1 MB of RSS that gk serve kept for good). GK installs no
# plugin, and gevent's own (a warning when signal is patched without os) does not apply to
# patch_all(): its subscribers are notified, its entry points not looked up, during the patch.
# (A gevent internal: without it, on another gevent, the patch runs as gevent ships it.)
_notify_and_call_entry_points = getattr(events, "notify_and_call_entry_points", None)
if _notify_and_call_entry_points is not None:
    events.notify_and_call_entry_points = events.notify
try:
    monkey.patch_all()
finally:
    if _notify_and_call_entry_points is not None:
        events.notify_and_call_entry_points = _notify_and_call_entry_points

import argparse  # noqa: E402
import sys  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from pathlib import Path  # noqa: E402

from gk import __version__, clikit, features  # noqa: E402
from gk import config as gkconfig  # noqa: E402


def cmd_serve(args: argparse.Namespace) -> int:
    from gk.server import serve, setup_logging

    args.data_dir.mkdir(parents=True, exist_ok=True)
    gkconfig.ensure_config_file(args.data_dir)
    cfg = clikit.load(args)
    setup_logging(cfg.server.log_level)
    return serve(cfg, args.data_dir)


def cmd_user(args: argparse.Namespace) -> int:
    from gk.accounts import AccountError

    store = clikit.accounts(args)
    try:
        if args.user_cmd == "add":
            user = store.add_user(
                args.address, clikit.read_password(args), admin=args.admin, new_domain=args.new_domain
            )
            print(f"added {user.address}{' (admin)' if user.is_admin else ''}")
        elif args.user_cmd == "passwd":
            store.set_password(args.address, clikit.read_password(args, "New password: "))
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
        return clikit.fail(str(exc))
    return 0


def cmd_alias(args: argparse.Namespace) -> int:
    from gk.accounts import AccountError

    store = clikit.accounts(args)
    try:
        if args.alias_cmd == "add":
            store.add_alias(args.source, args.target, new_domain=args.new_domain)
            print(f"{args.source.lower()} -> {args.target.lower()}")
        elif args.alias_cmd == "del":
            store.delete_alias(args.source)
        elif args.alias_cmd == "list":
            for src, dst in store.list_aliases():
                print(f"{src}\t{dst}")
    except AccountError as exc:
        return clikit.fail(str(exc))
    return 0


def cmd_domain(args: argparse.Namespace) -> int:
    from gk.accounts import AccountError

    store = clikit.accounts(args)
    try:
        if args.domain_cmd == "add":
            print(f"{store.add_domain(args.domain)} is a local mail domain")
        elif args.domain_cmd == "del":
            store.delete_domain(args.domain)
        elif args.domain_cmd == "list":
            for name, count in store.list_domains():
                print(f"{name}\t{count}")
    except AccountError as exc:
        return clikit.fail(str(exc))
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    try:
        cfg = clikit.load(args)
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
        return clikit.fail(f"cannot read the answers file: {exc}", 2)
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


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The whole parser. A feature command's module is imported (and its options configured)
    only when ``argv`` names that command; ``argv=None`` configures every command."""
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
    a.add_argument("--new-domain", action="store_true", help="also make the address's domain a local mail domain")
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
    aa.add_argument("--new-domain", action="store_true", help="also make the source's domain a local mail domain")
    ad2 = als.add_parser("del", parents=[common])
    ad2.add_argument("source")
    als.add_parser("list", parents=[common])
    al.set_defaults(func=cmd_alias)

    dm = sub.add_parser("domain", parents=[common], help="manage the box's local mail domains")
    dms = dm.add_subparsers(dest="domain_cmd", required=True)
    da = dms.add_parser("add", parents=[common], help="deliver mail for every address at DOMAIN here")
    da.add_argument("domain")
    dd = dms.add_parser("del", parents=[common], help="remove a domain no user or alias uses")
    dd.add_argument("domain")
    dms.add_parser("list", parents=[common], help="list domains with their number of users and aliases")
    dm.set_defaults(func=cmd_domain)

    st = sub.add_parser("setup", parents=[common], help="first boot without a browser, from a TOML answers file")
    st.add_argument("--answers", type=Path, required=True, help="the answers file ('-' = stdin); see gk/setupfile.py")
    st.set_defaults(func=cmd_setup)

    c = sub.add_parser("config", parents=[common], help="show or check the configuration")
    cs = c.add_subparsers(dest="config_cmd", required=True)
    cs.add_parser("show", parents=[common], help="print the effective configuration as TOML")
    cs.add_parser("check", parents=[common], help="validate DATA_DIR/gk.toml")
    c.set_defaults(func=cmd_config)

    given = None if argv is None else set(argv)
    for command in features.commands():
        ep = sub.add_parser(command.name, parents=[common], help=command.help)
        if given is None or command.name in given:
            configure, handler = command.load()
            configure(ep)
            ep.set_defaults(func=handler)
        else:  # not given: never parsed, but keep args.func callable
            ep.set_defaults(func=lambda args, c=command: c.load()[1](args))
    return p


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    try:
        args = build_parser(argv).parse_args(argv)  # imports the given command's module
        return int(args.func(args) or 0)
    except gkconfig.ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        if not exc.name or exc.name.split(".")[0] == "gk":
            raise  # a missing module of GK itself is a bug, not a missing extra
        return clikit.fail(f"this command needs the Python package {exc.name!r}, which is not installed", 1)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
