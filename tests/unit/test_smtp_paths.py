"""The MAIL FROM/RCPT TO path check of the session, without a socket."""

from __future__ import annotations

from gk.mail.smtp.session import path_brackets_ok


def test_mail_and_rcpt_paths_need_balanced_brackets():
    for good in ("<a@example.org>", "<>", " <a@example.org> SIZE=10", '<"we<ird>"@example.org>', "a@example.org"):
        assert path_brackets_ok(good), good
    for bad in ("<broken", "<a@example.org", "<<a@example.org>", "<a@example.org>>", "<a<b@example.org>", "a@b>", "<"):
        assert not path_brackets_ok(bad), bad
