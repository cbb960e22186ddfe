"""Machine secrets generated on the device at first start (``DATA_DIR/secrets/``)."""

from __future__ import annotations

import secrets
from pathlib import Path

from gk.store.files import write_durable


def machine_secret(data_dir: Path, name: str, nbytes: int = 32) -> bytes:
    """Read ``DATA_DIR/secrets/<name>``, creating it (0600, fsynced) on first use."""
    d = data_dir / "secrets"
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = d / name
    if path.exists():
        data = path.read_bytes()
        if len(data) >= 16:
            return data
    data = secrets.token_bytes(nbytes)
    write_durable(path, data, 0o600)
    return data
