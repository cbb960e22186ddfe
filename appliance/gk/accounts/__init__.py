"""Accounts: users, domains, aliases, app passwords, login throttling and authentication."""

from gk.accounts.authenticate import Authenticator, LoginResult
from gk.accounts.passwords import PasswordHasher
from gk.accounts.store import AccountError, AccountStore, User, normalize_address
from gk.accounts.throttle import LoginThrottle

__all__ = [
    "AccountError",
    "AccountStore",
    "Authenticator",
    "LoginResult",
    "LoginThrottle",
    "PasswordHasher",
    "User",
    "normalize_address",
]
