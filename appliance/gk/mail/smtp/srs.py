"""SRS, the Sender Rewriting Scheme (Shevek's "Guarded" scheme, as libsrs2 and postsrsd write it):
the envelope sender of a forward outside becomes ``SRS0=HHHH=TT=domain=local@forwarder-domain``,
so the destination's SPF check looks at this box's domain (which sends it), and a bounce comes
back here, where the address is checked and reversed to the original sender.

- ``HHHH``: the first 4 base64 characters of HMAC-SHA1(secret, lower(TT + domain + local)),
  compared case-insensitively (some MTAs lower-case local parts), and only at full length;
- ``TT``: the day number modulo 1024 in two base-32 characters; an address older than
  ``MAX_AGE_DAYS`` (or from the future) is expired;
- an address that is already SRS0 (we are a later hop) becomes ``SRS1=HHHH=first-hop=opaque@us``,
  whose bounce goes back to the first hop; an SRS1 one keeps its first hop.

The secret is a machine secret (``DATA_DIR/secrets/srs``), made on the device at first boot
(``gk provision``) or first use, never shipped in the image.

Why not a library: PyPI has ``pysrs`` (last release 2018, written around a sendmail milter) and
``srslib`` (0.1.5, 2024, the release before it 2018; untyped). srslib checks a hash of whatever
length the address carries — ``SRS0=x=TT=...`` needs only one right character in 64, lower-cased
about one in 38, to reverse — where libsrs2 refuses hashes shorter than it makes. The scheme is
an HMAC and two small encodings: the 80 lines here are smaller than the wrapper that would fix it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from pathlib import Path

MAX_AGE_DAYS = 21  # libsrs2's and postsrsd's default
HASH_LENGTH = 4
_TS_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_SRS0 = re.compile(r"^SRS0[-+=]([^=]+)=([^=]+)=([^=]+)=(.+)$", re.IGNORECASE)
_SRS0_OPAQUE = re.compile(r"^SRS0([-+=].+)$", re.IGNORECASE)
_SRS1 = re.compile(r"^SRS1[-+=]([^=]+)=([^=]+)=([-+=].+)$", re.IGNORECASE)
_secrets: dict[Path, bytes] = {}


class SRSError(ValueError):
    """An SRS address that is not ours: malformed, forged (wrong hash) or expired."""


def secret(data_dir: Path) -> bytes:
    """The box's SRS key (made on first use; cached: it never changes while the box runs)."""
    key = _secrets.get(data_dir)
    if key is None:
        from gk.security.secrets import machine_secret

        key = _secrets[data_dir] = machine_secret(data_dir, "srs")
    return key


def is_srs(address: str) -> bool:
    """Whether the local part of ``address`` is an SRS0 or SRS1 one (not whether it is valid)."""
    return address[:5].upper() in ("SRS0=", "SRS0-", "SRS0+", "SRS1=", "SRS1-", "SRS1+")


def _hash(key: bytes, text: str) -> str:
    digest = hmac.new(key, text.lower().encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest)[:HASH_LENGTH].decode("ascii")


def _check_hash(key: bytes, given: str, text: str) -> None:
    if len(given) != HASH_LENGTH or not hmac.compare_digest(given.lower(), _hash(key, text).lower()):
        raise SRSError("the SRS address's hash is wrong (forged, or not made here)")


def _day(now: float) -> int:
    return int(now // 86400)


def _timestamp(now: float) -> str:
    day = _day(now)
    return _TS_ALPHABET[(day >> 5) & 31] + _TS_ALPHABET[day & 31]


def _check_timestamp(ts: str, now: float) -> None:
    ts = ts.upper()
    if len(ts) != 2 or any(c not in _TS_ALPHABET for c in ts):
        raise SRSError("the SRS address's time stamp is malformed")
    stamped = _TS_ALPHABET.index(ts[0]) << 5 | _TS_ALPHABET.index(ts[1])
    age = (_day(now) - stamped) % 1024
    if age > MAX_AGE_DAYS:
        raise SRSError(f"the SRS address has expired (bounces are taken for {MAX_AGE_DAYS} days)")


def forward(key: bytes, sender: str, domain: str, now: float | None = None) -> str:
    """The envelope sender for a forward of mail from ``sender``, sent by this box for ``domain``."""
    local, at, host = sender.rpartition("@")
    if not at or not local or not host:
        raise SRSError(f"{sender!r} is not an address")
    m = _SRS1.match(local)
    if m:  # a later hop again: keep the first hop, sign it ourselves
        first, opaque = m.group(2), m.group(3)
        return f"SRS1={_hash(key, first + opaque)}={first}={opaque}@{domain}"
    m = _SRS0_OPAQUE.match(local)
    if m:  # we are the second hop: bounces go back to the first one
        opaque = m.group(1)
        return f"SRS1={_hash(key, host + opaque)}={host}={opaque}@{domain}"
    ts = _timestamp(time.time() if now is None else now)
    return f"SRS0={_hash(key, ts + host + local)}={ts}={host}={local}@{domain}"


def reverse(key: bytes, address: str, now: float | None = None) -> str:
    """The address a bounce to ``address`` goes back to; ``SRSError`` when it is not a valid
    SRS address made here (malformed, forged or expired)."""
    local = address.rpartition("@")[0]
    m = _SRS0.match(local)
    if m:
        given, ts, host, orig = m.groups()
        _check_hash(key, given, ts + host + orig)
        _check_timestamp(ts, time.time() if now is None else now)
        return f"{orig}@{host}"
    m = _SRS1.match(local)
    if m:
        given, first, opaque = m.groups()
        _check_hash(key, given, first + opaque)
        return f"SRS0{opaque}@{first}"
    raise SRSError(f"{address!r} is not an SRS address")
