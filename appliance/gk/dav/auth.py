"""Radicale auth plugin: GK accounts and app passwords through ``ctx.auth``.

The same ``Authenticator.login`` as IMAP LOGIN and SMTP AUTH: the shared per-IP and per-account
throttle (growing delays, then lockout), argon2id off the hub, the verified-credential cache
(DAV clients send Basic credentials on every request: without the cache each PROPFIND would
cost an argon2id hash, 19 MiB and tens of ms), and a ``login_failed`` security event with the
client's address. Radicale's own login cache and constant-time padding are off: GK already
spends the same time on unknown users (a dummy hash), and Radicale's padding would make every
later failure wait as long as the longest throttle delay ever seen.
"""

from __future__ import annotations

from typing import Any

from radicale import auth

SERVICE = "dav"


class Auth(auth.BaseAuth):
    def __init__(self, configuration: Any, authenticator: Any):
        super().__init__(configuration)
        self._authenticator = authenticator

    @classmethod
    def factory(cls, authenticator: Any) -> Any:
        return lambda configuration: cls(configuration, authenticator)

    def _login_ext(self, login: str, password: str, context: auth.AuthContext) -> str:
        if not login or not password or len(login) > 320 or len(password) > 1024:
            return ""
        result = self._authenticator.login(login, password, context.remote_addr or "", SERVICE)
        return result.user.address if result.ok else ""

    def _sleep_for_constant_exec_time(self, time_ns_begin: int) -> None:
        return None
