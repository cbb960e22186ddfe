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


# (method, bottle path, scope needed or None, MailAPI method): the OpenAPI description
# (openapi.PATHS) names the same operations and scopes (tests/unit/test_api_openapi.py)
ROUTES: tuple[tuple[str, str, str | None, str], ...] = (
    ("GET", "/me", None, "me"),
    ("GET", "/folders", "mail:read", "folders"),
    ("GET", "/messages", "mail:read", "messages"),
    ("GET", "/messages/<mid>", "mail:read", "message"),
    ("GET", "/messages/<mid>/raw", "mail:read", "raw"),
    ("GET", "/messages/<mid>/attachments/<part>", "mail:read", "attachment"),
    ("POST", "/messages/<mid>/flags", "mail:write", "flags"),
    ("POST", "/messages/<mid>/move", "mail:write", "move"),
    ("DELETE", "/messages/<mid>", "mail:write", "delete"),
    ("POST", "/send", "mail:write", "send"),
    ("GET", "/queue", "mail:read", "queue"),
)


class APIService:
    name = "api"

    def __init__(self, ctx: AppContext):
        self.data_dir = Path(ctx.data_dir)
        self.accounts = ctx.accounts
        self._tokens: TokenStore | None = None
        mail = MailAPI(ctx)
        routes: list[tuple[str, str, str | None, Handler]] = [
            (method, path, scope, getattr(mail, name)) for method, path, scope, name in ROUTES
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
