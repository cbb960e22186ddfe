"""What the webmail's richer message list costs: a page of 50 rows with previews, attachment
markers and thread grouping (``webmail.list_row`` + ``thread_groups``) against the peer, the
bare page the list showed before (``UserMailbox.messages`` only), on one real store (Maildir +
SQLite index) in a temp dir; and the reader's conversation lookup (``thread_of``, one indexed
header search per folder) against reading the one message's info.

Run: ``.venv/bin/python -m bench webmail_list``
"""

from __future__ import annotations

import base64
import statistics
import tempfile
import time
import zoneinfo
from pathlib import Path

N = 400
ROUNDS = 15
ADDRESS = "bench@home.example"


def _message(i: int) -> bytes:
    thread = i // 4
    irt = f"In-Reply-To: <m{i - 1}@bench>\r\nReferences: <m{thread * 4}@bench>\r\n" if i % 4 else ""
    head = (
        f"From: Person {i % 7} <p{i % 7}@else.example>\r\nTo: {ADDRESS}\r\n"
        f"Subject: {'Re: ' if i % 4 else ''}Topic {thread}\r\nMessage-ID: <m{i}@bench>\r\n{irt}"
        "MIME-Version: 1.0\r\n"
    )
    text = f"Line of text number {i} with some words in it.\r\n" * 40
    if i % 3:
        return (head + "Content-Type: text/plain; charset=utf-8\r\n\r\n" + text).encode()
    att = base64.encodebytes(bytes(range(256)) * 200).decode().replace("\n", "\r\n")
    return (
        head + "Content-Type: multipart/mixed; boundary=BB\r\n\r\n--BB\r\nContent-Type: text/plain\r\n\r\n"
        f"{text}\r\n--BB\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; "
        f"filename*=utf-8''facture-%C3%A9t%C3%A9-{i}.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n{att}\r\n--BB--\r\n"
    ).encode()


def _median_ms(fn) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(ROUNDS):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main() -> int:
    from gk.mail.mailbox import MailboxStore
    from gk.web import webmail

    tz = zoneinfo.ZoneInfo("Europe/Paris")
    with tempfile.TemporaryDirectory() as tmp:
        store = MailboxStore(Path(tmp) / "mail", zone=lambda: tz)
        mb = store.user(ADDRESS)
        for i in range(N):
            mb.append("INBOX", _message(i))

        def bare() -> None:
            mb.messages("INBOX", offset=0, limit=webmail.PAGE)

        def rich() -> None:
            groups = webmail.thread_groups(mb.messages("INBOX", offset=0, limit=webmail.PAGE))
            [webmail.list_row(mb, "INBOX", m, n, tz, "fr") for m, n in groups]

        newest = mb.messages("INBOX", limit=1)[0]
        hdr = mb.headers("INBOX", newest.uid)

        def info() -> None:
            mb.info("INBOX", newest.uid)

        def thread() -> None:
            assert len(webmail.thread_of(mb, "INBOX", newest.uid, hdr, tz, "fr")) > 1

        bare_ms, rich_ms = _median_ms(bare), _median_ms(rich)
        info_ms, thread_ms = _median_ms(info), _median_ms(thread)
        print(f"list page, {webmail.PAGE} of {N} messages (median of {ROUNDS}):")
        print(f"  peer   messages() only            {bare_ms:7.2f} ms")
        print(f"  rich   threads+previews+markers   {rich_ms:7.2f} ms   ratio {rich_ms / bare_ms:.1f}x")
        print("reader page:")
        print(f"  peer   info() of the message      {info_ms:7.2f} ms")
        print(f"  thread thread_of() in 4 folders   {thread_ms:7.2f} ms   ratio {thread_ms / info_ms:.1f}x")
        store.stop(1.0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
