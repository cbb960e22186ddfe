"""``gk token add|list|del`` (API tokens for /v1 and MCP) and ``gk ai status`` (models, memory)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gk import clikit

if TYPE_CHECKING:
    from gk.ai.tokens import TokenStore


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
    ls = sub.add_parser(
        "list",
        parents=[common],
        help="tokens (never their value) and OAuth grants of MCP clients: id, account, scope, created, last used, "
        "label or client name",
    )
    ls.add_argument("address", nargs="?", default="")
    ls.add_argument("--json", action="store_true", help="one JSON list of objects, for scripts and tests")
    d = sub.add_parser(
        "del", parents=[common], help="revoke a token by its id, or an OAuth grant by oauth:ID (see gk token list)"
    )
    d.add_argument("id", help="a token's id (3) or an OAuth grant's (oauth:3)")


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
            rows = _token_rows(store, args.data_dir, normalize_address(args.address) if args.address else None)
            if args.json:
                print(json.dumps(rows, indent=1))
                return 0
            for r in rows:
                created, used = _when(r["created"]), _when(r["last_used"]) if r["last_used"] else "never"
                name = r["label"] if r["kind"] == "token" else f"{r['client_name'] or r['client_id']} (OAuth)"
                print(f"{r['id']}\t{r['address']}\t{','.join(r['scopes'])}\t{created}\t{used}\t{name}")
            return 0
        return _token_del(store, args.data_dir, args.id)
    finally:
        store.close()


OAUTH_ID = "oauth:"


def _when(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(at))


def _token_rows(store: TokenStore, data_dir: Path, address: str | None) -> list[dict[str, Any]]:
    """The API tokens, then the OAuth grants (``oauth.sqlite3``, only if the server made it:
    the CLI never creates the server's files), as ``gk token list --json`` prints them."""
    from gk.ai.tokens import SCOPES
    from gk.oauth.store import OAuthStore

    rows: list[dict[str, Any]] = [
        {"id": str(t.id), "kind": "token", "address": t.address, "scopes": [s for s in SCOPES if s in t.scopes],
         "created": t.created, "last_used": t.last_used or None, "label": t.label}
        for t in store.list(address)
    ]  # fmt: skip
    path = Path(data_dir) / "oauth.sqlite3"
    if path.exists():
        oauth = OAuthStore(path)
        try:
            rows += [
                {"id": f"{OAUTH_ID}{g.id}", "kind": "oauth", "address": g.address,
                 "scopes": [s for s in SCOPES if s in g.scopes], "created": g.created,
                 "last_used": g.last_used or None, "client_id": g.client_id, "client_name": g.client_name,
                 "resource": g.resource}
                for g in oauth.all_grants(address)
            ]  # fmt: skip
        finally:
            oauth.close()
    return rows


def _token_del(store: TokenStore, data_dir: Path, ident: str) -> int:
    """``gk token del 3`` (an API token) or ``gk token del oauth:3`` (an OAuth grant: its refresh
    and access tokens stop working at once)."""
    from gk.oauth.store import OAuthStore

    grant = ident.startswith(OAUTH_ID)
    number = ident[len(OAUTH_ID) :] if grant else ident
    if not number.isdigit():
        return clikit.fail(f"{ident!r}: give a token's id (3) or an OAuth grant's (oauth:3), see gk token list", 2)
    if not grant:
        if not store.delete(int(number)):
            return clikit.fail(f"no token {ident}")
        print(f"token {ident} revoked")
        return 0
    path = Path(data_dir) / "oauth.sqlite3"
    oauth = OAuthStore(path) if path.exists() else None
    try:
        if oauth is None or not oauth.delete_grant(int(number), None):
            return clikit.fail(f"no OAuth grant {ident}")
    finally:
        if oauth is not None:
            oauth.close()
    print(f"OAuth grant {ident} revoked (its access and refresh tokens no longer work)")
    return 0


def configure_ai(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="ai_cmd", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", type=Path, default=argparse.SUPPRESS)
    sub.add_parser("status", parents=[common], help="the models in DATA_DIR/models, the one in use, memory needed")
    sub.add_parser("models", parents=[common], help="the catalogue: what fits this board, what is installed")
    pl = sub.add_parser(
        "pull", parents=[common], help="download a catalogue model (resumable, sha256-checked) or import a GGUF file"
    )
    pl.add_argument(
        "model", help="a catalogue id (gk ai models), or the path of a .gguf on a USB stick / boot partition"
    )
    u = sub.add_parser("use", parents=[common], help="make an installed model the assistant's")
    u.add_argument("model", help="a catalogue id or a file name in DATA_DIR/models")
    r = sub.add_parser("rm", parents=[common], help="delete an installed model (and a partial download of it)")
    r.add_argument("model", help="a catalogue id or a file name in DATA_DIR/models")


def handle_ai(args: argparse.Namespace) -> int:
    if args.ai_cmd == "models":
        return _models(args)
    if args.ai_cmd == "pull":
        return _pull(args)
    if args.ai_cmd == "use":
        return _use(args)
    if args.ai_cmd == "rm":
        return _rm(args)
    return _status(args)


def _catalogue(args: argparse.Namespace) -> list[Any]:
    from gk.ai import catalogue

    return catalogue.load(clikit.load(args).ai.catalogue)


def _ram_mb() -> int:
    from gk.ai import models

    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return models.available_bytes() >> 20


# how `gk ai models` says what guarantees a catalogue entry's bytes (gk.ai.catalogue.Entry.pinned_by)
PINNING = {
    "commit": "",
    "hash": "sha256 pinned, URL follows branch {rev} (a changed file is refused)",
    "": "no published sha256 yet: not downloadable",
}


def _models(args: argparse.Namespace) -> int:
    from gk.ai import catalogue, download, models

    cfg = clikit.load(args).ai
    try:
        entries = catalogue.load(cfg.catalogue)
    except catalogue.CatalogueError as exc:
        return clikit.fail(str(exc))
    ram = _ram_mb()
    fits = {e.id for e in catalogue.fitting(entries, ram)}
    default = catalogue.default_for(entries, ram)
    in_use = models.in_use(args.data_dir, cfg.model, cfg.catalogue)
    installed = {p.name for p in models.list_models(args.data_dir)}
    print(f"this board: {ram} MB of RAM; catalogue ({len(entries)} models):")
    for e in entries:
        marks = [
            "in use" if e.file == in_use else "installed" if e.file in installed else "",
            "fits" if e.id in fits else "too big",
            "default" if default is not None and e.id == default.id else "",
            PINNING[e.pinned_by].format(rev=e.revision),
        ]
        print(f"  {e.id:24} {e.approx_mb:5} MB  {e.ram_class} GB boards  {e.licence:28} "
              f"{', '.join(m for m in marks if m)}")  # fmt: skip
    others = sorted(installed - {e.file for e in entries})
    for name in others:
        print(f"  {name:24} (installed, not in the catalogue){'  in use' if name == in_use else ''}")
    offline = download.offline_files(cfg.offline_dirs)
    for p in offline:
        print(f"  offline: {p} (gk ai pull {p})")
    return 0


def _pull(args: argparse.Namespace) -> int:
    from gk.ai import catalogue, download, models

    cfg = clikit.load(args).ai
    try:
        entries = catalogue.load(cfg.catalogue)
    except catalogue.CatalogueError as exc:
        return clikit.fail(str(exc))
    last = [-1.0]

    def progress(done: int, total: int) -> None:
        pct = 100.0 * done / total if total else 0.0
        if pct - last[0] >= 1 or done == total:
            last[0] = pct
            print(f"\r{done >> 20} / {total >> 20} MiB ({pct:.0f} %)", end="", file=sys.stderr, flush=True)

    target = models.models_dir(args.data_dir)
    try:
        if args.model.endswith(".gguf") and Path(args.model).is_file():
            path = download.import_file(Path(args.model), target, entries, progress=progress)
        else:
            entry = catalogue.find(entries, args.model)
            if entry is None:
                return clikit.fail(f"no model {args.model!r} in the catalogue (see: gk ai models)")
            path = download.fetch(entry, target, cfg.download_url_base, cfg.offline_dirs, progress=progress)
    except download.DownloadError as exc:
        print(file=sys.stderr)
        return clikit.fail(str(exc))
    print(file=sys.stderr)
    try:
        models.inspect(path)
    except models.ModelError as exc:
        path.unlink(missing_ok=True)
        return clikit.fail(f"{exc}: the file was deleted")
    print(f"installed {path.name} (sha256 verified); use it with: gk ai use {path.name}")
    return 0


def _installed(args: argparse.Namespace, name: str) -> Path | None:
    from gk.ai import catalogue, models

    path = models.resolve(args.data_dir, name)
    if path is None:
        entry = catalogue.find(_catalogue(args), name)
        path = models.resolve(args.data_dir, entry.file) if entry else None
    return path


def _use(args: argparse.Namespace) -> int:
    from gk import settings

    path = _installed(args, args.model)
    if path is None:
        return clikit.fail(f"{args.model} is not installed (gk ai pull {args.model})")
    settings.of(args.data_dir).update(ai_model=path.name)
    print(f"the assistant now uses {path.name} (a running gk serve loads it on the next question)")
    return 0


def _rm(args: argparse.Namespace) -> int:
    from gk import settings
    from gk.ai import catalogue, models

    path = _installed(args, args.model)
    entry = catalogue.find(_catalogue(args), args.model)
    name = path.name if path else entry.file if entry else args.model
    part = models.models_dir(args.data_dir) / (name + ".part")
    if path is None and not part.exists():
        return clikit.fail(f"{args.model} is not installed")
    for p in (path, part):
        if p is not None:
            p.unlink(missing_ok=True)
    if settings.of(args.data_dir).ai_model() in (name, entry.id if entry else name):
        settings.of(args.data_dir).update(ai_model="")
    print(f"removed {name}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from gk.ai import models
    from gk.ai.runtime import RuntimeSettings

    cfg = clikit.load(args).ai
    settings = RuntimeSettings.from_config(cfg)
    found = models.list_models(args.data_dir)
    chosen = models.in_use(args.data_dir, cfg.model, cfg.catalogue)
    print(f"assistant: {'enabled' if cfg.enabled else 'disabled'}; model: {chosen or '(none)'}; "
          f"context {cfg.context_size} tokens; {settings.n_threads} inference thread(s)")  # fmt: skip
    available = models.available_bytes()
    print(f"memory available: {available >> 20} MiB (keeping {cfg.min_free_mb} MiB free)")
    if not found:
        print(f"no model in {models.models_dir(args.data_dir)} (see: gk ai models, gk ai pull ID)")
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
