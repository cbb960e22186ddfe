"""Every acknowledged message survives kill -9: 200 messages over 8 connections, then SIGKILL."""

from __future__ import annotations

import hashlib
import threading
import time

from support.smtp import smtp25, start_smtp_server

CONNECTIONS = 8
PER_CONNECTION = 25


def _body(conn: int, n: int) -> bytes:
    filler = (b"durable line %d/%d " % (conn, n)) * 40 + b"\r\n"
    return b"Subject: msg %d-%d\r\nX-Test-Id: %d-%d\r\n\r\n" % (conn, n, conn, n) + filler * (1 + n % 7)


def test_acknowledged_messages_survive_kill_9(make_server, dns_server):
    srv = start_smtp_server(make_server, dns_server)
    acked: dict[str, str] = {}
    lock = threading.Lock()
    errors: list[BaseException] = []

    def sender(conn: int) -> None:
        try:
            with smtp25(srv) as s:
                for n in range(PER_CONNECTION):
                    body = _body(conn, n)
                    rcpt = "alice@example.org" if n % 2 else "bob@example.org"
                    s.sendmail("load@sender.example", [rcpt], body)  # raises unless 250
                    with lock:
                        acked[f"{conn}-{n}"] = hashlib.sha256(body).hexdigest()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=sender, args=(c,)) for c in range(CONNECTIONS)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    print(f"{len(acked)} messages acknowledged in {time.monotonic() - started:.2f}s")
    srv.kill9()  # right after the last 250
    assert not errors, errors
    assert len(acked) == CONNECTIONS * PER_CONNECTION

    # a crash may leave unacknowledged files in tmp/; put one there to see the restart clean it
    stray = srv.data_dir / "mail" / "alice@example.org" / "Maildir" / "tmp" / "stray.partial"
    stray.write_bytes(b"Subject: half")
    srv.log_path.rename(srv.log_path.with_suffix(".before-kill"))  # start() waits for a fresh "ready" line
    srv.start()
    found: dict[str, str] = {}
    for user in ("alice@example.org", "bob@example.org"):
        md = srv.data_dir / "mail" / user / "Maildir"
        assert list((md / "tmp").iterdir()) == [], "tmp/ not cleaned at start"
        for path in (md / "new").iterdir():
            raw = path.read_bytes()
            assert f",S={len(raw)}" in path.name
            _, _, original = raw.partition(b"\r\nSubject: msg ")
            original = b"Subject: msg " + original
            test_id = original.split(b"X-Test-Id: ", 1)[1].split(b"\r\n", 1)[0].decode()
            found[test_id] = hashlib.sha256(original).hexdigest()
    missing = set(acked) - set(found)
    assert not missing, f"{len(missing)} acknowledged messages lost"
    damaged = [k for k in acked if found[k] != acked[k]]
    assert not damaged, f"{len(damaged)} messages are not whole"
