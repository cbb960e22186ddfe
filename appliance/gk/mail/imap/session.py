"""One IMAP connection: ``Session`` is the command mixins put together, and its main loop.

The concerns live in their own modules (see the package docstring): ``connection`` (socket,
reader, limits, state), ``view`` (the selected folder and updates), ``auth``, ``folders``,
``messages``, ``idle`` and ``dispatch`` (the command table). This module only assembles them.
"""

from __future__ import annotations

from typing import Any

from gk.mail.imap import dispatch
from gk.mail.imap.auth import AuthCommands
from gk.mail.imap.connection import LOGOUT, LoginDeadline, Logout
from gk.mail.imap.folders import FolderCommands
from gk.mail.imap.idle import IdleCommands
from gk.mail.imap.messages import MessageCommands
from gk.mail.imap.parser import ReaderError
from gk.mail.imap.protocol import Literal

__all__ = ["Session"]


class Session(AuthCommands, FolderCommands, MessageCommands, IdleCommands):
    """One client connection, from the greeting to LOGOUT (or the socket's end)."""

    def handle(self, parts: list[Any]) -> None:
        dispatch.handle(self, parts)

    # -- main loop --------------------------------------------------------------------------
    def run(self) -> None:
        self._apply_limits()
        try:
            self.write(f"* OK [CAPABILITY {self.caps()}] {self.ctx.hostname} GK IMAP ready\r\n".encode())
            self.flush()
            while self.state != LOGOUT:
                try:
                    self.waiting = self.coalesce = True
                    parts = self.reader.read()  # flushes the replies before it waits (connection._Input)
                    self.waiting = self.coalesce = False
                except ReaderError as exc:
                    self.write(f"{exc.tag} {exc.reply} {exc}\r\n".encode())
                    if exc.fatal:
                        self.write(b"* BYE literal too large\r\n")
                        self.flush()
                        return
                    self.flush()
                    continue
                if parts is None:
                    return
                self._throttle()
                try:
                    self.handle(parts)
                finally:
                    for p in parts:
                        if isinstance(p, Literal):
                            p.close()
                # not flushed here: the reply goes out when the next read would wait, together
                # with the replies to the commands the client pipelined behind this one
        except TimeoutError as exc:
            why = str(exc) if isinstance(exc, LoginDeadline) else "autologout; idle for too long"
            try:
                self.write(f"* BYE {why}\r\n".encode())
                self.flush()
            except OSError:
                pass
        except (OSError, Logout):
            pass
        finally:
            self.close()
