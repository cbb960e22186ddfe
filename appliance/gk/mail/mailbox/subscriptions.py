"""A user's IMAP subscription list: folder names, independent of the folders themselves.

RFC 3501 §6.3.6–6.3.7: a subscription outlives its folder (DELETE does not unsubscribe, and a
name stays listed by LSUB, ``\\Noselect``, until UNSUBSCRIBE), and CREATE does not subscribe
(the client decides: Thunderbird sends SUBSCRIBE after CREATE; Dovecot does not subscribe on
CREATE either).

Kept in the Maildir root as ``gk-subscriptions`` (as Dovecot keeps ``subscriptions`` there), not
in the index: the index is a cache that can be rebuilt from the Maildir, and a rebuild must not
cost a user their subscriptions. One Unicode name per line, UTF-8, "/" between levels (folder
names hold no control characters, so a line is a name). Written whole to a temporary file,
fsynced, renamed over the old one and the directory fsynced: a crash leaves the old list or the
new one. A few hundred bytes per user; the ``UserMailbox`` keeps it in memory as a set.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Iterable
from pathlib import Path

from gk.mail.mailbox import maildir

log = logging.getLogger("gk.mailbox")

FILE_NAME = "gk-subscriptions"


def load(root: Path) -> set[str] | None:
    """The subscribed names kept in Maildir ``root``; None when there is no list yet."""
    try:
        text = (root / FILE_NAME).read_text("utf-8", "replace")
    except FileNotFoundError:
        return None
    return {line for line in text.split("\n") if line}


def save(root: Path, names: Iterable[str]) -> None:
    """Replace the list durably (temporary file, fsync, rename, directory fsync)."""
    tmp = root / (FILE_NAME + ".tmp")
    data = "".join(name + "\n" for name in sorted(names)).encode("utf-8")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, root / FILE_NAME)
    maildir.fsync_dir(root)


def save_or_warn(root: Path, names: Iterable[str]) -> None:
    """``save``, logging instead of raising, where the caller's in-memory list stays right and the
    next save writes it (opening a mailbox on a full disk must not refuse the login)."""
    try:
        save(root, names)
    except OSError as exc:
        log.warning("subscription list %s not saved (%s); kept in memory", root / FILE_NAME, exc)


def write_error(exc: OSError) -> tuple[str, str]:
    """(text, IMAP response code) for a refused SUBSCRIBE/UNSUBSCRIBE: a full disk is OVERQUOTA
    (as Dovecot answers), anything else SERVERBUG."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "not enough disk space to save the subscription list", "OVERQUOTA"
    return f"the subscription list could not be saved ({exc.strerror or exc})", "SERVERBUG"
