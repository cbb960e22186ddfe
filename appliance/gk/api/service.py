"""The REST API in ``gk serve``: ``ctx.services.maybe(APIService)``; ``app`` is ``/api/v1``.

Started after the mailbox (it needs the running ``MailboxStore``); the token table
(``ai.sqlite3``) is opened on the first request that carries a token.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from gk.ai.tokens import TokenStore
from gk.api import app as api_app
from gk.api import openapi
from gk.api.app import Caller, Handler
from gk.api.mail import MailAPI

if TYPE_CHECKING:
    from gk.context import AppContext


class APIService:
    name = "api"

    def __init__(self, ctx: AppContext):
        self.data_dir = Path(ctx.data_dir)
        self.accounts = ctx.accounts
        self._tokens: TokenStore | None = None
        mail = MailAPI(ctx)
        read, write = "mail:read", "mail:write"
        routes: list[tuple[str, str, str | None, Handler]] = [
            ("GET", "/me", None, mail.me),
            ("GET", "/folders", read, mail.folders),
            ("GET", "/messages", read, mail.messages),
            ("GET", "/messages/<mid>", read, mail.message),
            ("GET", "/messages/<mid>/raw", read, mail.raw),
            ("GET", "/messages/<mid>/attachments/<part>", read, mail.attachment),
            ("POST", "/messages/<mid>/flags", write, mail.flags),
            ("POST", "/messages/<mid>/move", write, mail.move),
            ("DELETE", "/messages/<mid>", write, mail.delete),
            ("POST", "/send", write, mail.send),
            ("GET", "/queue", read, mail.queue),
        ]
        self.app = api_app.make_app(self.authenticate, routes, openapi.document)

    def authenticate(self, token: str) -> Caller | None:
        """The caller of a valid token whose account still exists, else None."""
        if self._tokens is None:
            self._tokens = TokenStore.for_data_dir(self.data_dir)
        info = self._tokens.lookup(token)
        user = self.accounts.get_user(info.address) if info is not None else None
        if info is None or user is None:
            return None
        return Caller(user, info.scopes)

    def stop(self, grace: float) -> None:
        if self._tokens is not None:
            self._tokens.close()


def start(ctx: AppContext) -> APIService:
    return APIService(ctx)
