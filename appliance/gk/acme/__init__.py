"""Certificates from an ACME CA (Let's Encrypt) for the box's host name, renewed before expiry.

Two halves, so the long-lived server never imports certbot's ``acme`` library (+18 MB RSS):

- ``issue.py`` runs in a short-lived child process (``gk acme renew``): account key, order,
  HTTP-01 challenge, finalisation, through the ``acme`` package (what certbot uses). It writes
  each challenge's key authorisation to ``DATA_DIR/acme/challenges/<token>`` (like certbot's
  webroot mode) and the result to ``DATA_DIR/tls/acme-{cert,key}.pem`` (durably, key 0600).
- ``service.py`` lives in ``gk serve``: the web UI answers ``/.well-known/acme-challenge/<token>``
  on port 80 from those files; a greenlet checks every ``[acme] check_hours`` and runs the
  child when the certificate is missing, names another host or expires within
  ``[acme] renew_days``; a new certificate is loaded into the SSLContext every listener shares,
  so the next handshake uses it without a restart. When issuance fails the box keeps its
  self-signed certificate and the dashboard says why.

Turned on by ``[acme] enabled = true`` (the Settings page sets it). Cost: one sleeping greenlet;
a renewal is a child process of ~60 MB for a few seconds every two months.
"""

from __future__ import annotations

from pathlib import Path

CERT, KEY = "acme-cert.pem", "acme-key.pem"


def cert_paths(data_dir: Path) -> tuple[Path, Path]:
    return data_dir / "tls" / CERT, data_dir / "tls" / KEY


def challenge_dir(data_dir: Path) -> Path:
    return data_dir / "acme" / "challenges"
