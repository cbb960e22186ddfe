"""The ACME side of ``gk serve``: challenge files for the web UI, renewal checks, live reload.

See the package docstring. ``ctx.services.maybe(ACMEService)`` when ``[acme] enabled``; the web UI asks it
for ``challenge(token)`` and ``status``.
"""

from __future__ import annotations

import logging
import re
import ssl
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gevent
import gevent.lock
import gevent.subprocess

from gk import settings
from gk.acme import cert_paths, challenge_dir
from gk.security.tls import certificate_names

if TYPE_CHECKING:
    from gk.context import AppContext

log = logging.getLogger("gk.acme")

TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


def hostname_for(data_dir: Path, hostname: str) -> str:
    """The host name the certificate must name: the wizard's choice, else the running one."""
    return settings.of(data_dir).hostname() or hostname


def days_left(cert: Path, now: float | None = None) -> float | None:
    try:
        info = ssl._ssl._test_decode_cert(str(cert))  # type: ignore[attr-defined]
    except (OSError, ssl.SSLError):
        return None
    return (ssl.cert_time_to_seconds(info["notAfter"]) - (now or time.time())) / 86400


def usable(data_dir: Path, hostname: str, min_days: float = 0) -> bool:
    """True when the ACME certificate exists, names ``hostname`` and is valid ``min_days`` more."""
    cert, key = cert_paths(data_dir)
    left = days_left(cert)
    if left is None or left <= min_days or not key.exists():
        return False
    try:
        return hostname.lower() in certificate_names(cert)
    except (OSError, ssl.SSLError):
        return False


class ACMEService:
    name = "acme"

    def __init__(self, ctx: AppContext):
        self.ctx = ctx
        self.cfg = ctx.config.acme
        self.status: dict[str, Any] = {"state": "pending", "detail": "", "checked": 0.0}
        self.loop: gevent.Greenlet | None = None
        self.child: gevent.subprocess.Popen | None = None
        self._lock = gevent.lock.BoundedSemaphore()

    def start(self) -> ACMEService:
        self.loop = gevent.spawn(self._loop)
        return self

    def stop(self, grace: float) -> None:
        if self.child is not None and self.child.poll() is None:
            self.child.kill()
        if self.loop is not None:
            self.loop.kill(block=True, timeout=2)

    # -- the web UI's side --------------------------------------------------------------------
    def challenge(self, token: str) -> str | None:
        if not TOKEN_RE.match(token):
            return None
        try:
            return (challenge_dir(self.ctx.data_dir) / token).read_text()
        except OSError:
            return None

    # -- renewal ----------------------------------------------------------------------------------
    def _loop(self) -> None:
        gevent.sleep(self.cfg.first_check_seconds)  # let the web listener come up first
        while True:
            try:
                self.check()
            except Exception:
                log.exception("certificate check failed")
            gevent.sleep(self.cfg.check_hours * 3600)

    def check(self) -> bool:
        """Renew when needed; True when a new certificate is in use."""
        host = hostname_for(self.ctx.data_dir, self.ctx.hostname)
        self.status["checked"] = time.time()
        if usable(self.ctx.data_dir, host, self.cfg.renew_days):
            self._use(host)
            return False
        return self.renew(host)

    def renew(self, host: str) -> bool:
        with self._lock:
            log.info("acme: requesting a certificate for %s from %s", host, self.cfg.directory_url)
            self.status.update(state="requesting", detail="")
            cmd = [
                sys.executable,
                "-m",
                "gk",
                "acme",
                "renew",
                "--hostname",
                host,
                "--data-dir",
                str(self.ctx.data_dir),
            ]
            self.child = gevent.subprocess.Popen(
                cmd, stdout=gevent.subprocess.PIPE, stderr=gevent.subprocess.STDOUT, text=True
            )
            try:
                out, _ = self.child.communicate(timeout=self.cfg.timeout + 60)
            except gevent.subprocess.TimeoutExpired:
                self.child.kill()
                out = f"gave up after {self.cfg.timeout + 60:.0f} s"
            rc = self.child.returncode
            self.child = None
            for line in (out or "").splitlines():
                log.info("%s", line)
            if rc != 0 or not usable(self.ctx.data_dir, host):
                reason = (out or "").strip().splitlines()[-1:] or ["no certificate"]
                self.status.update(state="failed", detail=reason[0].removeprefix("acme: "))
                log.warning("acme: no certificate for %s; the self-signed one stays in use: %s", host, reason[0])
                return False
            self._use(host)
            return True

    def _use(self, host: str) -> None:
        cert, key = cert_paths(self.ctx.data_dir)
        if self.status.get("state") == "ok" and self.status.get("cert_mtime") == cert.stat().st_mtime:
            return
        self.ctx.ssl_context.load_cert_chain(str(cert), str(key))  # on the hub, where handshakes run
        left = days_left(cert) or 0
        self.status.update(
            state="ok",
            detail=f"{host}, {left:.0f} days left",
            host=host,
            days_left=round(left),
            cert_mtime=cert.stat().st_mtime,
        )
        log.info("acme: certificate for %s in use (%.0f days left)", host, left)


def start(ctx: AppContext) -> ACMEService | None:
    if not ctx.config.acme.enabled:
        return None
    svc = ACMEService(ctx)
    return svc.start()
