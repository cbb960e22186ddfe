"""What every running feature shares: config, data dir, accounts, TLS. Built once by ``server``."""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gk.accounts import AccountStore, Authenticator, LoginThrottle, PasswordHasher
from gk.config import Config
from gk.security.tls import TLSFiles, ensure_tls, server_context


@dataclass
class AppContext:
    config: Config
    data_dir: Path
    hostname: str
    accounts: AccountStore
    auth: Authenticator
    tls: TLSFiles
    ssl_context: ssl.SSLContext
    # feature services register themselves here by name (e.g. "mailbox", "queue")
    services: dict[str, Any] = field(default_factory=dict)

    @property
    def mail_root(self) -> Path:
        return self.data_dir / "mail"


def hostname_of(config: Config) -> str:
    """``server.hostname``, else the system's FQDN, else ``<hostname>.local`` (mDNS), never "localhost"."""
    if config.server.hostname:
        return config.server.hostname
    fqdn = socket.getfqdn()
    if "." in fqdn and not fqdn.startswith("localhost"):
        return fqdn
    short = socket.gethostname().split(".")[0]
    return f"{short}.local" if short and short != "localhost" else "gk.local"


def open_accounts(config: Config, data_dir: Path) -> AccountStore:
    return AccountStore(data_dir / "accounts.sqlite3", PasswordHasher.from_config(config.auth))


def build_context(config: Config, data_dir: Path) -> AppContext:
    data_dir.mkdir(parents=True, exist_ok=True)
    hostname = hostname_of(config)
    accounts = open_accounts(config, data_dir)
    auth = Authenticator(
        accounts, LoginThrottle(config.auth), config.imap.login_cache_seconds, config.auth.parallel_hashes
    )
    tls = ensure_tls(data_dir, config.tls, hostname)
    if config.acme.enabled and not config.tls.cert_file:
        from gk import acme
        from gk.acme.service import hostname_for, usable

        host = hostname_for(data_dir, hostname)
        if usable(data_dir, host):
            tls = TLSFiles(*acme.cert_paths(data_dir))  # the CA's certificate, from the first handshake
    return AppContext(config, data_dir, hostname, accounts, auth, tls, server_context(tls))
