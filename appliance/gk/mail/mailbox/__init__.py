"""The mailbox store: per-user Maildirs (the source of truth) and their SQLite index.

Below both the IMAP server and the webmail; SMTP delivery writes through ``maildir.deliver``
and then calls ``notify.publish(address, "INBOX", "new")``.

Public API (for IMAP and the webmail)::

    store = get_store(ctx)                 # the MailboxStore, also ctx.services["mailbox"]
    mb = store.user(user.address)          # UserMailbox of the *authenticated* user only
    mb.folders() -> list[FolderInfo]       # name, special_use, subscribed, uidvalidity, uidnext,
                                           # highestmodseq, exists, unseen, size; INBOX first
    mb.folder(name) -> FolderInfo          # status of one folder (syncs it first)
    mb.create_folder(name) / delete_folder(name) / rename_folder(old, new) / subscribe(name, on)
    mb.subscriptions() -> set[str]         # subscribed names, folder or not (subscriptions.py)
    mb.messages(name, offset=0, limit=50, newest_first=True) -> list[MessageInfo]
                                           # uid, flags, size, internaldate, modseq, envelope, tzoffset,
                                           # .subject / .sender (decoded), .seen
    mb.info(name, uid) -> MessageInfo      # one message; infos(name, uids) -> {uid: MessageInfo}
    mb.open_message(name, uid) -> file     # the stored bytes, streamed (close it)
    mb.headers(name, uid) -> email.message.Message   # top header block (raw values)
    mb.structure(name, uid) -> mime.Part   # MIME tree with byte offsets; textindex.part_text(f, part)
                                           # gives a text part's decoded text
    mb.set_flags(name, uids, flags, mode="add"|"remove"|"replace") -> (changed, failed)
    mb.move(name, uids, dest) / mb.copy(...) -> (dest uidvalidity, [(old uid, new uid)])
    mb.delete_messages(name, uids)         # to Trash; inside Trash: removed for good
    mb.expunge(name, uids=None) -> [uid]   # remove \\Deleted messages
    mb.vanished(name, modseq, ranges=None) -> [uid] | None   # expunged after modseq (QRESYNC);
                                           # None: pruned that far back, answer conservatively
    mb.search(name, criteria) -> [uid]     # criteria tuples, see query.py; search_text(name, text)
    mb.append(name, bytes|Path|file, flags=(), internaldate=None, tzoffset=None) -> (uidvalidity, uid)

Folder names are Unicode with "/" between levels; "INBOX" is the inbox; Sent, Drafts, Trash,
Junk and Archive always exist (special_use "\\Sent" …). Errors are ``MailboxError`` (with an
IMAP response code in ``.code``); ``FolderNotFound`` is one. Change notifications:
``notify.subscribe(address, callback(address, folder, kind))``, kind ``new`` / ``flags`` /
``expunge`` / ``folders``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gk.mail.mailbox.store import (
    SPECIAL_USE,
    FolderInfo,
    FolderNotFound,
    MailboxError,
    MailboxStore,
    MessageInfo,
    UserMailbox,
    check_folder_name,
)

if TYPE_CHECKING:
    from gk.context import AppContext


def get_store(ctx: AppContext) -> MailboxStore:
    """The one MailboxStore of the process (made and registered on first use). Mail that comes
    without a zone of its own (SMTP, webmail, files found in the Maildir) gets the owner's time
    zone (``gk.localtime``) as its internal date's zone."""
    store = ctx.services.get("mailbox")
    if store is None:
        from gk import localtime

        data_dir = ctx.data_dir
        store = MailboxStore(ctx.mail_root, zone=lambda: localtime.zone(data_dir))
        ctx.services["mailbox"] = store
    return store


__all__ = [
    "SPECIAL_USE",
    "FolderInfo",
    "FolderNotFound",
    "MailboxError",
    "MailboxStore",
    "MessageInfo",
    "UserMailbox",
    "check_folder_name",
    "get_store",
]
