"""NOOP, CHECK and IDLE (RFC 2177): the points where a session reports what other sessions
and deliveries changed in its selected folder.

IDLE: a greenlet waits for ``DONE`` while the session waits on its ``changed`` event (set by
``view.SelectedView._on_event`` for events of ``gk.events``) or, every ``IDLE_POLL`` seconds, re-checks the Maildir (files
dropped in by another program)."""

from __future__ import annotations

import gevent

from gk.mail.imap.connection import Logout
from gk.mail.imap.parser import Parser
from gk.mail.imap.protocol import BadCommand
from gk.mail.imap.view import SelectedView

IDLE_POLL = 5.0  # seconds between checks for files dropped into the Maildir behind our back


class IdleCommands(SelectedView):
    def cmd_noop(self, tag: str, p: Parser) -> None:
        p.end()
        self._updates(True)
        self.ok(tag, "NOOP completed")

    def cmd_check(self, tag: str, p: Parser) -> None:
        self.cmd_noop(tag, p)

    def cmd_idle(self, tag: str, p: Parser) -> None:
        p.end()
        self.write(b"+ idling\r\n")
        self._updates(True)
        self.flush()
        waiter = gevent.spawn(self.reader.read_line)
        self.waiting = True
        try:
            while True:
                self.changed.clear()
                gevent.wait([waiter, self.changed], timeout=IDLE_POLL, count=1)
                if waiter.ready():
                    break
                self._updates(True)
                self.flush()
            line = waiter.get()
        finally:
            self.waiting = False
            waiter.kill()
        if line is None:
            raise Logout()
        if line.strip().upper() != b"DONE":
            raise BadCommand("expected DONE to end IDLE")
        self._updates(True)
        self.ok(tag, "IDLE terminated")
