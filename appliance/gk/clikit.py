"""What every ``gk`` subcommand's handler shares: report a failure, load the config, ask for a
password, open the accounts. Feature ``cli.py`` modules import this, never ``gk.cli`` (which
monkey-patches on import and builds the parser from ``gk.features``).

Exit codes: 0 ok, 1 operation refused, 2 bad usage/config.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from gk import config as gkconfig

if TYPE_CHECKING:
    from gk.accounts import AccountStore


def fail(msg: str, code: int = 1) -> int:
    """Print ``gk: msg`` to stderr and return ``code`` (a handler returns it)."""
    print(f"gk: {msg}", file=sys.stderr)
    return code


def load(args: argparse.Namespace) -> gkconfig.Config:
    return gkconfig.load(args.data_dir)


def data_dir_option() -> argparse.ArgumentParser:
    """A parent parser giving a sub-subcommand ``--data-dir`` (SUPPRESS: the top-level one wins when absent)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", type=Path, default=argparse.SUPPRESS, help="data directory")
    return common


def read_password(args: argparse.Namespace, prompt: str = "Password: ") -> str:
    if getattr(args, "password_stdin", False):
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    if not sys.stdin.isatty():
        raise SystemExit(fail("no terminal to ask for a password; pass --password-stdin and pipe it", 2))
    first = getpass.getpass(prompt)
    if getpass.getpass("Again: ") != first:
        raise SystemExit(fail("the two passwords differ", 2))
    return first


def accounts(args: argparse.Namespace) -> AccountStore:
    from gk.context import open_accounts

    return open_accounts(load(args), args.data_dir)
