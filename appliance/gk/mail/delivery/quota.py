"""Per-user mail quotas (``users.quota_mb`` in accounts.sqlite3, set on the admin's Users page; 0 =
none): what a user's mailbox holds against its limit, asked before mail is taken in.

Enforced where mail enters a mailbox: SMTP RCPT (``452 4.2.2`` once the mailbox is full, RFC 3463
"mailbox full", transient: the sender's server retries while the user makes room), SMTP DATA
(``552 5.2.2`` when this message would not fit) and IMAP APPEND (``NO [OVERQUOTA]``, RFC 9208).
The usage is the sum of the sizes the mailbox index keeps per folder: one small SQLite query per
folder, no file is read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gk.mail.mailbox import MailboxStore, UserMailbox

if TYPE_CHECKING:
    from gk.context import AppContext

MB = 1024 * 1024
FULL_RCPT = "452 4.2.2 <{address}>: mailbox full; try again later"
FULL_DATA = "552 5.2.2 <{address}>: this message does not fit in the mailbox's quota"


def usage(mailbox: UserMailbox) -> int:
    """Bytes of every message in every folder of ``mailbox``."""
    return sum(f.size for f in mailbox.folders())


def limit(ctx: AppContext, address: str) -> int:
    """The user's quota in bytes (0: none)."""
    user = ctx.accounts.get_user(address)
    return user.quota_mb * MB if user is not None else 0


def exceeded(ctx: AppContext, address: str, adding: int = 0, *, quota_mb: int | None = None) -> bool:
    """Whether ``address``'s mailbox is full (``adding`` = 0) or would be over its quota with
    ``adding`` more bytes. False without a quota or without a running mailbox store.
    ``quota_mb``: the user's ``quota_mb`` when the caller already read the user (SMTP RCPT on
    the hub: one SQLite read a recipient fewer), else it is read here."""
    quota = quota_mb * MB if quota_mb is not None else limit(ctx, address)
    if not quota:
        return False
    store = ctx.services.maybe(MailboxStore)
    if store is None:
        return False
    used = usage(store.user(address))
    return used >= quota if adding == 0 else used + adding > quota
