"""Subscriptions are a list of names of their own (mailbox/subscriptions.py): CREATE and DELETE do
not touch it, RENAME carries it along, it is made once from the index's old per-folder flags, and
it survives the loss of the index (it lives in the Maildir)."""

from __future__ import annotations

import pytest

from gk.mail.mailbox import FolderNotFound, MailboxError, MailboxStore, subscriptions

DEFAULTS = {"INBOX", "Archive", "Drafts", "Junk", "Sent", "Trash"}


def test_subscriptions_are_independent_of_folders(tmp_path):  # type: ignore[no-untyped-def]
    mb = MailboxStore(tmp_path / "mail").user("ann@example.org")
    assert mb.subscriptions() == DEFAULTS  # the default folders stay subscribed
    mb.create_folder("a/b")
    assert mb.subscriptions() == DEFAULTS  # CREATE does not subscribe (nor its parents)
    mb.subscribe("a/b")
    assert mb.folder("a/b").subscribed and not mb.folder("a").subscribed
    mb.delete_folder("a/b")
    assert "a/b" in mb.subscriptions()  # the subscription outlives its folder
    mb.create_folder("a/b")
    assert mb.folder("a/b").subscribed
    mb.delete_folder("a/b")
    mb.subscribe("a/b", False)  # no folder, but subscribed: fine
    assert mb.subscriptions() == DEFAULTS
    with pytest.raises(MailboxError, match="not subscribed"):
        mb.subscribe("a/b", False)
    with pytest.raises(FolderNotFound):
        mb.subscribe("nosuch")
    mb.subscribe("inbox", False)  # INBOX in any case
    assert "INBOX" not in mb.subscriptions()
    mb.subscribe("INBOX")
    # RENAME carries the subscriptions of the folder and its children along
    mb.create_folder("p/q")
    mb.subscribe("p")
    mb.subscribe("p/q")
    mb.rename_folder("p", "r")
    assert {"r", "r/q"} <= mb.subscriptions() and not {"p", "p/q"} & mb.subscriptions()
    assert subscriptions.load(mb.root) == mb.subscriptions()


def test_made_once_from_the_old_flags_and_kept_when_the_index_is_lost(tmp_path):  # type: ignore[no-untyped-def]
    root = tmp_path / "mail"
    mb = MailboxStore(root).user("ann@example.org")
    mb.create_folder("Lists")
    # as an index from before the subscription list: flags on folder rows, no list file
    mb.db.execute("UPDATE folders SET subscribed = (name != 'Junk')")
    (mb.root / subscriptions.FILE_NAME).unlink()
    mb.close()
    mb = MailboxStore(root).user("ann@example.org")
    want = (DEFAULTS - {"Junk"}) | {"Lists"}
    assert mb.subscriptions() == want
    assert subscriptions.load(mb.root) == want
    mb.subscribe("Lists", False)
    mb.close()
    for suffix in ("", "-wal", "-shm"):  # the index is lost: rebuilt from the Maildir
        (root / "ann@example.org" / f"index.sqlite3{suffix}").unlink(missing_ok=True)
    mb = MailboxStore(root).user("ann@example.org")
    assert "Lists" in mb.folder_names()
    assert mb.subscriptions() == DEFAULTS - {"Junk"}
    mb.close()


def test_a_list_that_cannot_be_written(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    """A full disk: SUBSCRIBE is refused with OVERQUOTA and changes nothing; opening a mailbox
    whose list must first be made still works (the list is kept in memory until it can be saved)."""
    import errno

    root = tmp_path / "mail"
    mb = MailboxStore(root).user("ann@example.org")
    mb.create_folder("x")

    def full(root, names):  # type: ignore[no-untyped-def]
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(subscriptions, "save", full)
    with pytest.raises(MailboxError) as err:
        mb.subscribe("x")
    assert err.value.code == "OVERQUOTA" and "x" not in mb.subscriptions()
    with pytest.raises(MailboxError):
        mb.subscribe("Junk", False)
    assert "Junk" in mb.subscriptions()
    (mb.root / subscriptions.FILE_NAME).unlink()
    mb.close()
    mb = MailboxStore(root).user("ann@example.org")
    assert "Junk" in mb.subscriptions() and not (mb.root / subscriptions.FILE_NAME).exists()
    mb.close()
