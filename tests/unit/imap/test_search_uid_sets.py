"""A search over a UID set of thousands of ranges (a client's ``UID SEARCH UID 1,3,5,…``)
once failed inside SQLite (expression tree deeper than 1,000): it is now one query."""

from __future__ import annotations

from gk.mail.mailbox import MailboxStore
from gk.mail.mailbox.query import compile_criteria


def _msg(i: int) -> bytes:
    return f"From: a@example.com\r\nSubject: m{i}\r\n\r\nbody {i}\r\n".encode()


def test_uid_sets_of_thousands_of_ranges_compile(tmp_path):  # type: ignore[no-untyped-def]
    mb = MailboxStore(tmp_path / "mail").user("ann@example.org")
    for i in range(1, 21):
        mb.append("INBOX", _msg(i))
    ranges = [(n, n) for n in range(1, 9000, 3)] + [(n, n + 1) for n in range(9001, 20000, 5)]
    assert mb.search("INBOX", ("uids", ranges)) == [1, 4, 7, 10, 13, 16, 19]
    assert mb.search("INBOX", ("not", ("uids", ranges))) == [2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20]
    assert mb.search("INBOX", ("uids", [(5, 7), (6, 9), (15, 15)])) == [5, 6, 7, 8, 9, 15]
    params: list[object] = []
    assert compile_criteria(("uids", []), params) == "0" and params == []
