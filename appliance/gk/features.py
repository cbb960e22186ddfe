"""Every feature of GK, in one ordered list: what it reads from ``gk.toml``, what ``gk serve``
starts for it, the ``gk`` subcommands it adds and the web apps it mounts.

``gk serve`` starts the features in this order and stops them in reverse (``gk.server``);
``gk`` builds its parser from their commands (``gk.cli``); the web service mounts the apps the
started features declare (``mounts_for``). Adding a feature is one package plus one entry here.

A declaration is cheap to import: it names modules, never imports them. ``start`` imports the
feature's service module when ``gk serve`` starts it (a feature turned off in ``gk.toml``
returns None and costs only that import, or nothing); a command's module is imported when its
command is parsed or run, so ``gk --help`` imports no feature code.

Services are found by their class (``ctx.services.require(MailboxStore)``, see
``gk.context.Services``), not by a string: the lookup says which type it returns, and asking
for a feature that is off is a clear error (``require``) or an explicit None (``maybe``).
"""

from __future__ import annotations

import argparse
import enum
import importlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gk.context import AppContext, Service
    from gk.web.wizardsteps import WizardStep

Configure = Callable[[argparse.ArgumentParser], None]
Handle = Callable[[argparse.Namespace], int]
WSGIApp = Callable[..., Iterable[bytes]]


@dataclass(frozen=True)
class Command:
    """``gk NAME``: ``configure(parser)`` and ``handle(args) -> exit code`` live in ``module``."""

    name: str
    help: str
    module: str
    configure: str = "configure"
    handle: str = "handle"

    def load(self) -> tuple[Configure, Handle]:
        mod = importlib.import_module(self.module)
        configure: Configure = getattr(mod, self.configure)
        handle: Handle = getattr(mod, self.handle)
        return configure, handle


class Csrf(enum.Enum):
    CHECKED = "checked"  # unsafe methods need the web session's CSRF token
    EXEMPT = "exempt"  # clients that send no token (CalDAV, OpenAI clients): only with Auth.PER_REQUEST


class Auth(enum.Enum):
    PER_REQUEST = "per-request"  # the app authenticates every request itself (HTTP Basic, bearer token)
    SESSION = "session"  # the app trusts the web UI's login session (cookie)


@dataclass(frozen=True)
class Mount:
    """A WSGI app of a started feature under ``prefix`` on the web listeners. ``app`` gets the
    feature's running service and returns the app; the wizard gate and security headers apply."""

    prefix: str
    app: Callable[[object], WSGIApp]
    csrf: Csrf
    auth: Auth
    # WebSocket subprotocols the app speaks, the client's preferred first wins (the web
    # listener negotiates them before the upgrade, and checks the Origin of every upgrade)
    subprotocols: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.csrf is Csrf.EXEMPT and self.auth is not Auth.PER_REQUEST:
            raise ValueError(f"{self.prefix}: an app without CSRF checks must authenticate each request itself")


@dataclass(frozen=True)
class Feature:
    name: str
    config: str | None = None  # its gk.toml section: a field of gk.config.Config
    start: Callable[[AppContext], Service | None] | None = None  # None: a CLI-only feature
    commands: tuple[Command, ...] = ()
    mounts: tuple[Mount, ...] = ()
    # its first-boot wizard steps: (module, attribute) of each ``gk.web.wizardsteps.WizardStep``, shown
    # (before the summary, in list order) when the feature started
    wizard: tuple[tuple[str, str], ...] = ()


# -- start functions: each imports its service module only when gk serve starts it -------------


def _start_mailbox(ctx: AppContext) -> Service | None:
    from gk.mail.mailbox import service

    return service.start(ctx)


def _start_smtp(ctx: AppContext) -> Service | None:
    from gk.mail.smtp import service

    return service.start(ctx)


def _start_imap(ctx: AppContext) -> Service | None:
    from gk.mail.imap import service

    return service.start(ctx)


def _start_queue(ctx: AppContext) -> Service | None:
    from gk.mail.queue import service

    return service.start(ctx)


def _start_acme(ctx: AppContext) -> Service | None:
    from gk.acme import service

    return service.start(ctx)


def _start_chat(ctx: AppContext) -> Service | None:
    from gk.chat import service

    return service.start(ctx)


def _start_dav(ctx: AppContext) -> Service | None:
    from gk.dav import service

    return service.start(ctx)


def _start_ai(ctx: AppContext) -> Service | None:
    from gk.ai import service

    return service.start(ctx)


def _start_mcp(ctx: AppContext) -> Service | None:
    from gk.mcp import service

    return service.start(ctx)


def _start_api(ctx: AppContext) -> Service | None:
    from gk.api import service

    return service.start(ctx)


def _start_backup(ctx: AppContext) -> Service | None:
    from gk.backup import service

    return service.start(ctx)


def _start_web(ctx: AppContext) -> Service | None:
    from gk.web import service

    mounts = list(mounts_for(ctx))
    return service.start(
        ctx,
        [(m.prefix, app, m.csrf is Csrf.EXEMPT) for m, app in mounts],
        {m.prefix: m.subprotocols for m, _ in mounts if m.subprotocols},
        wizard_steps_for(ctx),
    )


def _irc_websocket(svc: object) -> WSGIApp:
    from gk.chat.service import ChatComponent

    assert isinstance(svc, ChatComponent)
    return svc.irc_websocket


def _dav_app(svc: object) -> WSGIApp:
    from gk.dav.service import DAVService

    assert isinstance(svc, DAVService)
    return svc.wsgi


def _ai_api(svc: object) -> WSGIApp:
    from gk.ai.service import AIService

    assert isinstance(svc, AIService)
    return svc.api


def _mcp_app(svc: object) -> WSGIApp:
    from gk.mcp.service import MCPService

    assert isinstance(svc, MCPService)
    return svc.app


def _mcp_metadata(svc: object) -> WSGIApp:
    from gk.mcp.service import MCPService

    assert isinstance(svc, MCPService)
    return svc.metadata_app


def _oauth_metadata(svc: object) -> WSGIApp:
    from gk.mcp.service import MCPService

    assert isinstance(svc, MCPService)
    return svc.oauth.metadata_app()


def _oauth_token(svc: object) -> WSGIApp:
    from gk.mcp.service import MCPService

    assert isinstance(svc, MCPService)
    return svc.oauth.token_app()


def _oauth_register(svc: object) -> WSGIApp:
    from gk.mcp.service import MCPService

    assert isinstance(svc, MCPService)
    return svc.oauth.register_app()


def _oauth_revoke(svc: object) -> WSGIApp:
    from gk.mcp.service import MCPService

    assert isinstance(svc, MCPService)
    return svc.oauth.revoke_app()


def _api_app(svc: object) -> WSGIApp:
    from gk.api.service import APIService

    assert isinstance(svc, APIService)
    return svc.app


FEATURES: tuple[Feature, ...] = (
    # the mailbox store first: every protocol on it starts after it and stops before it
    Feature("mailbox", start=_start_mailbox),
    Feature("smtp", "smtp", _start_smtp),
    Feature("imap", "imap", _start_imap),
    Feature(
        "queue",
        "queue",
        _start_queue,
        (
            Command(
                "queue",
                "list, show, retry or delete outbound mail (list|show|retry|delete|inject)",
                "gk.mail.queue.cli",
            ),
        ),
    ),
    Feature(
        "dns",
        "dns",
        commands=(
            Command("dns", "print (and --check) the DNS records a mail domain must publish", "gk.mail.dnsrecords"),
        ),
    ),
    Feature(
        "acme",
        "acme",
        _start_acme,
        (Command("acme", "Let's Encrypt certificate for the host name: renew now, or status", "gk.acme.cli"),),
    ),
    Feature(
        "chat",
        "chat",
        _start_chat,
        (Command("chat", "chat rooms, message history and JSON export (rooms|history|export)", "gk.chat.cli"),),
        # IRC over WebSocket: SASL inside the IRC session, no cookie, nothing a form could post
        (
            Mount(
                "/chat/irc",
                _irc_websocket,
                Csrf.EXEMPT,
                Auth.PER_REQUEST,
                ("binary.ircv3.net", "text.ircv3.net"),
            ),
        ),
        wizard=(("gk.web.wizardsteps", "CHAT_STEP"),),
    ),
    Feature(
        "dav",
        "dav",
        _start_dav,
        (
            Command(
                "dav",
                "calendars and contacts: list, export, import or share a user's (list|export|import|share)",
                "gk.dav.cli",
            ),
        ),
        (Mount("/dav/", _dav_app, Csrf.EXEMPT, Auth.PER_REQUEST),),
        wizard=(("gk.web.wizardsteps", "FAMILY_STEP"),),
    ),
    Feature(
        "ai",
        "ai",
        _start_ai,
        (
            Command(
                "token",
                "API tokens for the assistant's OpenAI-compatible API and MCP (add|list|del)",
                "gk.ai.cli",
                "configure_token",
                "handle_token",
            ),
            Command(
                "ai",
                "the private assistant's models: catalogue, download, choice, removal (models|pull|use|rm|status)",
                "gk.ai.cli",
                "configure_ai",
                "handle_ai",
            ),
        ),
        (Mount("/v1", _ai_api, Csrf.EXEMPT, Auth.PER_REQUEST),),
        wizard=(("gk.web.wizardsteps", "AI_STEP"),),
    ),
    Feature(
        "mcp",
        "mcp",
        _start_mcp,
        mounts=(
            Mount("/mcp", _mcp_app, Csrf.EXEMPT, Auth.PER_REQUEST),
            Mount("/.well-known/oauth-protected-resource", _mcp_metadata, Csrf.CHECKED, Auth.PER_REQUEST),
            # GK as the OAuth authorization server of /mcp (gk.oauth; the consent page is a web route)
            Mount("/.well-known/oauth-authorization-server", _oauth_metadata, Csrf.CHECKED, Auth.PER_REQUEST),
            Mount("/oauth/token", _oauth_token, Csrf.EXEMPT, Auth.PER_REQUEST),
            Mount("/oauth/register", _oauth_register, Csrf.EXEMPT, Auth.PER_REQUEST),
            Mount("/oauth/revoke", _oauth_revoke, Csrf.EXEMPT, Auth.PER_REQUEST),
        ),
    ),
    # the mail REST API: bearer tokens on every request, never the session cookie
    Feature("api", start=_start_api, mounts=(Mount("/api/v1", _api_app, Csrf.EXEMPT, Auth.PER_REQUEST),)),
    # the web last: it mounts the apps of the features started before it
    Feature("web", "http", _start_web),
    Feature(
        "claim",
        commands=(Command("claim", "first-boot claim and owner recovery (status|button|recover)", "gk.claim.cli"),),
    ),
    Feature(
        "hw",
        commands=(
            Command(
                "tune",
                "write the hardware profile for this board (RAM, cores, storage)",
                "gk.hw.cli",
                "configure_tune",
                "handle_tune",
            ),
            Command(
                "button",
                "run the reset-button service (short press, 10 s recovery, 30 s factory reset)",
                "gk.hw.button_command",
                "configure",
                "run",
            ),
            Command(
                "provision",
                "first-boot provisioning: config, secrets, TLS, DKIM, setup code",
                "gk.hw.cli",
                "configure_provision",
                "handle_provision",
            ),
        ),
    ),
    Feature(
        "backup",
        "backup",
        _start_backup,
        (
            Command(
                "backup", "back up the whole box, restore it, list the archives (create|restore|list)", "gk.backup.cli"
            ),
        ),
    ),
    Feature(
        "diagnosis",
        "diagnosis",
        commands=(
            Command(
                "diagnose",
                "check DNS records, reverse DNS, blocklists, port 25, certificate, clock, disk",
                "gk.diagnosis.cli",
            ),
        ),
    ),
)


def commands() -> Iterator[Command]:
    for feature in FEATURES:
        yield from feature.commands


def mounts_for(ctx: AppContext) -> Iterator[tuple[Mount, WSGIApp]]:
    """(mount, its app) of every started feature that declares mounts, in list order."""
    running = dict(ctx.services.running())
    for feature in FEATURES:
        svc = running.get(feature.name)
        if svc is None:
            continue
        for mount in feature.mounts:
            yield mount, mount.app(svc)


def wizard_steps_for(ctx: AppContext) -> tuple[WizardStep, ...]:
    """The first-boot wizard: the web UI's own steps plus those of every started feature, each
    just before the summary, in list order."""
    from gk.web import wizardsteps as wizard

    running = dict(ctx.services.running())
    steps = wizard.CORE_STEPS
    for feature in FEATURES:
        if feature.name in running:
            for module, attr in feature.wizard:
                steps = wizard.with_step(steps, getattr(importlib.import_module(module), attr))
    return steps
