"""Admin dashboard: listeners of every service, queue length, disk, memory, CPU temperature, uptime,
recent security events; and ``/api/mail/queue`` (the queue service's ``snapshot()``).

A listener is "up" when the kernel lists its port in LISTEN state (/proc/net/tcp, tcp6): what a
TCP connect would have proven (the kernel completes the handshake before GK accepts), without
one. A connect probe made every implicit-TLS port (HTTPS, 465, 993) log a failed TLS handshake,
HTTPS with a full traceback, on every /api/status call. Cost: a few small file reads (/proc,
/sys) per page view; nothing kept between requests.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import bottle

from gk import localtime
from gk.locale import N_
from gk.web import flash, i18n, nextsteps
from gk.web.app import Web

if TYPE_CHECKING:
    from gk.context import AppContext

STARTED = time.time()


def listening_ports() -> set[int] | None:
    """TCP ports in LISTEN state in this network namespace (None where /proc/net is unreadable)."""
    ports: set[int] = set()
    readable = False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                readable = True
                next(f, None)
                for line in f:
                    fields = line.split()
                    if len(fields) > 3 and fields[3] == "0A":
                        ports.add(int(fields[1].rsplit(":", 1)[1], 16))
        except (OSError, ValueError):
            continue
    return ports if readable else None


def listener_up(host: str, port: int, listening: set[int] | None = None) -> bool:
    if listening is not None:
        return port in listening
    # No /proc (not Linux): a plain connect, which a TLS port may log as a failed handshake.
    target = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    try:
        with socket.create_connection((target, port), timeout=0.5):
            return True
    except OSError:
        return False


def memory() -> dict[str, int]:
    from gk.hw.tune import meminfo_mb

    info = meminfo_mb()
    rss = 0
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) // 1024
    except OSError:
        pass
    return {"total_mb": info.get("MemTotal", 0), "available_mb": info.get("MemAvailable", 0), "gk_rss_mb": rss}


def top_processes(limit: int = 8) -> list[dict[str, Any]]:
    """The processes holding the most memory (name, pid, RSS in MB), biggest first.

    A 512 MB box is run by its memory: the admin sees at a glance what holds it. Reads
    /proc/*/status (one small read per process, ~100 on the image).
    """
    procs: list[dict[str, Any]] = []
    for entry in os.scandir("/proc") if os.path.isdir("/proc") else []:
        if not entry.name.isdigit():
            continue
        name, rss = "", 0
        try:
            with open(f"/proc/{entry.name}/status") as f:
                for line in f:
                    if line.startswith("Name:"):
                        name = line.split(None, 1)[1].strip() if len(line.split()) > 1 else ""
                    elif line.startswith("VmRSS:"):
                        rss = int(line.split()[1])
                        break
        except (OSError, ValueError, IndexError):
            continue
        if rss:
            procs.append({"name": name, "pid": int(entry.name), "rss_mb": round(rss / 1024, 1)})
    procs.sort(key=lambda p: p["rss_mb"], reverse=True)
    return procs[:limit]


def cpu_temperature() -> float | None:
    base = Path("/sys/class/thermal")
    for zone in sorted(base.glob("thermal_zone*")) if base.exists() else []:
        try:
            return int((zone / "temp").read_text().strip()) / 1000.0
        except (OSError, ValueError):
            continue
    return None


def uptime_seconds() -> float:
    try:
        return float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0


# Security event names as the dashboard shows them; an unknown kind (a newer feature's) shows as is.
EVENT_NAMES = {
    "login_failed": N_("Failed sign-in"),
    "login_locked": N_("Sign-in refused (locked out)"),
    "claimed": N_("Server claimed"),
    "setup_code_failed": N_("Wrong setup code"),
    "setup_code_locked": N_("Setup code locked out"),
    "button_claim_refused": N_("Button press refused"),
    "owner_recovery": N_("Owner recovery"),
    "wizard_complete": N_("Setup finished"),
    "password_changed": N_("Password changed"),
    "password_reset": N_("Password reset by an administrator"),
    "app_password_added": N_("App password added"),
    "api_token_added": N_("API token created"),
    "api_token_deleted": N_("API token revoked"),
    "oauth_granted": N_("Application connected (OAuth)"),
    "oauth_revoked": N_("Application disconnected (OAuth)"),
    "user_added": N_("User added"),
    "user_deleted": N_("User removed"),
    "settings": N_("Settings changed"),
    "mail_route_changed": N_("Outgoing mail route changed"),
    "queue_delete": N_("Message deleted from the queue"),
    "domain_added": N_("Mail domain added"),
    "domain_deleted": N_("Mail domain removed"),
    "dav_shared": N_("Calendar or address book shared"),
    "chat_room_created": N_("Chat room created"),
    "chat_room_deleted": N_("Chat room deleted"),
    "admin_granted": N_("Administrator rights given"),
    "admin_revoked": N_("Administrator rights removed"),
    "alias_added": N_("Alias added"),
    "alias_deleted": N_("Alias removed"),
    "backup_made": N_("Backup made"),
    "backup_downloaded": N_("Backup downloaded"),
    "backup_failed": N_("Automatic backup failed"),
    "backup_schedule": N_("Backup schedule changed"),
}


def queue_snapshot(ctx: AppContext) -> list[dict] | None:
    from gk.mail.queue.service import QueueService

    queue = ctx.services.maybe(QueueService)
    if queue is None:
        return None
    return list(queue.snapshot())


def status(ctx: AppContext) -> dict[str, Any]:
    listeners = []
    listening = listening_ports()
    for name, svc in sorted(ctx.services.running(), key=lambda pair: pair[0]):
        for label, host, port in getattr(svc, "listeners", []) or []:
            listeners.append(
                {"service": name, "label": label, "host": host, "port": port, "up": listener_up(host, port, listening)}
            )
    disk = shutil.disk_usage(ctx.data_dir)
    queue = queue_snapshot(ctx)
    return {
        "listeners": listeners,
        "queue_length": None if queue is None else len(queue),
        "disk": {"total_mb": disk.total // 2**20, "free_mb": disk.free // 2**20},
        "memory": memory(),
        "top_processes": top_processes(),
        "cpu_temperature": cpu_temperature(),
        "uptime": {"system_s": uptime_seconds(), "gk_s": time.time() - STARTED},
        "load": os.getloadavg(),
    }


def dashboard(web: Web) -> str:
    ctx = web.ctx
    st = status(ctx)
    lang = web.lang()
    events = ctx.accounts.recent_events(30)
    for e in events:
        e["when"] = i18n.format_datetime(localtime.local(ctx.data_dir, e["ts"]) if e["ts"] else None, lang)
        e["name"] = EVENT_NAMES.get(e["kind"], "")
    from gk.acme.service import ACMEService

    acme = ctx.services.maybe(ACMEService)
    acme_status = acme.status if acme is not None else None
    return web.render(
        "dashboard.html",
        st=st,
        events=events,
        fmt_duration=lambda s: i18n.format_duration(s, lang),
        acme=acme_status,
        next_steps=nextsteps.for_dashboard(web, web.signed_in().address),
        notice=flash.take(web).get("notice", ""),
    )


def api_status(web: Web) -> str:
    bottle.response.content_type = "application/json"
    return json.dumps(status(web.ctx))


def api_queue(web: Web) -> str:
    bottle.response.content_type = "application/json"
    snap = queue_snapshot(web.ctx)
    if snap is None:
        bottle.response.status = 503
        return json.dumps({"error": "the outbound queue is not running"})
    return json.dumps({"messages": snap}, default=str)
