"""IMAP QUOTA (RFC 9208): GETQUOTAROOT, GETQUOTA and SETQUOTA over the per-user mail quota
(``users.quota_mb``, ``gk.mail.delivery.quota``: the same limit and usage that SMTP's ``452 4.2.2``
/ ``552 5.2.2`` and APPEND's ``NO [OVERQUOTA]`` use), and the APPEND literal check that refuses a
message that cannot fit *before* its bytes are sent.

One resource, STORAGE (in units of 1024 octets, RFC 9208 5.1): the sum of the sizes of every
message in every folder of the user; STATUS DELETED-STORAGE (what EXPUNGE would free, in the
same unit) comes with it. There is no message-count limit, so RES-MESSAGE is not announced. Each user has one quota root, named ``""`` (as RFC 9208's examples name a user's
root), holding all of that user's folders; a user without a quota has no quota root (GETQUOTAROOT
answers ``* QUOTAROOT <mailbox>`` with no root, GETQUOTA ``""`` is ``NO [NONEXISTENT]``).
An administrator may also name another user's root by that user's address, and may change a
limit with SETQUOTA (stored in whole MB, rounded up; the untagged QUOTA reply shows what was
stored); SETQUOTA from anyone else is ``NO [NOPERM]``.

APPEND: the command reader calls ``append_literal_check`` for each literal of an APPEND once its
size is announced; a size over what remains of the quota makes the reader answer
``NO [OVERQUOTA]`` instead of sending ``+`` for a synchronizing literal, or read and discard a
LITERAL+ one and then answer ``NO [OVERQUOTA]`` (the session stays in step with the client). The
check in ``cmd_append`` stays: the quota may shrink while the literal is being sent. A COPY whose
copies cannot fit is refused the same way (``check_copy``); MOVE adds nothing to the usage.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from gk.accounts.store import AccountError
from gk.mail.delivery import quota
from gk.mail.imap import utf7
from gk.mail.imap.parser import Parser, Part, ReaderError
from gk.mail.imap.protocol import BadCommand, NoCommand
from gk.mail.imap.response import string
from gk.mail.mailbox import MailboxError, MailboxStore

if TYPE_CHECKING:
    from gk.mail.imap.connection import Connection

CAPS = "QUOTA QUOTA=RES-STORAGE"


def caps(session: Connection) -> str:
    """After login: QUOTA and its one resource; QUOTASET (RFC 9208 3.1) to an administrator,
    the only user whose SETQUOTA is carried out."""
    user = session.ctx.accounts.get_user(session.user) if session.user else None
    return CAPS + " QUOTASET" if user is not None and user.is_admin else CAPS


KIB = 1024
_APPEND = re.compile(rb"^[^ ]+ APPEND ", re.IGNORECASE)


def _root_owner(session: Connection, root: str) -> str:
    """The address whose quota the root ``root`` names, if ``session``'s user may see it."""
    if root == "":
        return session.user
    ctx = session.ctx
    me = ctx.accounts.get_user(session.user)
    other = ctx.accounts.get_user(root)
    if me is None or not me.is_admin or other is None:
        raise NoCommand(f"no quota root {root!r}", "NONEXISTENT")
    return other.address


def _usage(session: Connection, address: str) -> int:
    if address == session.user and session.mb is not None:
        return quota.usage(session.mb)
    store = session.ctx.services.require(MailboxStore)
    return quota.usage(store.user(address))


def _quota_line(session: Connection, root: str, address: str) -> bytes:
    """``* QUOTA root (STORAGE used limit)``, both in KiB (usage rounded up, as the limit is whole)."""
    limit = quota.limit(session.ctx, address)
    used = _usage(session, address)
    return b"* QUOTA " + string(root) + f" (STORAGE {-(-used // KIB)} {limit // KIB})\r\n".encode()


def cmd_getquotaroot(session: Connection, tag: str, p: Parser) -> None:
    p.sp()
    name = p.mailbox()
    p.end()
    assert session.mb is not None
    try:
        session.mb.folder(name)
    except MailboxError as exc:
        raise NoCommand(f"no folder {name}", "NONEXISTENT") from exc
    shown = name if name == "INBOX" else utf7.encode(name)
    if not quota.limit(session.ctx, session.user):
        session.write(b"* QUOTAROOT " + string(shown) + b"\r\n")
    else:
        session.write(b"* QUOTAROOT " + string(shown) + b' ""\r\n')
        session.write(_quota_line(session, "", session.user))
    session.ok(tag, "GETQUOTAROOT completed")


def cmd_getquota(session: Connection, tag: str, p: Parser) -> None:
    p.sp()
    root = p.text_astring("a quota root")
    p.end()
    address = _root_owner(session, root)
    if not quota.limit(session.ctx, address):
        raise NoCommand(f"no quota root {root!r}", "NONEXISTENT")
    session.write(_quota_line(session, root, address))
    session.ok(tag, "GETQUOTA completed")


def cmd_setquota(session: Connection, tag: str, p: Parser) -> None:
    p.sp()
    root = p.text_astring("a quota root")
    p.sp()
    p.open_list()
    limits: dict[str, int] = {}
    while not p.close_list():
        if limits:
            p.sp()
        resource = p.atom("a resource name").upper()
        p.sp()
        limits[resource] = p.number("a resource limit", limit=2**63 - 1)
        if len(limits) > 16:
            raise BadCommand("too many resources")
    p.end()
    me = session.ctx.accounts.get_user(session.user)
    if me is None or not me.is_admin:
        raise NoCommand("only an administrator may change a quota", "NOPERM")
    address = _root_owner(session, root)
    unknown = sorted(set(limits) - {"STORAGE"})
    if unknown:
        raise NoCommand(f"resource {unknown[0]} cannot be limited here (only STORAGE)", "LIMIT")
    mb = -(-limits.get("STORAGE", 0) // KIB)  # KiB → whole MB, rounded up; none given: no quota
    try:
        session.ctx.accounts.set_quota(address, mb)
    except AccountError as exc:  # over the largest quota
        raise NoCommand(str(exc), "LIMIT") from exc
    if mb:
        session.write(_quota_line(session, root, address))
    session.ok(tag, "SETQUOTA completed")


def append_literal_check(session: Connection, parts: list[Part], size: int) -> ReaderError | None:
    """The reader's hook: refuse a literal of an APPEND that cannot fit in what remains of the
    user's quota (None: go on). Cheap for everything else: only APPEND of a user with a quota."""
    if not session.user or session.mb is None or not parts:
        return None
    first = parts[0]
    if not isinstance(first, bytes) or not _APPEND.match(first):
        return None
    limit = quota.limit(session.ctx, session.user)
    if not limit or quota.usage(session.mb) + size <= limit:
        return None
    tag = first.split(b" ", 1)[0].decode("ascii", "replace")
    return ReaderError(tag, "the message does not fit in the mailbox's quota", reply="NO [OVERQUOTA]")


def check_copy(session: Connection, folder: str, uids: list[int]) -> None:
    """COPY (not MOVE, which frees what it adds): refused ``NO [OVERQUOTA]`` when the copies
    would take the user over the quota (RFC 9208 4.3), before anything is copied."""
    limit = quota.limit(session.ctx, session.user)
    if not limit or not uids or session.mb is None:
        return
    if quota.usage(session.mb) + session.mb.size_of(folder, uids) > limit:
        raise NoCommand("the copies do not fit in the mailbox's quota", "OVERQUOTA")
