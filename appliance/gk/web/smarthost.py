"""The outgoing-mail choice (deliver directly by MX, or through a relay host): form, gk.toml, live apply.

Used by the wizard's "Outgoing mail" step and the admin page "Mail delivery". ``parse_form``
validates the posted fields and returns errors keyed by field name (shown next to the field).
``save`` writes the ``[queue]`` smarthost keys into ``DATA_DIR/gk.toml`` and then applies them
to the running process by setting the fields of ``ctx.config.queue`` in place: the queue
runner holds that very object (``QueueRunner.cfg``) and reads it each time it picks a
destination or opens a connection, so the next delivery uses the new route without a restart
(a session already open finishes its current batch on the old route); mail waiting for a
retry is made due at once, so it takes the new route now.

gk.toml is edited line by line inside its ``[queue]`` table, so comments and every other key
stay as they were; if the file uses a form the line editor does not handle (dotted keys,
inline tables, multi-line strings), the result would not parse back to the wanted values and
the file is rewritten from tomllib + tomli_w instead (its comments are then lost; the values
are kept). The new text is checked with GK's own config loader before it replaces the file;
the write is atomic (temp file, fsync, rename, fsync of the directory) and the file is made
owner-only (0600) once it holds a relay password. The password is never rendered back into a
page: an empty password field keeps the stored one (for the same user name).

Cost: one small file read and write per save, done in gevent's threadpool; nothing kept in memory.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gevent
import gevent.lock
import tomli_w

from gk import config as gkconfig
from gk import pools
from gk.locale import N_

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
        values = {"smarthost": "", "smarthost_username": "", "smarthost_password": ""}
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


# -- gk.toml -------------------------------------------------------------------------------------
def _toml_line(key: str, value: Any) -> str:
    return tomli_w.dumps({key: value}).strip()


def edit_table(text: str, table: str, values: dict[str, Any]) -> str:
    """``text`` with ``key = value`` lines of ``[table]`` set (replaced in place or added after the header)."""
    lines = text.splitlines()
    section = ""
    header_at: int | None = None
    found: dict[str, int] = {}
    for i, line in enumerate(lines):
        s = line.strip()
        if s.startswith("["):
            section = s.split("#", 1)[0].strip()
            if section == f"[{table}]":
                header_at = i
            continue
        if section == f"[{table}]":
            m = re.match(r"^([A-Za-z0-9_-]+)\s*=", s)
            if m and m.group(1) in values:
                found[m.group(1)] = i
    for key, i in found.items():
        lines[i] = _toml_line(key, values[key])
    missing = [_toml_line(k, v) for k, v in values.items() if k not in found]
    if missing:
        if header_at is None:
            if lines and lines[-1].strip():
                lines.append("")
            lines += [f"[{table}]", *missing]
        else:
            lines[header_at + 1 : header_at + 1] = missing
    return "\n".join(lines) + "\n"


def new_config_text(old: str, values: dict[str, Any], table: str = "queue") -> str:
    """The new gk.toml text; line-edited if that parses back right, else a full tomli_w rewrite."""
    original = tomllib.loads(old) if old.strip() else {}
    edited = edit_table(old, table, values)
    try:
        parsed = tomllib.loads(edited)
    except tomllib.TOMLDecodeError:
        parsed = None
    want = {**original, table: {**original.get(table, {}), **values}}
    if parsed == want:
        return edited
    log.info("gk.toml: rewriting the file to set [%s] (its comments are not kept)", table)
    return tomli_w.dumps(want)


def _write_atomic(path: Path, text: str, private: bool) -> None:
    mode = 0o600
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        pass
    if private:
        mode &= 0o600
    tmp = path.with_name(path.name + ".web.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def write_config(data_dir: Path, values: dict[str, Any], table: str = "queue") -> gkconfig.Config:
    """Write ``values`` into gk.toml's ``[table]`` (checked by GK's loader first); the loaded result."""
    path = gkconfig.config_path(data_dir)
    try:
        old = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        old = ""
    text = new_config_text(old, values, table)
    builder = gkconfig.base_builder(data_dir)
    builder.source = str(path)
    builder.merge(tomllib.loads(text))
    cfg = builder.build()  # ConfigError: the file (or our values) would not load; nothing written
    _write_atomic(path, text, private=bool(values.get("smarthost_password")))
    return cfg


_save_lock = gevent.lock.BoundedSemaphore()


def save(ctx: Any, values: dict[str, Any], who: str, ip: str) -> None:
    """Persist to gk.toml (in the threadpool) and apply to the running queue.

    Mail already waiting for its next attempt is made due at once: the route just changed,
    most likely because the old one did not work, so it should not wait up to half an hour.
    """
    with _save_lock:  # two admins saving at once must not interleave read-modify-write of gk.toml
        cfg: gkconfig.Config = pools.run_io(write_config, ctx.data_dir, values)
        for key in KEYS:
            setattr(ctx.config.queue, key, getattr(cfg.queue, key))
    queue = ctx.services.get("queue")
    if queue is not None:
        queue.retry(None)  # waiting mail takes the new route now
    log.info("outgoing mail now goes %s (set by %s from the web)", describe(ctx.config.queue), who)
    ctx.accounts.record_event("mail_route_changed", "web", ip, who, describe(ctx.config.queue))
