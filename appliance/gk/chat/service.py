"""``start(ctx)``: the chat in ``gk serve``: the chat core (``ctx.services["chat"]``, a
``ChatService``) and the IRC listener. None when ``[chat] enabled = false``.

Seams for what comes next: the web chat and IRC over WebSocket mount through ``web_mounts``
(empty for now) and subscribe to the same ``ChatService``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from gk.chat.core import ChatService

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
        self.listeners: list[tuple[str, str, int]] = []  # (label, bind, port), like the other services
        # (prefix, bottle app, csrf exempt): read by gk.web from ctx.services["chat"]
        self.web_mounts: list[tuple[str, Any, bool]] = []
        self.chat.web_mounts = self.web_mounts  # type: ignore[attr-defined]

    def _user_exists(self, name: str) -> bool:
        name = name.lower()
        return any(u.local == name for u in self.ctx.accounts.list_users())

    def start(self) -> None:
        port = self.ctx.config.chat.irc_port
        if port:
            from gk.chat.irc.service import IRCServer

            self.irc = IRCServer(self.ctx, self.chat)
            self.irc.listen(port)
            self.listeners.append(("irc", self.ctx.config.server.bind, self.irc.port))

    def stop(self, grace: float) -> None:
        if self.irc is not None:
            self.irc.stop(grace)
        self.chat.stop(grace)


def start(ctx: AppContext) -> ChatComponent | None:
    if not ctx.config.chat.enabled:
        return None
    comp = ChatComponent(ctx)
    comp.start()
    ctx.services["chat"] = comp.chat
    return comp
