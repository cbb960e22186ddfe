"""The owner's time zone: chosen in the wizard or on /admin/settings, used wherever GK shows a
person a time (webmail dates, the dashboard's security events, the mail queue) and in the
``Date:`` of mail written in webmail.

Stored as the ``timezone`` setting of ``gk.settings`` and mirrored to ``DATA_DIR/timezone``
(one line, the IANA name) by a settings callback, after the setting is durable; the image's
``gk-timezone.path`` watches that file to set the system clock's zone as root (GK itself runs
unprivileged). Cost: the settings' cached read (refreshed every 30 s) per call.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from pathlib import Path

from gk import settings
from gk.locale import N_
from gk.store.files import write_durable

ZONE_FILE = "timezone"


class TimeZoneError(ValueError):
    """An unknown zone name; ``template``/``params`` as ``gk.accounts.AccountError``'s."""

    def __init__(self, template: str, **params: object):
        super().__init__(template.format(**params) if params else template)
        self.template = template
        self.params = params


def valid_zones() -> set[str]:
    return zoneinfo.available_timezones()


def zone(data_dir: Path) -> zoneinfo.ZoneInfo:
    """The configured zone (UTC when none is set or the name is unknown on this system)."""
    name = settings.of(data_dir).timezone() or "UTC"
    try:
        return zoneinfo.ZoneInfo(name)  # ZoneInfo keeps its own cache by name
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def set_zone(data_dir: Path, name: str) -> None:
    """Save ``name`` (an IANA zone such as Europe/Paris) and publish it for the system clock."""
    if name not in valid_zones():
        raise TimeZoneError(N_("unknown time zone {name!r}: choose one such as Europe/Paris or UTC"), name=name)
    settings.of(data_dir).update(timezone=name)  # _publish writes the zone file


def _publish(change: settings.Change) -> None:
    """Settings callback: the system clock's zone follows the saved one."""
    name = change.settings.timezone()
    if name:
        write_durable(change.settings.data_dir / ZONE_FILE, (name + "\n").encode(), 0o644)


settings.subscribe_all(_publish, {settings.TIMEZONE})


def local(data_dir: Path, ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, zone(data_dir))


def now(data_dir: Path) -> dt.datetime:
    return dt.datetime.now(zone(data_dir))


def format_ts(data_dir: Path, ts: float | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    return local(data_dir, ts).strftime(fmt) if ts else "-"
