"""The owner's time zone: chosen in the wizard or on /admin/settings, used wherever GK shows a
person a time (webmail dates, the dashboard's security events, the mail queue) and in the
``Date:`` of mail written in webmail.

Stored as the ``timezone`` setting and mirrored to ``DATA_DIR/timezone`` (one line, the IANA
name), which the image's ``gk-timezone.path`` watches to set the system clock's zone as root
(GK itself runs unprivileged). Cost: one settings read every ``CACHE_SECONDS`` per data dir.
"""

from __future__ import annotations

import datetime as dt
import time
import zoneinfo
from pathlib import Path

from gk import claim
from gk.locale import N_
from gk.store.files import write_durable

ZONE_FILE = "timezone"
CACHE_SECONDS = 30.0
_cache: dict[Path, tuple[float, zoneinfo.ZoneInfo]] = {}


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
    key = Path(data_dir)
    hit = _cache.get(key)
    if hit and time.monotonic() - hit[0] < CACHE_SECONDS:
        return hit[1]
    name = claim.get_setting(key, "timezone", "UTC") or "UTC"
    try:
        tz = zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        tz = zoneinfo.ZoneInfo("UTC")
    _cache[key] = (time.monotonic(), tz)
    return tz


def set_zone(data_dir: Path, name: str) -> None:
    """Save ``name`` (an IANA zone such as Europe/Paris) and publish it for the system clock."""
    if name not in valid_zones():
        raise TimeZoneError(N_("unknown time zone {name!r}: choose one such as Europe/Paris or UTC"), name=name)
    claim.set_settings(Path(data_dir), timezone=name)
    write_durable(Path(data_dir) / ZONE_FILE, (name + "\n").encode(), 0o644)
    _cache.pop(Path(data_dir), None)


def local(data_dir: Path, ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, zone(data_dir))


def now(data_dir: Path) -> dt.datetime:
    return dt.datetime.now(zone(data_dir))


def format_ts(data_dir: Path, ts: float | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    return local(data_dir, ts).strftime(fmt) if ts else "-"
