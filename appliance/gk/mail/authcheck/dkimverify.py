"""DKIM verification (RFC 6376) with dkimpy, without blocking the hub.

dkimpy needs the whole message in memory and canonicalizes it in Python: for a big message
that is seconds of CPU. So: the DKIM-Signature headers are read from the spool, the public keys
(``<s>._domainkey.<d>`` TXT) are fetched on the hub through GK's resolver, and the
verification itself runs in the CPU pool (``gk.pools``) with a ``dnsfunc`` that answers from
those prefetched keys. Messages above ``max_size`` are not verified (``dkim=neutral``): dkimpy
holds several copies of the message while it works, which a 512 MB board cannot afford for
very large messages. dkimpy (and PyNaCl, which it loads) is imported on the first signed
message, not at start: ~2 MB of RSS an idle box does not carry.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gk import pools
from gk.mail.authcheck.headers import Headers

if TYPE_CHECKING:
    import dns.resolver

MAX_SIGNATURES = 5


@dataclass(frozen=True)
class DKIMResult:
    result: str  # pass fail neutral none temperror permerror
    domain: str = ""
    selector: str = ""
    b: str = ""  # first 8 characters of the signature, to tell signatures apart (RFC 6008)
    reason: str = ""


def _signature_tags(headers: Headers) -> list[dict[bytes, bytes]]:
    values = (headers.get_all("DKIM-Signature") or [])[:MAX_SIGNATURES]
    if not values:
        return []
    import dkim.util  # on the first signed message: unsigned mail never loads dkimpy

    out = []
    for value in values:
        try:
            raw = str(value).encode("utf-8", "surrogateescape")
            out.append(dkim.util.parse_tag_value(raw.replace(b"\r\n", b"").replace(b"\n", b"")))
        except Exception:
            out.append({})
    return out


def _fetch_key(resolver: dns.resolver.Resolver, name: str) -> bytes | None | Exception:
    import dns.exception  # on the first signed message, not at start (see gk.mail.authcheck.spf)
    import dns.resolver

    try:
        answer = resolver.resolve(name, "TXT", search=False)
    except (dns.resolver.NoAnswer, dns.resolver.NXDOMAIN):
        return None
    except (dns.exception.Timeout, dns.resolver.NoNameservers) as exc:
        return exc
    for rdata in answer:
        return b"".join(rdata.strings)
    return None


def _verify_all(message_path: Path | bytes, count: int, keys: dict[str, bytes | None]) -> list[bool | str]:
    """Runs in a thread: verify each signature; True/False or an error text."""
    import dkim

    def dnsfunc(name: bytes | str, timeout: float = 5) -> bytes | None:
        key = (name.decode() if isinstance(name, bytes) else name).lower().rstrip(".")
        return keys.get(key)

    message = message_path if isinstance(message_path, bytes) else message_path.read_bytes()
    d = dkim.DKIM(message, minkey=1024)
    out: list[bool | str] = []
    for idx in range(count):
        try:
            out.append(bool(d.verify(idx=idx, dnsfunc=dnsfunc)))
        except dkim.ValidationError as exc:
            # a body that no longer matches its hash is a failed signature, not a broken one
            out.append(False if "body hash mismatch" in str(exc) else str(exc))
        except dkim.DKIMException as exc:
            out.append(str(exc) or exc.__class__.__name__)
    return out


def verify(
    resolver: dns.resolver.Resolver, message_path: Path | bytes, headers: Headers, size: int, max_size: int
) -> list[DKIMResult]:
    sigs = _signature_tags(headers)
    if not sigs:
        return [DKIMResult("none")]
    if size > max_size:
        return [
            DKIMResult("neutral", s.get(b"d", b"").decode(errors="replace"), reason="message too large to verify")
            for s in sigs
        ]
    keys: dict[str, bytes | None] = {}
    temp: dict[str, str] = {}
    for s in sigs:
        d, sel = s.get(b"d", b"").decode(errors="replace"), s.get(b"s", b"").decode(errors="replace")
        if not d or not sel:
            continue
        name = f"{sel}._domainkey.{d}".lower().rstrip(".")
        if name not in keys and name not in temp:
            got = _fetch_key(resolver, name)
            if isinstance(got, Exception):
                temp[name] = str(got)
            else:
                keys[name] = got
    outcomes = pools.run_cpu(_verify_all, message_path, len(sigs), keys)
    results = []
    for s, outcome in zip(sigs, outcomes, strict=True):
        d = s.get(b"d", b"").decode(errors="replace").lower()
        sel = s.get(b"s", b"").decode(errors="replace")
        b = s.get(b"b", b"").decode(errors="replace").replace(" ", "")[:8]
        name = f"{sel}._domainkey.{d}".lower().rstrip(".")
        if outcome is True:
            results.append(DKIMResult("pass", d, sel, b))
        elif name in temp:
            results.append(DKIMResult("temperror", d, sel, b, "key lookup failed"))
        elif outcome is False:
            results.append(DKIMResult("fail", d, sel, b, "signature did not verify"))
        else:
            results.append(DKIMResult("permerror", d, sel, b, str(outcome)))
    return results
