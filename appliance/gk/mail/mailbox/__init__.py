"""The mailbox store: per-user Maildirs (the source of truth) and their SQLite index.

Below both the IMAP server and the webmail. This package's face is the only door: other
packages import ``gk.mail.mailbox`` and its public modules ``reading`` (a message as text),
``writer`` (new mail into Maildirs) and ``message`` (``RawMessage``) — never ``store``,
``mime``, ``textindex``, ``maildir``, ``index``… — and never touch a mailbox's database
(``tests/unit/test_mailbox_face.py`` checks it).

Public API (for IMAP, the webmail, delivery, the queue's bounces, the assistant's tools)::

    store = get_store(ctx)                 # the MailboxStore (ctx.services.require(MailboxStore))
    mb = store.user(user.address)          # UserMailbox of the *authenticated* user only
    mb.folders() -> list[FolderInfo]       # name, special_use, subscribed, uidvalidity, uidnext,
                                           # highestmodseq, exists, unseen, size; INBOX first
    mb.list_folders() -> list[ListedFolder]  # names for LIST/LSUB: folders and subscribed names
                                           # without a folder (exists=False); no counts
    mb.folder(name) -> FolderInfo          # status of one folder (syncs it first)
    mb.create_folder(name) / delete_folder(name) / rename_folder(old, new) / subscribe(name, on)
    mb.subscriptions() -> set[str]         # subscribed names, folder or not
    mb.messages(name, offset=0, limit=50, newest_first=True) -> list[MessageInfo]
                                           # uid, flags, size, internaldate, modseq, envelope, tzoffset,
                                           # .subject / .sender (decoded), .seen
    mb.info(name, uid) -> MessageInfo      # one message; infos(name, uids) -> {uid: MessageInfo}
                                           # (envelopes=False: .envelope not needed, nothing parsed;
                                           # with envelopes: .envelope_wire, IMAP's ENVELOPE bytes)
    with mb.open_message(name, uid) as fh: # the stored bytes, a binary file: always close it
    mb.headers(name, uid) -> email.message.Message   # top header block (raw values)
    mb.structure(name, uid) -> Part        # MIME tree with byte offsets (find_part, body_structure)
    header_end(fh) -> int                  # where the top-level body starts, without the MIME tree
    mb.set_flags(name, uids, flags, mode="add"|"remove"|"replace") -> (changed, failed)
    mb.move(name, uids, dest) / mb.copy(...) -> (dest uidvalidity, [(old uid, new uid)])
    mb.delete_messages(name, uids)         # to Trash; inside Trash: removed for good
    mb.expunge(name, uids=None) -> [uid]   # remove \\Deleted messages
    mb.vanished(name, modseq, ranges=None) -> [uid] | None   # expunged after modseq (QRESYNC);
                                           # None: pruned that far back, answer conservatively
    mb.search(name, criteria) -> [uid]     # criteria tuples, see query.py; search_text(name, text)
    mb.append(name, RawMessage|bytes|Path|file, flags=(), internaldate=None, tzoffset=None)
                                           # -> (uidvalidity, uid); indexed at once

    reading.body_text(mb, name, uid) -> str            # plain body, else the HTML's text
    reading.body_html(mb, name, uid) -> str | None     # raw HTML (sanitize before showing)
    reading.message_attachments(mb, name, uid) -> list[Attachment]
    reading.attachment(mb, name, uid, "1.2") -> (Attachment, Iterator[bytes]) | None
    reading.message_preview(mb, name, uid) -> str      # and choose_body, part_text, … on a Part

    writer = get_writer(ctx)               # MaildirWriter: deliver([NewCopy]), deliver_bounce()
    store.clean_tmp()                      # at start: files a crash left in tmp/

Folder names are Unicode with "/" between levels; "INBOX" is the inbox; Sent, Drafts, Trash,
Junk and Archive always exist (special_use "\\Sent" …). Errors are ``MailboxError`` (with an
IMAP response code in ``.code``); ``FolderNotFound`` is one. Changes are typed events on the
process's bus, published after commit (``gk.events``: MessagesAdded, FlagsChanged, Expunged,
FoldersChanged, MaildirChanged); new mail is announced in one place, ``writer.announce_new``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gk.mail.mailbox import reading
from gk.mail.mailbox.committer import GroupCommitter
from gk.mail.mailbox.maildir import unique_name
from gk.mail.mailbox.message import RawMessage
from gk.mail.mailbox.mime import Multipart, Part, body_structure, find_part, header_end
from gk.mail.mailbox.reading import Attachment
from gk.mail.mailbox.store import (
    SPECIAL_USE,
    FolderInfo,
    FolderNotFound,
    ListedFolder,
    MailboxError,
    MailboxStore,
    MessageInfo,
    UserMailbox,
    check_folder_name,
)
from gk.mail.mailbox.writer import MaildirWriter, NewCopy, announce_new

if TYPE_CHECKING:
    from gk.context import AppContext


def get_store(ctx: AppContext) -> MailboxStore:
    """The one MailboxStore of the process, started by the ``mailbox`` feature
    (``gk.mail.mailbox.service``) before every protocol on it."""
    return ctx.services.require(MailboxStore)


INDEX_FILE = "index.sqlite3"  # each user's, in mail/<address>/


def index_schema(rel: str) -> int | None:
    """The newest schema version this GK knows for the file ``rel`` of the data dir when it is a
    user's mailbox index (``mail/<address>/…``), else None: ``gk backup restore`` refuses an
    archive whose index is newer (``gk.backup.schemas``)."""
    from gk.mail.mailbox import index

    parts = rel.split("/")
    if len(parts) == 3 and parts[0] == "mail" and parts[2] == INDEX_FILE:
        return len(index.MIGRATIONS)
    return None


_writers: dict[int, MaildirWriter] = {}


def get_writer(ctx: AppContext) -> MaildirWriter:
    """The process-wide ``MaildirWriter`` (one group committer for every feature that delivers:
    SMTP, submission, the queue's bounces)."""
    w = _writers.get(id(ctx))
    if w is None:
        w = _writers[id(ctx)] = MaildirWriter(ctx.mail_root)
    return w


__all__ = [
    "SPECIAL_USE",
    "Attachment",
    "FolderInfo",
    "FolderNotFound",
    "GroupCommitter",
    "ListedFolder",
    "MailboxError",
    "MailboxStore",
    "MaildirWriter",
    "MessageInfo",
    "Multipart",
    "NewCopy",
    "Part",
    "RawMessage",
    "UserMailbox",
    "announce_new",
    "body_structure",
    "check_folder_name",
    "find_part",
    "get_store",
    "get_writer",
    "index_schema",
    "header_end",
    "reading",
    "unique_name",
]
