"""Radicale auth plugin: GK accounts and app passwords through ``ctx.auth``.

The same ``Authenticator.login`` as IMAP LOGIN and SMTP AUTH: the shared per-IP and per-account
throttle (growing delays, then lockout), argon2id off the hub, the verified-credential cache
(DAV clients send Basic credentials on every request: without the cache each PROPFIND would
cost an argon2id hash, 19 MiB and tens of ms), and a ``login_failed`` security event with the
client's address. Radicale's own login cache and constant-time padding are off: GK already
spends the same time on unknown users (a dummy hash), and Radicale's padding would make every
later failure wait as long as the longest throttle delay ever seen.

In ``gk serve`` the check runs on the hub before Radicale is called in a pool thread
(``DAVService._authenticate``: the throttle and cache are greenlet code); the verified address
comes here in the environ under ``VERIFIED`` and is passed through Radicale's external-login
hook with a secret of this process, which no client can send as a password.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from typing import Any

from radicale import auth

SERVICE = "dav"
VERIFIED = "gk.dav.verified_user"  # environ key set by gk.dav.service only (never an HTTP_ header)


class Auth(auth.BaseAuth):
    def __init__(self, configuration: Any, authenticator: Any):
        super().__init__(configuration)
        self._authenticator = authenticator
        self._secret = secrets.token_urlsafe(32)

    @classmethod
    def factory(cls, authenticator: Any) -> Any:
        return lambda configuration: cls(configuration, authenticator)

    def get_external_login(self, environ: Mapping[str, Any]) -> tuple[()] | tuple[str, str]:
        user = environ.get(VERIFIED)
        return (str(user), self._secret) if user else ()

    def _login_ext(self, login: str, password: str, context: auth.AuthContext) -> str:
        if hmac.compare_digest(password.encode(), self._secret.encode()):
            return login
        if not login or not password or len(login) > 320 or len(password) > 1024:
            return ""
        result = self._authenticator.login(login, password, context.remote_addr or "", SERVICE)
        return result.user.address if result.ok else ""

    def _sleep_for_constant_exec_time(self, time_ns_begin: int) -> None:
        return None
