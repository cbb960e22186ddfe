"""What every running feature shares: config, data dir, accounts, TLS. Built once by ``server``."""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar, cast

from gk import settings
from gk.accounts import AccountStore, Authenticator, LoginThrottle, PasswordHasher
from gk.config import Config
from gk.security.tls import TLSFiles, ensure_tls, server_context

T = TypeVar("T")


class Service(Protocol):
    """What a feature's ``start(ctx)`` returns: a name and a ``stop(grace)`` that closes its
    listeners and waits up to ``grace`` seconds for its sessions to finish."""

    name: str

    def stop(self, grace: float) -> None: ...


class ServiceUnavailable(LookupError):
    """Asked for a service whose feature is off (or not started yet)."""


class Services:
    """The running services, found by their class: ``ctx.services.require(MailboxStore)``.

    Keyed by class rather than by a string, so a lookup names the type it gets back (mypy checks
    the call site, a rename breaks the import instead of returning None) and a typo cannot
    silently read as "feature off". ``require`` raises ``ServiceUnavailable`` naming the class;
    ``maybe`` returns None for a feature that is off. ``register`` also puts the service in the
    lifecycle list that ``stop_all`` walks in reverse; ``provide`` only makes an object findable
    (e.g. the chat core, stopped by its component).
    """

    def __init__(self) -> None:
        self._by_type: dict[type, object] = {}
        self._running: list[tuple[str, Service]] = []

    def register(self, feature: str, svc: Service) -> None:
        self._running.append((feature, svc))
        self.provide(svc)

    def provide(self, obj: T, as_type: type[T] | None = None) -> None:
        """Make ``obj`` findable by its class (or ``as_type``: a test's stand-in)."""
        self._by_type[as_type or type(obj)] = obj

    def require(self, cls: type[T]) -> T:
        found = self.maybe(cls)
        if found is None:
            raise ServiceUnavailable(f"{cls.__module__}.{cls.__qualname__} is not running (its feature is off)")
        return found

    def maybe(self, cls: type[T]) -> T | None:
        if not isinstance(cls, type):
            raise TypeError(f"services are found by their class, not {cls!r}")
        return cast("T | None", self._by_type.get(cls))

    def remove(self, cls: type[T]) -> T | None:
        """Forget a service stopped while the server runs (``[acme]`` turned off from the web)."""
        found = self._by_type.pop(cls, None)
        self._running = [(f, s) for f, s in self._running if s is not found]
        return cast("T | None", found)

    def running(self) -> Iterator[tuple[str, Service]]:
        """(feature name, service) in start order."""
        return iter(list(self._running))

    def stop_all(self, grace: float, log: logging.Logger) -> None:
        """Stop every registered service, the last started first; one failing stops the rest all the same."""
        while self._running:
            feature, svc = self._running.pop()
            try:
                svc.stop(grace)
            except Exception:
                log.exception("error stopping %s", feature)
            else:
                log.info("stopped %s", feature)
            if self._by_type.get(type(svc)) is svc:
                del self._by_type[type(svc)]


@dataclass
class AppContext:
    config: Config
    data_dir: Path
    hostname: str
    accounts: AccountStore
    auth: Authenticator
    tls: TLSFiles
    ssl_context: ssl.SSLContext
    # the running features' services, found by class (``gk.server`` registers what each starts)
    services: Services = field(default_factory=Services)
    # the name our Authentication-Results carry: fixed at the first start, never the host name
    # of the moment (``settings.Settings.authserv_id``, which build_context reads)
    authserv_id: str = ""

    def __post_init__(self) -> None:
        self.authserv_id = self.authserv_id or self.hostname.lower()

    @property
    def mail_root(self) -> Path:
        return self.data_dir / "mail"

    def follow_hostname(self) -> None:
        """Take a new host name saved in the settings (wizard, admin settings) from the next
        SMTP greeting, bounce, Received header and IMAP greeting on, without a restart. The
        self-signed certificate is renewed by the page that saved it (``gk.web.wizard.renew_certificate``):
        mid-wizard it must wait for the summary, or the owner's browser would warn again."""

        def changed(change: settings.Change) -> None:
            if new := settings.of(self.data_dir).hostname():
                self.hostname = new

        settings.of(self.data_dir).subscribe(changed, {settings.HOSTNAME})


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
    settings.of(data_dir).bind(config)  # opens the owner's settings (moving them out of claim once)
    authserv_id = settings.of(data_dir).authserv_id(hostname)
    ctx = AppContext(config, data_dir, hostname, accounts, auth, tls, server_context(tls), authserv_id=authserv_id)
    ctx.follow_hostname()
    return ctx
