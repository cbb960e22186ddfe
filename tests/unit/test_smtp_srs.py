"""SRS (gk.mail.smtp.srs): the addresses a forward's envelope sender becomes, and the checks a
bounce to one of them passes or fails — forged, cut short, expired, another box's key."""

from __future__ import annotations

import re

import pytest

from gk.mail.smtp import srs

KEY = b"k" * 32
NOW = 1_790_000_000.0


def test_srs0_round_trip_and_case_insensitive_hash() -> None:
    addr = srs.forward(KEY, "Carol@remote.example", "test.example", now=NOW)
    assert re.fullmatch(r"SRS0=[A-Za-z0-9+/]{4}=[A-Z2-7]{2}=remote\.example=Carol@test\.example", addr)
    assert srs.is_srs(addr) and not srs.is_srs("carol@remote.example")
    assert srs.reverse(KEY, addr, now=NOW) == "Carol@remote.example"
    # an MTA on the way lower-cases the local part: still ours
    assert srs.reverse(KEY, addr.lower(), now=NOW + 86400).lower() == "carol@remote.example"


def test_forged_short_foreign_and_expired_are_refused() -> None:
    addr = srs.forward(KEY, "carol@remote.example", "test.example", now=NOW)
    _, h, ts, rest = addr.split("=", 3)
    with pytest.raises(srs.SRSError):
        srs.reverse(KEY, f"SRS0={h[:1]}={ts}={rest}", now=NOW)  # one character of 64 would be a guess
    with pytest.raises(srs.SRSError):
        srs.reverse(KEY, addr.replace("carol@", "mallory@"), now=NOW)
    with pytest.raises(srs.SRSError):
        srs.reverse(b"another box" * 3, addr, now=NOW)
    assert srs.reverse(KEY, addr, now=NOW + srs.MAX_AGE_DAYS * 86400) == "carol@remote.example"
    with pytest.raises(srs.SRSError, match="expired"):
        srs.reverse(KEY, addr, now=NOW + (srs.MAX_AGE_DAYS + 1) * 86400)
    with pytest.raises(srs.SRSError, match="expired"):
        srs.reverse(KEY, addr, now=NOW - 2 * 86400)  # from the future
    for bad in ("SRS0=x@test.example", "SRS0==AA=b=c@test.example", "plain@test.example", "SRS1=zz@x"):
        with pytest.raises(srs.SRSError):
            srs.reverse(KEY, bad, now=NOW)


def test_second_hop_makes_srs1_back_to_the_first_hop() -> None:
    first_key, our_key = b"a" * 32, b"b" * 32
    srs0 = srs.forward(first_key, "carol@remote.example", "hop1.example", now=NOW)
    srs1 = srs.forward(our_key, srs0, "test.example", now=NOW)
    assert srs1.startswith("SRS1=") and srs1.endswith("=hop1.example==" + srs0[5:].rpartition("@")[0] + "@test.example")
    back = srs.reverse(our_key, srs1, now=NOW)
    assert back == srs0
    assert srs.reverse(first_key, back, now=NOW) == "carol@remote.example"
    again = srs.forward(b"c" * 32, srs1, "third.example", now=NOW)  # a third hop keeps hop 1
    assert srs.reverse(b"c" * 32, again, now=NOW) == srs0


def test_secret_is_made_once_per_box(tmp_path) -> None:  # type: ignore[no-untyped-def]
    key = srs.secret(tmp_path)
    assert len(key) >= 32 and (tmp_path / "secrets" / "srs").read_bytes() == key
    assert srs.secret(tmp_path) == key
