"""``gk token add|list|del`` (API tokens for /v1 and MCP) and ``gk ai status`` (models, memory)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from gk import clikit


def configure_token(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="token_cmd", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", type=Path, default=argparse.SUPPRESS)
    a = sub.add_parser("add", parents=[common], help="create a token for an account; printed once, stored hashed")
    a.add_argument("address")
    a.add_argument("--label", default="", help="what the token is for (e.g. 'Open WebUI on the laptop')")
    a.add_argument(
        "--scope",
        default="ai",
        help="comma-separated: ai (the /v1 API), mcp (the /mcp tools), mail:read, mail:write, chat:read, "
        "chat:write, calendar:read, calendar:write (calendars and contacts); aliases: read, write, all, mail, "
        "chat, calendar, contacts; mcp alone = mcp,read (default: ai)",
    )
    ls = sub.add_parser("list", parents=[common], help="tokens (never their value): id, account, label, scope")
    ls.add_argument("address", nargs="?", default="")
    d = sub.add_parser("del", parents=[common], help="revoke a token by its id (see gk token list)")
    d.add_argument("id", type=int)


def handle_token(args: argparse.Namespace) -> int:
    from gk.accounts.store import normalize_address
    from gk.ai.tokens import ScopeError, TokenStore, format_scopes, parse_scopes

    store = TokenStore.for_data_dir(args.data_dir)
    try:
        if args.token_cmd == "add":
            address = normalize_address(args.address)
            if clikit.accounts(args).get_user(address) is None:
                return clikit.fail(f"no account {address} (create it with: gk user add {address})")
            try:
                scope = format_scopes(parse_scopes(args.scope))
            except ScopeError as exc:
                return clikit.fail(f"--scope: {exc}", 2)
            token_id, token = store.add(address, label=args.label, scope=scope)
            print(token)
            print(f"token {token_id} for {address} ({scope}): shown only now, keep it somewhere safe", file=sys.stderr)
            return 0
        if args.token_cmd == "list":
            for t in store.list(normalize_address(args.address) if args.address else None):
                created = time.strftime("%Y-%m-%d %H:%M", time.gmtime(t.created))
                print(f"{t.id}\t{t.address}\t{t.scope}\t{created}\t{t.label}")
            return 0
        if not store.delete(args.id):
            return clikit.fail(f"no token {args.id}")
        print(f"token {args.id} revoked")
        return 0
    finally:
        store.close()


def configure_ai(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="ai_cmd", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", type=Path, default=argparse.SUPPRESS)
    sub.add_parser("status", parents=[common], help="the models in DATA_DIR/models, the one in use, memory needed")


def handle_ai(args: argparse.Namespace) -> int:
    from gk.ai import models
    from gk.ai.runtime import RuntimeSettings

    cfg = clikit.load(args).ai
    settings = RuntimeSettings.from_config(cfg)
    found = models.list_models(args.data_dir)
    chosen = cfg.model or (found[0].name if found else "")
    print(f"assistant: {'enabled' if cfg.enabled else 'disabled'}; model: {chosen or '(none)'}; "
          f"context {cfg.context_size} tokens; {settings.n_threads} inference thread(s)")  # fmt: skip
    available = models.available_bytes()
    print(f"memory available: {available >> 20} MiB (keeping {cfg.min_free_mb} MiB free)")
    if not found:
        print(f"no model in {models.models_dir(args.data_dir)}")
    for path in found:
        mark = "*" if path.name == chosen else " "
        try:
            info = models.inspect(path)
        except models.ModelError as exc:
            print(f"{mark} {path.name}: unusable: {exc}")
            continue
        needed = models.needed_bytes(info, cfg.context_size, cfg.batch_size) + cfg.min_free_mb * 2**20
        fits = "fits" if needed <= available else "does NOT fit"
        print(f"{mark} {path.name}: {info.architecture}, {info.size / 2**20:.1f} MiB on disk, "
              f"needs ~{needed >> 20} MiB to run: {fits}")  # fmt: skip
    return 0
