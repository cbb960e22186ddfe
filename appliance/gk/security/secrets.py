"""Machine secrets generated on the device at first start (``DATA_DIR/secrets/``)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


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
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return data
