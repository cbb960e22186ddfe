"""The command reader's per-command budgets (literal bytes in all, literal bytes in memory, text
over all lines), its answer to a spool disk that fails, and the parser's limits on numbers and
on SEARCH programs: each refusal is a ReaderError or BadCommand, never an exception deeper down."""

from __future__ import annotations

import errno
import io

import pytest

from gk.mail.imap.parser import CommandReader, Parser, ReaderError
from gk.mail.imap.protocol import MAX_SEARCH_KEYS, MEMORY_LITERAL, PREAUTH_LITERAL_BYTES, BadCommand, Literal
from gk.mail.imap.search import SearchParser


def reader(data: bytes, **kw) -> tuple[CommandReader, list[int]]:  # type: ignore[no-untyped-def]
    sent: list[int] = []
    r = CommandReader(io.BufferedReader(io.BytesIO(data)), lambda: sent.append(1), **kw)
    return r, sent


def preauth(r: CommandReader) -> CommandReader:
    r.max_literal = r.max_literal_total = PREAUTH_LITERAL_BYTES
    return r


def test_preauth_literals_are_capped_per_command_not_only_per_literal() -> None:
    lit = b"{4000}\r\n" + b"x" * 4000
    r, sent = reader(b"a LOGIN " + lit + b" " + lit + b" " + b"{4000}\r\nc NOOP\r\n")
    preauth(r)
    with pytest.raises(ReaderError) as exc:
        r.read()
    assert exc.value.tag == "a" and not exc.value.fatal and "8192" in str(exc.value)
    assert len(sent) == 2  # the third literal was refused before its continuation
    assert r.read() == [b"c NOOP"]


def test_a_big_preauth_literal_is_refused_before_it_is_sent() -> None:
    r, sent = reader(b"x LOGIN {67108864}\r\ny NOOP\r\n")
    preauth(r)
    with pytest.raises(ReaderError) as exc:
        r.read()
    assert not exc.value.fatal and exc.value.reply == "BAD" and not sent
    assert r.read() == [b"y NOOP"]
    r, _ = reader(b"x LOGIN {67108864+}\r\n")
    preauth(r)
    with pytest.raises(ReaderError) as exc:
        r.read()
    assert exc.value.fatal  # LITERAL+ data is on its way: the session must end


def test_memory_held_per_command_is_bounded_the_rest_is_spooled(tmp_path) -> None:  # type: ignore[no-untyped-def]
    n = 100 * 1024
    data = b"a APPEND INBOX" + b"".join(b" {%d+}\r\n" % n + b"y" * n for _ in range(6)) + b"\r\n"
    r, _ = reader(data, max_literal=1 << 20, spool_dir=str(tmp_path))
    parts = r.read()
    assert parts is not None
    lits = [p for p in parts if isinstance(p, Literal)]
    assert len(lits) == 6
    assert sum(p.size for p in lits if p.in_memory) <= MEMORY_LITERAL
    assert [p.in_memory for p in lits] == [True, True, False, False, False, False]
    assert all(p.stream().read() == b"y" * n for p in lits)
    for p in lits:
        p.close()


def test_literal_total_after_login_allows_one_big_message_only() -> None:
    r, _ = reader(b"a APPEND INBOX {3000}\r\n" + b"z" * 3000 + b"\r\n", max_literal=4000)
    assert r.read() is not None
    big = b"{4000+}\r\n" + b"z" * 4000
    r, _ = reader(b"a X " + big + (b" " + big) * 70 + b"\r\nb NOOP\r\n", max_literal=4000)
    with pytest.raises(ReaderError) as exc:
        r.read()
    assert "in one command" in str(exc.value) and exc.value.fatal


def test_command_text_is_capped_over_all_its_lines() -> None:
    chunk = b"x" * 600 + b" {1}\r\nq"
    r, _ = reader(b"t1 SEARCH " + chunk * 3 + b"\r\nt2 NOOP\r\n", max_line=1000)
    with pytest.raises(ReaderError) as exc:
        r.read()
    assert exc.value.tag == "t1" and "command longer than 1000" in str(exc.value)


class _FullDisk(io.RawIOBase):
    def writable(self) -> bool:
        return True

    def write(self, b) -> int:  # type: ignore[no-untyped-def]
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_spool_disk_is_answered_no_overquota_and_the_stream_stays_in_step(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # the spool file is the only thing replaced here (a unit test of the reader); the server's
    # answer on a real full disk is in tests/integration/test_imap_limits.py
    import gk.mail.imap.protocol as protocol

    monkeypatch.setattr(protocol.tempfile, "TemporaryFile", lambda dir=None: _FullDisk())
    n = MEMORY_LITERAL + 10
    r, sent = reader(b"a APPEND INBOX {%d}\r\n" % n + b"m" * n + b"\r\nb NOOP\r\n")
    with pytest.raises(ReaderError) as exc:
        r.read()
    assert exc.value.reply == "NO [OVERQUOTA]" and exc.value.tag == "a" and len(sent) == 1
    assert r.read() == [b"b NOOP"]


@pytest.mark.parametrize(
    ("text", "method"),
    [
        (b"4294967296", "number"),
        (b"9223372036854775808", "number"),
        (b"9" * 5000, "number"),
        (b"9223372036854775808", "mod_sequence"),
        (b"18446744073709551615", "mod_sequence"),
    ],
)
def test_numbers_out_of_range_are_bad(text: bytes, method: str) -> None:
    with pytest.raises(BadCommand, match="at most"):
        getattr(Parser([text]), method)()


def test_numbers_at_their_limits_are_accepted() -> None:
    assert Parser([b"4294967295"]).number() == 2**32 - 1
    assert Parser([b"9223372036854775807"]).mod_sequence() == 2**63 - 1


def search(text: bytes):  # type: ignore[no-untyped-def]
    return SearchParser(Parser([text]), lambda s: s.resolve(10), lambda s: s.resolve(10)).program()


@pytest.mark.parametrize(
    "text",
    [
        b"NOT " * 16_000 + b"ALL",
        b"OR " * 5_000 + b"ALL " * 5_000 + b"ALL",
        b" ".join([b"ALL"] * 10_000),
        b"(" * 10 + b"NOT " * 7 + b"ALL" + b")" * 10,
        b"OR SEEN " * 17 + b"ALL",
        b"LARGER 9223372036854775808",
        b"MODSEQ 18446744073709551615",
    ],
)
def test_costly_or_overflowing_search_programs_are_bad(text: bytes) -> None:
    with pytest.raises(BadCommand):
        search(text)


def test_ordinary_search_programs_still_parse() -> None:
    ors = b"OR " * 15 + b" ".join(b"FROM a%d" % i for i in range(16))
    assert search(ors)[0] == "or"
    assert search(b" ".join([b"SEEN"] * MAX_SEARCH_KEYS))[0] == "and"
    assert search(b"NOT NOT (OR SEEN (NOT DELETED)) MODSEQ 9223372036854775807")[0] == "and"


@pytest.mark.parametrize(
    "text",
    [
        b" ".join([b"HEADER X-A abcd"] * MAX_SEARCH_KEYS),
        b" ".join([b"TEXT hello"] * (MAX_SEARCH_KEYS - 17)) + b" " + b"NOT " * 16 + b"HEADER X-A abcd",
        b"OR TEXT ab " * 16 + b" ".join([b"1,3,5,7:9"] * (MAX_SEARCH_KEYS - 32)),
        b"OR " * 16 + b" ".join([b"TEXT ab"] * 17),
        b"NOT OR TEXT hello " * 8 + b"HEADER X-A abcd",
        b"(SEEN " * 16 + b" ".join([b"TEXT hello"] * (MAX_SEARCH_KEYS - 32)) + b")" * 16,
    ],
)
def test_the_largest_allowed_programs_run_in_sqlite(tmp_path, text: bytes) -> None:  # type: ignore[no-untyped-def]
    """Within the limits, SQLite's expression depth (1,000) and Python's recursion hold."""
    from gk.mail.mailbox import MailboxStore

    store = MailboxStore(tmp_path / "mail")
    mb = store.user("alice@example.org")
    for i in range(3):
        mb.append("INBOX", b"From: a@b.c\r\nX-A: abcd\r\nSubject: hello %d\r\n\r\nhello\r\n" % i)
    assert isinstance(mb.search("INBOX", search(text)), list)
