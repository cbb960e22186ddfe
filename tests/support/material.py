"""Key material made once per test session and copied into each ``gk serve``'s data dir.

A server makes its self-signed TLS pair at first start and an RSA-2048 DKIM key per local
domain when its queue starts: about 0.15 s of CPU per server, some sixty servers a suite, on a
machine whose two cores the servers of one test already share. The same code (GK's own
``generate_self_signed`` and ``ensure_keys``) makes them here once per (host name) and (domain),
in a session directory; ``seed`` copies them into a data dir before the server starts, where
GK finds them as if it had made them itself. A test of key generation itself opts out
(``GKServer.session_keys = False``).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import threading
from pathlib import Path

_lock = threading.RLock()
_dir: list[Path] = []


def session_dir() -> Path:
    """This test process's material directory (removed at exit)."""
    with _lock:
        if not _dir:
            d = Path(tempfile.mkdtemp(prefix="gk-test-material-"))
            atexit.register(shutil.rmtree, d, True)
            _dir.append(d)
        return _dir[0]


def tls_pair(hostname: str) -> tuple[Path, Path]:
    """GK's self-signed certificate and key for ``hostname``, made at the first call."""
    from gk.security.tls import generate_self_signed

    d = session_dir() / "tls" / hostname
    cert, key = d / "cert.pem", d / "key.pem"
    with _lock:
        if not (cert.exists() and key.exists()):
            generate_self_signed(cert, key, hostname)
    return cert, key


def dkim_dir(domain: str, selector: str) -> Path:
    """A directory holding ``rsa-<selector>.pem`` for ``domain``, made at the first call."""
    from gk.mail.dkim import ensure_keys

    with _lock:
        ensure_keys(session_dir(), domain, selector)
    return session_dir() / "dkim" / domain.lower()


def seed(data_dir: Path, hostname: str, domains: set[str], selector: str = "gk") -> None:
    """Copy the session's TLS pair and DKIM keys into ``data_dir`` where GK looks for its own;
    files already there are kept (a restarted server keeps the keys it has)."""
    cert, key = tls_pair(hostname)
    tls = data_dir / "tls"
    if not ((tls / "cert.pem").exists() or (tls / "key.pem").exists()):
        tls.mkdir(parents=True, exist_ok=True)
        shutil.copy2(key, tls / "key.pem")
        shutil.copy2(cert, tls / "cert.pem")
    for domain in sorted(domains):
        target = data_dir / "dkim" / domain.lower() / f"rsa-{selector}.pem"
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(dkim_dir(domain, selector) / f"rsa-{selector}.pem", target)
