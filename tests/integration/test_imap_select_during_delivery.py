"""The image test's case on a real ``gk serve`` (issue 11): a user's FIRST SELECT of an INBOX that
was never indexed, over IMAPS with imaplib, while SMTP delivers to it from another thread. Several
rounds, a fresh user each; the session must answer and stay open, every message must be found,
and the server must log no failed command."""

from __future__ import annotations

import threading

from support.imap import PASSWORD, imaps, simple_message, smtp_delivery_server

smtp_server = smtp_delivery_server()
ROUNDS = 4


def test_first_select_while_smtp_delivers(smtp_server):  # type: ignore[no-untyped-def]
    from support.smtp import smtp25

    srv = smtp_server
    for n in range(ROUNDS):
        user = f"select{n}@example.org"
        srv.add_user(user, PASSWORD)
        with smtp25(srv) as s:
            for i in range(5):
                s.sendmail("carol@example.net", [user], simple_message(f"before {i}"))
        errors: list[BaseException] = []

        def deliver(user: str = user, errors: list[BaseException] = errors) -> None:
            try:
                with smtp25(srv) as s:
                    for i in range(5):
                        s.sendmail("carol@example.net", [user], simple_message(f"during {i}"))
            except BaseException as exc:  # reported below
                errors.append(exc)

        m = imaps(srv, user)
        t = threading.Thread(target=deliver)
        t.start()
        typ, data = m.select("INBOX")
        assert typ == "OK", data
        t.join(60)
        assert not errors
        m.noop()
        _, found = m.search(None, "ALL")
        assert len(found[0].split()) == 10, found
        m.logout()
    log = srv.log()
    assert "imap command failed" not in log and "imap session crashed" not in log, log[-3000:]
