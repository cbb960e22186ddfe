"""A queue refusal becomes a permanent 5xx unless a disk error caused it (then 451, try again)."""

from __future__ import annotations

from gk.mail.queue.service import QueueError
from gk.mail.submission import queue_refusal_reply


def _raised(exc: QueueError, cause: BaseException | None = None) -> QueueError:
    try:
        raise exc from cause
    except QueueError as caught:
        return caught


def test_bad_address_is_permanent():
    reply = queue_refusal_reply(_raised(QueueError("bad recipient address 'a b@x'")))
    assert reply.startswith("553 5.1.3 ") and "bad recipient address" in reply


def test_other_refusals_are_permanent():
    assert queue_refusal_reply(_raised(QueueError("no recipients"))).startswith("554 5.3.0 ")


def test_disk_error_is_temporary():
    reply = queue_refusal_reply(_raised(QueueError("could not spool the message: disk full"), OSError(28, "ENOSPC")))
    assert reply.startswith("451 4.3.0 ")


def test_reply_stays_on_one_line():
    reply = queue_refusal_reply(_raised(QueueError("bad sender address\r\n250 injected")))
    assert "\r" not in reply and "\n" not in reply
