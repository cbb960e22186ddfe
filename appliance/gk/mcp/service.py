"""The MCP server inside ``gk serve``: ``ctx.services.maybe(MCPService)``; ``app`` is ``/mcp``.

Started after the mailbox and the chat (its tools need the running ``MailboxStore`` and
``ChatService``); the token table (``ai.sqlite3``) is opened on the first request that carries
a token. Every tool call goes through ``registry`` (an ``AuditedRegistry``: recorded in
``mcp.sqlite3``); the side-effect tools only queue pending actions (``gk.mcp.approvals``).
The tools, resources, prompts and the ``/mcp`` transport are built on their first use (the
first ``/mcp`` request or assistant turn), not at start: ~1 MB of RSS an idle box does not
carry (docs/performance.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from gk.accounts import User
from gk.ai.tokens import TokenStore
from gk.mcp.approvals import ApprovalStore
from gk.mcp.audit import AuditedRegistry, AuditLog
from gk.oauth.server import OAuthServer
from gk.oauth.store import ACCESS_PREFIX

if TYPE_CHECKING:
    import bottle

    from gk.chat.core import ChatService
    from gk.context import AppContext
    from gk.mcp.prompts import Prompts
    from gk.mcp.registry import Tool
    from gk.mcp.resources import Resources
    from gk.mcp.writetools import WriteTools


def feature_tools(ctx: AppContext) -> list[Tool]:
    """The read tools of the chat and of calendars/contacts, only when those features run
    (absent otherwise, not stubs); their modules are imported only then."""
    from gk.chat.core import ChatService
    from gk.dav.service import DAVService

    found: list[Tool] = []
    chat = ctx.services.maybe(ChatService)
    if chat is not None:
        from gk.mcp import chattools

        found += chattools.tools(chat, ctx.accounts.list_users)
    dav = ctx.services.maybe(DAVService)
    if dav is not None:
        from gk.mcp import davtools

        found += davtools.tools(lambda: dav.storage, Path(ctx.data_dir))
    return found


class MCPService:
    name = "mcp"

    def __init__(self, ctx: AppContext):
        self.cfg = ctx.config.mcp
        self.data_dir = Path(ctx.data_dir)
        self.accounts = ctx.accounts
        self.hostnames = (ctx.hostname, "localhost")  # the names a browser page may call from
        self._ctx = ctx
        self.approvals = ApprovalStore(self.data_dir, self.cfg.approval_hours)
        self.audit = AuditLog(self.data_dir)
        self.chat: ChatService | None = None
        if ctx.config.chat.enabled:  # started before us (gk.features): its rooms as resources
            from gk.chat.service import ChatComponent

            component = ctx.services.maybe(ChatComponent)
            self.chat = component.chat if component is not None else None
        self._parts: tuple[WriteTools, AuditedRegistry, Resources, Prompts] | None = None
        self._app: bottle.Bottle | None = None
        self._metadata_app: bottle.Bottle | None = None
        self._tokens: TokenStore | None = None
        self.oauth = OAuthServer(self.data_dir, self.hostnames)

    def _build(self) -> tuple[WriteTools, AuditedRegistry, Resources, Prompts]:
        """The tools, resources and prompts, made at their first use."""
        if self._parts is None:
            from gk.mail.mailbox import get_store
            from gk.mcp import mailtools
            from gk.mcp.prompts import Prompts, mail_prompts
            from gk.mcp.resources import CalendarResources, ChatResources, Resources, mail_resources
            from gk.mcp.writetools import WriteTools

            ctx = self._ctx
            store = get_store(ctx)
            write_tools = WriteTools(ctx, self.approvals)

            def vouch(head: bytes) -> str:
                from gk.mail.authcheck.sender import verified_sender

                return verified_sender(head, ctx.authserv_id, ctx.accounts)

            tools = mailtools.tools(store, vouch)
            registry = AuditedRegistry(tools + write_tools.tools() + feature_tools(ctx), self.audit)
            resources = Resources([mail_resources(store, vouch)])
            if self.chat is not None:
                resources.providers.append(ChatResources(self.chat))
            if ctx.config.dav.enabled:  # its calendars, read through the DAV storage (Radicale on first use)
                from gk.dav.service import DAVService

                dav = ctx.services.maybe(DAVService)
                if dav is not None:
                    resources.providers.append(CalendarResources(dav))
            prompts = Prompts(mail_prompts(lambda address: store.user(address).folder_names()))
            self._parts = (write_tools, registry, resources, prompts)
        return self._parts

    @property
    def write_tools(self) -> WriteTools:
        return self._build()[0]

    @property
    def registry(self) -> AuditedRegistry:
        return self._build()[1]

    @property
    def resources(self) -> Resources:
        return self._build()[2]

    @property
    def prompts(self) -> Prompts:
        return self._build()[3]

    def app(self, environ: dict[str, Any], start_response: Any) -> Any:
        """WSGI app of ``/mcp`` (``gk.mcp.http``'s, made on the first request)."""
        if self._app is None:
            from gk.mcp import http

            self._app = http.make_app(self)
        return self._app(environ, start_response)

    def metadata_app(self, environ: dict[str, Any], start_response: Any) -> Any:
        """WSGI app of the protected-resource metadata (made on the first request)."""
        if self._metadata_app is None:
            from gk.mcp import http

            self._metadata_app = http.make_metadata_app()
        return self._metadata_app(environ, start_response)

    def verify(self, token: str, environ: dict[str, Any]) -> tuple[User, frozenset[str]] | None:
        """The user and scopes of a valid token, else None: a ``gk token add`` token, or an OAuth
        access token issued for this very resource (its audience, ``gk.oauth``). The transport
        refuses a valid token without the ``mcp`` scope with 403 ``insufficient_scope``. A token
        outlives nothing: the token of a deleted account opens no (new, empty) mailbox."""
        if token.startswith(ACCESS_PREFIX):
            grant = self.oauth.verify(token, environ)
            if grant is None:
                return None
            address, granted = grant.address, grant.scopes
        else:
            if self._tokens is None:
                self._tokens = TokenStore.for_data_dir(self.data_dir)
            info = self._tokens.lookup(token)
            if info is None:
                return None
            address, granted = info.address, info.scopes
        user = self.accounts.get_user(address)
        return (user, granted) if user is not None else None

    def stop(self, grace: float) -> None:
        if self._app is not None:
            from gk.mcp import http

            http.close(self._app, self.chat)
        if self._tokens is not None:
            self._tokens.close()
        self.oauth.close()


def start(ctx: AppContext) -> MCPService | None:
    if not ctx.config.mcp.enabled:
        return None
    return MCPService(ctx)
