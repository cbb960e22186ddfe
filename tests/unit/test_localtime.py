from __future__ import annotations

import datetime as dt

import pytest

from gk import localtime


def test_default_is_utc_and_formatting_follows_the_chosen_zone(tmp_path):  # type: ignore[no-untyped-def]
    assert localtime.zone(tmp_path).key == "UTC"
    ts = dt.datetime(2026, 7, 1, 12, 0, tzinfo=dt.UTC).timestamp()
    assert localtime.format_ts(tmp_path, ts) == "2026-07-01 12:00:00"
    localtime.set_zone(tmp_path, "America/New_York")
    assert (tmp_path / "timezone").read_text() == "America/New_York\n"
    assert localtime.format_ts(tmp_path, ts) == "2026-07-01 08:00:00"  # EDT, UTC-4
    assert localtime.format_ts(tmp_path, None) == "-"


def test_unknown_zone_is_refused_and_changes_nothing(tmp_path):  # type: ignore[no-untyped-def]
    localtime.set_zone(tmp_path, "Europe/Paris")
    for bad in ("Mars/Base", "../../etc/passwd", "", "Europe/Paris\nUTC"):
        with pytest.raises(localtime.TimeZoneError):
            localtime.set_zone(tmp_path, bad)
    assert localtime.zone(tmp_path).key == "Europe/Paris"
    assert (tmp_path / "timezone").read_text() == "Europe/Paris\n"
