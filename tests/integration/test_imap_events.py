"""Typed change events between real IMAP sessions of a real ``gk serve`` (issue 11): one session in
IDLE (with QRESYNC, so expunges come as VANISHED) and one selected session see a message delivered
over SMTP, the other's flag change and its expunge, each as a delta."""

from __future__ import annotations

from support.imap import ALICE, Raw, simple_message, smtp_delivery_server

smtp_server = smtp_delivery_server()


def test_idle_and_selected_sessions_see_smtp_adds_flags_and_expunges(smtp_server):  # type: ignore[no-untyped-def]
    from support.smtp import smtp25

    srv = smtp_server
    with smtp25(srv) as s:
        s.sendmail("carol@example.net", [ALICE], simple_message("one"))
    idler = Raw(srv)
    idler.cmd("ENABLE QRESYNC")
    assert b"* 1 EXISTS\r\n" in idler.cmd("SELECT INBOX")
    other = Raw(srv, "INBOX")
    idler.send("i1 IDLE")
    assert idler.line().startswith(b"+")

    with smtp25(srv) as s:  # an SMTP delivery: the idler hears it, the other at its NOOP
        s.sendmail("carol@example.net", [ALICE], simple_message("two"))
    assert idler.wait_for(b"EXISTS")[-1] == b"* 2 EXISTS\r\n"
    assert b"* 2 EXISTS\r\n" in other.cmd("NOOP")

    other.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)")  # a flag change of the other session
    got = idler.wait_for(b"FETCH")
    assert got[-1].startswith(b"* 1 FETCH (FLAGS (\\Deleted") and b"UID 1" in got[-1] and b"MODSEQ" in got[-1]

    out = other.cmd("EXPUNGE")  # its expunge: EXPUNGE for the other, VANISHED for the QRESYNC idler
    assert out[0] == b"* 1 EXPUNGE\r\n"
    assert idler.wait_for(b"VANISHED")[-1] == b"* VANISHED 1\r\n"

    idler.send("DONE")
    assert idler.wait_for(b"i1 ")[-1].startswith(b"i1 OK")
    assert idler.cmd("UID SEARCH ALL")[0] == b"* SEARCH 2\r\n"
    idler.close()
    other.close()
