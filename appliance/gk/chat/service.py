"""``start(ctx)``: the chat in ``gk serve``: the chat core (``ctx.services.maybe(ChatService)``)
and the IRC listener. None when ``[chat] enabled = false``.

IRC over WebSocket is the mount ``/chat/irc`` declared in ``gk.features`` (``irc_websocket``):
the same IRC sessions as the TLS port, on the web listeners. The web chat will be another mount
subscribing to the same ``ChatService``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from gk.chat.core import ChatService
from gk.chat.digest import DigestJob

if TYPE_CHECKING:
    from gk.context import AppContext

log = logging.getLogger("gk.chat")


class ChatComponent:
    name = "chat"

    def __init__(self, ctx: AppContext):
        self.ctx = ctx
        cfg = ctx.config.chat
        self.chat = ChatService.open(ctx.data_dir, cfg.default_rooms, self._user_exists)
        self.irc: Any = None
        self.files: Any = None  # gk.chat.files.FileStore, set by start()
        self.digests: DigestJob | None = None
        self.listeners: list[tuple[str, str, int]] = []  # (label, bind, port), like the other services

    def _user_exists(self, name: str) -> bool:
        name = name.lower()
        return any(u.local == name for u in self.ctx.accounts.list_users())

    def start(self) -> None:
        from gk.chat.irc.service import IRCServer

        # the IRC sessions' shared state serves the WebSocket mount even with the port off
        self.irc = IRCServer(self.ctx, self.chat)
        port = self.ctx.config.chat.irc_port
        if port:
            self.irc.listen(port)
            self.listeners.append(("irc", self.ctx.config.server.bind, self.irc.port))
        # new users into the default rooms, unread mentions and DMs mailed as digests
        self.digests = DigestJob(self.ctx, self.chat, self.ctx.config.chat.digest_after)
        self.digests.start()

    def irc_websocket(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        """WSGI app of the ``/chat/irc`` mount (IRCv3 WebSocket)."""
        from gk.chat.irc import websocket

        return websocket.serve(self.irc, environ, start_response)

    def stop(self, grace: float) -> None:
        if self.digests is not None:
            self.digests.stop()
        if self.irc is not None:
            self.irc.stop(grace)
        if self.files is not None:
            self.files.close()
        self.chat.stop(grace)


def start(ctx: AppContext) -> ChatComponent | None:
    if not ctx.config.chat.enabled:
        return None
    comp = ChatComponent(ctx)
    comp.start()
    ctx.services.provide(comp.chat)  # stopped by the component
    from gk.chat.files import FileStore

    comp.files = FileStore(ctx.data_dir, ctx.config.chat.max_upload_bytes)  # shared files (web chat, FILEHOST)
    comp.files.follow(comp.chat)
    ctx.services.provide(comp.files)
    return comp
