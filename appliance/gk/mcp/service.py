"""The MCP server inside ``gk serve``: ``ctx.services.maybe(MCPService)``; ``app`` is ``/mcp``.

Started after the mailbox (its tools need the running ``MailboxStore``); the token table
(``ai.sqlite3``) is opened on the first request that carries a token.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from gk.accounts import User
from gk.ai.tokens import TokenStore
from gk.mail.mailbox import get_store
from gk.mcp import auth, http, mailtools
from gk.mcp.prompts import Prompts, mail_prompts
from gk.mcp.registry import Registry
from gk.mcp.resources import CalendarResources, ChatResources, Resources, mail_resources

if TYPE_CHECKING:
    from gk.chat.core import ChatService


class MCPService:
    name = "mcp"

    def __init__(self, ctx: Any):
        self.cfg = ctx.config.mcp
        self.data_dir = Path(ctx.data_dir)
        self.accounts = ctx.accounts
        self.hostnames = (ctx.hostname, "localhost")  # the names a browser page may call from
        store = get_store(ctx)
        self.registry = Registry(mailtools.tools(store))
        self.resources = Resources([mail_resources(store)])
        self.chat: ChatService | None = None
        if ctx.config.chat.enabled:  # started before us (gk.features): its rooms as resources
            from gk.chat.service import ChatComponent

            component = ctx.services.maybe(ChatComponent)
            self.chat = component.chat if component is not None else None
        if self.chat is not None:
            self.resources.providers.append(ChatResources(self.chat))
        if ctx.config.dav.enabled:  # its calendars, read through the DAV storage (Radicale on first use)
            from gk.dav.service import DAVService

            dav = ctx.services.maybe(DAVService)
            if dav is not None:
                self.resources.providers.append(CalendarResources(dav))
        self.prompts = Prompts(mail_prompts(lambda address: store.user(address).folder_names()))
        self._tokens: TokenStore | None = None
        self.app = http.make_app(self)
        self.metadata_app = http.make_metadata_app()

    def verify(self, token: str) -> User | None:
        """The user of an ``mcp``-scoped token, else None: a token outlives nothing, so the
        token of a deleted account opens no (new, empty) mailbox."""
        if self._tokens is None:
            self._tokens = TokenStore.for_data_dir(self.data_dir)
        address = self._tokens.verify(token, auth.SCOPE)
        return self.accounts.get_user(address) if address else None

    def stop(self, grace: float) -> None:
        http.close(self.app, self.chat)
        if self._tokens is not None:
            self._tokens.close()


def start(ctx: Any) -> MCPService | None:
    if not ctx.config.mcp.enabled:
        return None
    return MCPService(ctx)
