"""The outgoing-mail choice (deliver directly by MX, or through a relay host): form, gk.toml, live apply.

Used by the wizard's "Outgoing mail" step and the admin page "Mail delivery". ``parse_form``
validates the posted fields and returns errors keyed by field name (shown next to the field).
``save`` hands the ``[queue]`` smarthost keys to ``gk.settings`` (the relay host is an owner
setting), which writes them into ``DATA_DIR/gk.toml`` with ``gk.config``'s one durable writer
(line-edited so comments stay; checked by the loader first; owner-only once it holds a relay
password), then replaces the running config's ``[queue]`` section and calls the queue's
settings callback: the runner takes the new section, so the next delivery uses the new route
without a restart (a session already open finishes its current batch on the old route), and
mail waiting for a retry is made due at once, so it takes the new route now. The password is
never rendered back into a page: an empty password field keeps the stored one (for the same
user name).

Cost: one small file read and write per save, done in gevent's threadpool; nothing kept in memory.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gk import config as gkconfig
from gk import settings
from gk.locale import N_

if TYPE_CHECKING:
    from gk.context import AppContext
    from gk.web.app import Web

FORM_FIELDS = ("mode", "host", "port", "tls", "username", "password")

log = logging.getLogger("gk.web")

TLS_MODES = ("starttls", "implicit", "none")
KEYS = ("smarthost", "smarthost_port", "smarthost_tls", "smarthost_username", "smarthost_password")
HOST_RE = re.compile(r"^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$")
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


@dataclass
class Choice:
    """What the form shows: the current route (never the password itself)."""

    mode: str  # "direct" or "relay"
    host: str
    port: int | str
    tls: str
    username: str
    has_password: bool


def current(queue_cfg: Any) -> Choice:
    return Choice(
        mode="relay" if queue_cfg.smarthost else "direct",
        host=queue_cfg.smarthost,
        port=queue_cfg.smarthost_port,
        tls=queue_cfg.smarthost_tls,
        username=queue_cfg.smarthost_username,
        has_password=bool(queue_cfg.smarthost_password),
    )


def describe(queue_cfg: Any, _: Callable[..., str] | None = None) -> str:
    """The route in words, in the language of ``_`` (a ``gk.web.i18n.translator``; English without)."""
    tr = _ or (lambda text, **kw: text.format(**kw) if kw else text)
    if not queue_cfg.smarthost:
        return tr(N_("directly to each domain's mail servers (port 25)"))
    q = queue_cfg
    if q.smarthost_username:
        return tr(
            N_("through {host}:{port} ({tls}, as {user})"),
            host=q.smarthost,
            port=q.smarthost_port,
            tls=q.smarthost_tls,
            user=q.smarthost_username,
        )
    return tr(N_("through {host}:{port} ({tls})"), host=q.smarthost, port=q.smarthost_port, tls=q.smarthost_tls)


def valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return bool(HOST_RE.match(host))


def parse_form(form: dict[str, str], queue_cfg: Any) -> tuple[dict[str, Any], dict[str, str], Choice]:
    """(new [queue] values, errors by field, what to show again in the form)."""
    mode = form.get("mode", "direct")
    host = form.get("host", "").strip().lower().rstrip(".")
    port_text = form.get("port", "").strip()
    tls = form.get("tls", "starttls").strip()
    username = form.get("username", "").strip()
    password = form.get("password", "")
    errors: dict[str, str] = {}
    shown = Choice(mode, host, queue_cfg.smarthost_port, tls, username, bool(queue_cfg.smarthost_password))
    if mode not in ("direct", "relay"):
        errors["mode"] = N_("Choose direct delivery or a relay host.")
        return {}, errors, shown
    if mode == "direct":
        # the relay's credentials are not kept once it is no longer used
        values: dict[str, Any] = {"smarthost": "", "smarthost_username": "", "smarthost_password": ""}
        return values, errors, shown
    if not host:
        errors["host"] = N_("Enter the relay's host name, such as smtp.example.net.")
    elif not valid_host(host):
        errors["host"] = N_("Not a valid host name or IP address.")
    port = 0
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        errors["port"] = N_("Enter a port number from 1 to 65535 (usually 587, or 465 for implicit TLS).")
        shown.port = port_text[:20]
    else:
        port = int(port_text)
        shown.port = port
    if tls not in TLS_MODES:
        errors["tls"] = N_("Choose STARTTLS, implicit TLS or none.")
    if len(username) > 255 or CONTROL_RE.search(username):
        errors["username"] = N_("The user name is too long or has control characters.")
    if len(password) > 1024 or CONTROL_RE.search(password):
        errors["password"] = N_("The password is too long or has control characters.")
    if username and tls == "none" and "tls" not in errors:
        errors["tls"] = N_("A password is only sent over an encrypted connection: choose STARTTLS or implicit TLS.")
    if username and not password:
        same_user = username == queue_cfg.smarthost_username and host == queue_cfg.smarthost
        if same_user and queue_cfg.smarthost_password:
            password = queue_cfg.smarthost_password  # the field is never filled in: blank keeps it
        else:
            errors.setdefault("password", N_("Enter the relay's password for this user name."))
    if not username:
        password = ""
    values = {
        "smarthost": host,
        "smarthost_port": port,
        "smarthost_tls": tls,
        "smarthost_username": username,
        "smarthost_password": password,
    }
    return values, errors, shown


# -- gk.toml: written by gk.config's one durable writer, through gk.settings -----------------------
edit_table = gkconfig.edit_table


def new_config_text(old: str, values: dict[str, Any], table: str = "queue") -> str:
    return gkconfig.new_config_text(old, values, table)


def write_config(data_dir: Path, values: dict[str, Any], table: str = "queue") -> gkconfig.Config:
    """Write ``values`` into gk.toml's ``[table]`` (checked by GK's loader first); the loaded result."""
    return gkconfig.update_config_file(data_dir, table, values, private=bool(values.get("smarthost_password")))


def save(ctx: AppContext, values: dict[str, Any], who: str, ip: str) -> None:
    """Persist to gk.toml and apply to the running process, through ``gk.settings``.

    The running config's ``[queue]`` section is replaced (not mutated) after the durable write;
    the queue's settings callback then takes the new section and makes the mail already waiting
    for its next attempt due at once: the route just changed, most likely because the old one
    did not work, so it should not wait up to half an hour.
    """
    owner = settings.of(ctx.data_dir)
    owner.bind(ctx.config)
    owner.set_relay(values)
    log.info("outgoing mail now goes %s (set by %s from the web)", describe(ctx.config.queue), who)
    ctx.accounts.record_event("mail_route_changed", "web", ip, who, describe(ctx.config.queue))


def save_form(web: Web, who: str) -> tuple[dict[str, str], Choice]:
    """The posted route form parsed and, when valid, saved (``save``): ``(errors, choice)``.
    Used by the wizard's outgoing step and the mail delivery page."""
    from gk.web import forms

    ctx = web.ctx
    values, errors, choice = parse_form({k: forms.raw(k) for k in FORM_FIELDS}, ctx.config.queue)
    if not errors:
        try:
            save(ctx, values, who, web.client_ip())
        except (gkconfig.ConfigError, OSError) as exc:
            errors["mode"] = web.gettext("Could not save gk.toml: {error}", error=exc)
    return errors, choice
