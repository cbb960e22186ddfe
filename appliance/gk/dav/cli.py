"""``gk dav list|export|import USER``: a user's calendars, task lists and address books, for
backups and migrations.

``export USER DEST`` writes one file per collection — ``<name>.ics`` (one VCALENDAR holding every
event/task, each time zone once) or ``<name>.vcf`` (the vCards one after another) — plus
``collections.json`` (each collection's properties: name, colour, component set), into the
directory DEST, or into a tar archive when DEST ends in ``.tar``, ``.tar.gz`` or ``.tgz``.
Files from any other CalDAV/CardDAV server or calendar program import as well.

``import USER SRC`` reads such a directory or archive (or one ``.ics``/``.vcf`` file) back: each
file is a collection of that name (created if missing), split into objects by UID with
Radicale's own whole-collection logic; an object whose UID is already there is replaced in
place, so importing twice changes nothing. It is safe beside a running ``gk serve``: reads are
WAL snapshots, and the import is one SQLite transaction (serve's DAV requests wait for it).
"""

from __future__ import annotations

import argparse
import io
import json
import re
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gk import clikit
from gk.dav import defaults
from gk.dav.schema import MIGRATIONS
from gk.store import Database, open_database

if TYPE_CHECKING:
    from gk.accounts.store import AccountStore

SUFFIX = {"VCALENDAR": ".ics", "VADDRESSBOOK": ".vcf"}
MANIFEST = "collections.json"
# the VCALENDAR wrapper's own properties: one set for the exported file, not one per object
_WRAPPER = ("VERSION:", "PRODID:", "CALSCALE:", "METHOD:", "X-WR-CALNAME:")
_TZID_RE = re.compile(r"^TZID[;:](.*)$", re.IGNORECASE | re.MULTILINE)


def configure(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="dav_cmd", required=True)
    common = clikit.data_dir_option()
    ls = sub.add_parser("list", parents=[common], help="a user's collections with their number of items")
    ls.add_argument("user")
    ex = sub.add_parser("export", parents=[common], help="write a user's collections as .ics/.vcf files")
    ex.add_argument("user")
    ex.add_argument("dest", type=Path, help="a directory, or an archive name ending in .tar, .tar.gz or .tgz")
    im = sub.add_parser("import", parents=[common], help="read .ics/.vcf files back (same UID: replaced)")
    im.add_argument("user")
    im.add_argument("src", type=Path, help="a directory or archive made by export, or one .ics/.vcf file")
    sh = sub.add_parser("share", parents=[common], help="who else may read (r) or write (rw) a collection of USER")
    sh.add_argument("user")
    sh.add_argument("collection", help="the collection's name, as `gk dav list USER` shows it")
    sh.add_argument("members", nargs="*", help="ADDRESS=r or ADDRESS=rw each (none: share with nobody)")


def handle(args: argparse.Namespace) -> int:
    user = args.user.strip().lower()
    if clikit.accounts(args).get_user(user) is None:
        return clikit.fail(f"no such user {user}")
    db = open_database(Path(args.data_dir) / "dav.sqlite3", MIGRATIONS)
    try:
        if args.dav_cmd == "list":
            return list_collections(db, user)
        if args.dav_cmd == "export":
            return export(db, user, args.dest)
        if args.dav_cmd == "share":
            return share(db, user, args.collection, args.members, clikit.accounts(args))
        return import_(db, user, args.src)
    finally:
        db.close()


def list_collections(db: Database, user: str) -> int:
    for name, tag, title in defaults.collections_of(db, user):
        count = db.one(
            "SELECT count(*) FROM items i JOIN collections c ON c.id = i.collection WHERE c.path = ?",
            (f"{user}/{name}",),
        )
        kind = {"VCALENDAR": "calendar", "VADDRESSBOOK": "address book"}.get(tag, "collection")
        members = ", ".join(f"{m} ({r})" for m, r in defaults.Shares(db).members(user, name).items())
        shared = f"\tshared with {members}" if members else ""
        print(f"{name}\t{kind}\t{count[0] if count else 0} item(s)\t{title}{shared}")
    for owner, name, rights in defaults.Shares(db).shared_with(user):
        print(f"{owner}/{name}\tshared with you ({rights})")
    return 0


def share(db: Database, user: str, collection: str, specs: list[str], accounts: AccountStore) -> int:
    members: dict[str, str] = {}
    for spec in specs:
        address, _, rights = spec.partition("=")
        address = address.strip().lower()
        if accounts.get_user(address) is None:
            return clikit.fail(f"no such user {address}")
        members[address] = rights or "r"
    try:
        defaults.Shares(db).set_members(user, collection, members)
    except defaults.ShareError as exc:
        return clikit.fail(str(exc))
    print(f"{user}/{collection}: shared with {', '.join(f'{m} ({r})' for m, r in members.items()) or 'nobody'}")
    return 0


# -- export ----------------------------------------------------------------------------------


def _components(text: str) -> Iterator[tuple[str, str]]:
    """(name, text) of each component directly inside the VCALENDAR of ``text``."""
    depth = 0
    name = ""
    lines: list[str] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        upper = line.upper()
        if upper.startswith("BEGIN:"):
            depth += 1
            if depth == 2:
                name, lines = upper[6:].strip(), []
        if depth >= 2:
            lines.append(line)
        if upper.startswith("END:"):
            depth -= 1
            if depth == 1 and lines:
                yield name, "\r\n".join(lines) + "\r\n"
                lines = []


def _calendar_file(texts: list[str], title: str) -> str:
    timezones: dict[str, str] = {}
    body: list[str] = []
    for text in texts:
        for name, comp in _components(text):
            if name == "VTIMEZONE":
                found = _TZID_RE.search(comp)
                timezones.setdefault(found.group(1).strip() if found else comp, comp)
            else:
                body.append(comp)
    head = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//GK//gk dav export//EN\r\n"
    if title:
        head += f"X-WR-CALNAME:{title}\r\n"
    return head + "".join(timezones.values()) + "".join(body) + "END:VCALENDAR\r\n"


def collection_files(db: Database, user: str) -> tuple[dict[str, bytes], dict[str, dict[str, str]]]:
    """{file name: content} and {collection name: properties} of ``user``'s collections."""
    files: dict[str, bytes] = {}
    manifest: dict[str, dict[str, str]] = {}
    for row in db.query("SELECT id, path, tag, meta FROM collections WHERE parent = ? ORDER BY path", (user,)):
        name = row["path"].rpartition("/")[2]
        tag = row["tag"]
        if tag not in SUFFIX:
            continue
        meta = json.loads(row["meta"] or "{}")
        manifest[name] = meta
        texts = [r["text"] for r in db.query("SELECT text FROM items WHERE collection = ? ORDER BY href", (row["id"],))]
        if tag == "VCALENDAR":
            content = _calendar_file(texts, str(meta.get("D:displayname", "")))
        else:
            content = "".join(t if t.endswith("\n") else t + "\r\n" for t in texts)
        files[name + SUFFIX[tag]] = content.encode("utf-8")
    return files, manifest


def _is_archive(path: Path) -> bool:
    return path.name.endswith((".tar", ".tar.gz", ".tgz"))


def export(db: Database, user: str, dest: Path) -> int:
    # one read transaction: the files are one consistent snapshot even while gk serve writes
    with db.transaction():
        files, manifest = collection_files(db, user)
    files[MANIFEST] = json.dumps(manifest, indent=2, sort_keys=True).encode()
    if _is_archive(dest):
        dest.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(dest, "w:gz" if dest.name.endswith(("gz", "tgz")) else "w") as tar:
            for name, data in files.items():
                info = tarfile.TarInfo(name)
                info.size, info.mtime, info.mode = len(data), int(time.time()), 0o600
                tar.addfile(info, io.BytesIO(data))
    else:
        dest.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (dest / name).write_bytes(data)
    print(f"exported {len(files) - 1} collection(s) of {user} to {dest}")
    return 0


# -- import ----------------------------------------------------------------------------------


def read_source(src: Path) -> dict[str, bytes]:
    """{file name: content} of the .ics/.vcf files (and the manifest) of a directory, an archive or a file."""
    wanted = (".ics", ".vcf", MANIFEST)
    if src.is_dir():
        return {p.name: p.read_bytes() for p in sorted(src.iterdir()) if p.is_file() and p.name.endswith(wanted)}
    if _is_archive(src):
        out = {}
        with tarfile.open(src) as tar:
            for member in tar.getmembers():
                name = Path(member.name).name
                if member.isfile() and name.endswith(wanted):
                    f = tar.extractfile(member)
                    if f is not None:
                        out[name] = f.read()
        return out
    return {src.name: src.read_bytes()}


def _storage(db: Database) -> Any:
    from radicale import config as radicale_config

    from gk.dav.storage import Storage

    configuration = radicale_config.Configuration(radicale_config.DEFAULT_CONFIG_SCHEMA)
    return Storage(configuration, db.path, db=db)


def import_(db: Database, user: str, src: Path) -> int:
    if not src.exists():
        return clikit.fail(f"{src} does not exist")
    files = read_source(src)
    manifest: dict[str, dict[str, str]] = json.loads(files.pop(MANIFEST, b"{}") or b"{}")
    storage = _storage(db)
    defaults.ensure_user(db, user)
    try:
        counts = _import_files(storage, user, files, manifest)
    except ImportRefused as exc:  # the transaction was rolled back: nothing half-imported
        return clikit.fail(str(exc))
    print(f"imported into {user}: {counts[0]} added, {counts[1]} replaced, {counts[2]} unchanged")
    return 0


class ImportRefused(Exception):
    pass


def _import_files(
    storage: Any, user: str, files: dict[str, bytes], manifest: dict[str, dict[str, str]]
) -> tuple[int, int, int]:
    from radicale import item as radicale_item
    from radicale.app.put import prepare

    added = replaced = unchanged = 0
    with storage.acquire_lock("w", user):
        for fname, data in sorted(files.items()):
            name, _, ext = fname.rpartition(".")
            tag = "VCALENDAR" if ext == "ics" else "VADDRESSBOOK"
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}", name):
                raise ImportRefused(f"{fname}: not a usable collection name")
            path = f"/{user}/{name}/"
            try:
                components = radicale_item.read_components(data.decode("utf-8-sig"))
                prepared, _, _, _, exc = prepare(components, path, "", True, False, 10**9, 0, tag, True)
                if exc is not None:
                    raise exc[1]
                items = list(prepared)
            except Exception as exc:  # vobject raises all sorts on broken input
                raise ImportRefused(
                    f"{fname}: not valid {'iCalendar' if tag == 'VCALENDAR' else 'vCard'}: {exc}"
                ) from exc
            col = next(iter(storage.discover(path)), None)
            if col is None:
                props = dict(manifest.get(name) or {"tag": tag, "D:displayname": name})
                props["tag"] = tag
                col, _, _ = storage.create_collection(path, props=props)
            elif col.tag != tag:
                raise ImportRefused(
                    f"{fname}: {user}'s collection {name} is not {'a calendar' if ext == 'ics' else 'an address book'}"
                )
            by_uid = {i.uid: i.href for i in col.get_all()}
            for item in items:
                href = by_uid.get(item.uid)
                if href is not None:
                    old = next(iter(col.get_multi([href])))[1]
                    if old is not None and old.etag == item.etag:
                        unchanged += 1
                        continue
                    replaced += 1
                else:
                    href = _href_for(item.uid, SUFFIX[tag], set(by_uid.values()))
                    by_uid[item.uid] = href
                    added += 1
                col.upload(href, item)
    return added, replaced, unchanged


def _href_for(uid: str, suffix: str, taken: set[str]) -> str:
    from gk.dav.storage import _free_href

    return _free_href(uid, suffix, taken)
