"""Keys and certificates, made in a short-lived child process when ``gk serve`` asks for them.

``cryptography`` is the only library here that makes RSA and EC keys and X.509 certificates.
Importing it adds ~11 MB to a process's RSS (~4 MB anonymous, the rest its own OpenSSL; measured
with /proc/self/status around the import), and a process never gives that back. ``gk serve``
made keys itself at its first start (the self-signed pair), when the wizard set a mail domain
(its DKIM key) or a host name (a new pair): the box then carried the import for its uptime,
~57 MB where a restarted ``gk serve`` sits at ~45. Made by ``python -m gk.security.keymaker``
instead, the serving process never imports it (the DNS record of a DKIM key is read from the
key without it: ``gk.mail.dkim.keys.public_value``).

Outside ``gk serve`` (the CLI, ``gk provision`` at the image's first boot, tests) the keys are
made in the calling process, as before. Cost: one Python start (~0.2 s here, ~1 s on a Pi 3)
per key, a few times in a box's life.

The child is started with ``os.posix_spawn`` and waited for with blocking calls, from a pool
thread or before the server serves: gevent's cooperative subprocess needs the hub's thread,
and the callers (DKIM keys, the wizard's new pair) run in the thread pools.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

_IN_CHILD = False  # set by gk serve at start (use_child_process)
MAX_ERROR = 4000  # bytes of the child's stderr kept for the error


class KeyMakerError(RuntimeError):
    pass


def use_child_process(on: bool = True) -> None:
    """Make keys in a child process from now on (``gk serve`` calls this at start)."""
    global _IN_CHILD
    _IN_CHILD = on


def make_dkim_rsa(path: Path) -> None:
    _run("dkim-rsa", str(path))


def make_dkim_ed25519(path: Path) -> None:
    _run("dkim-ed25519", str(path))


def make_self_signed(cert: Path, key: Path, hostname: str) -> None:
    _run("tls", str(cert), str(key), hostname)


def _run(kind: str, *args: str) -> None:
    if not _IN_CHILD:
        _MAKERS[kind](*args)
        return
    _spawn(kind, args)


def _original(module: str, name: str) -> object:
    """The function gevent's monkey-patching replaced, if it did (blocking ``waitpid``)."""
    try:
        from gevent import monkey

        return monkey.get_original(module, name)
    except ImportError:  # pragma: no cover - gevent is a dependency
        import importlib

        return getattr(importlib.import_module(module), name)


def _spawn(kind: str, args: tuple[str, ...]) -> None:
    # gevent's os.close defers the close to the event loop (the pipe's write end stayed open and
    # the read below never saw EOF) and its posix_spawn has the loop reap the child: the
    # originals, as this thread blocks until the child is done
    close: Any = _original("os", "close")
    spawn: Any = _original("os", "posix_spawn")
    waitpid: Any = _original("os", "waitpid")
    read, write = os.pipe()  # the child's stderr, for the error message
    try:
        argv = [sys.executable, "-m", "gk.security.keymaker", kind, *args]
        pid = spawn(
            sys.executable,
            argv,
            os.environ,
            file_actions=[(os.POSIX_SPAWN_DUP2, write, 2), (os.POSIX_SPAWN_CLOSE, read)],
        )
    except BaseException:
        close(read)
        raise
    finally:
        close(write)
    err = bytearray()
    try:
        while chunk := os.read(read, 65536):  # EOF when the child has exited
            err += chunk
            del err[:-MAX_ERROR]
    finally:
        close(read)
    try:
        _, status = waitpid(pid, 0)
    except ChildProcessError:
        status = None  # reaped by gevent's SIGCHLD watcher: its files say whether it worked
    code = os.waitstatus_to_exitcode(status) if status is not None else 0
    if code != 0:
        detail = err.decode("utf-8", "replace").strip().splitlines()
        raise KeyMakerError(f"making {kind} {' '.join(args)} failed (exit {code}): {detail[-1] if detail else ''}")


def _dkim_rsa(path: str) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    from gk.mail.dkim.keys import pem_of, write_private

    write_private(Path(path), pem_of(rsa.generate_private_key(public_exponent=65537, key_size=2048)))


def _dkim_ed25519(path: str) -> None:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from gk.mail.dkim.keys import pem_of, write_private

    write_private(Path(path), pem_of(ed25519.Ed25519PrivateKey.generate()))


def _tls(cert: str, key: str, hostname: str) -> None:
    from gk.security.tls import write_self_signed

    write_self_signed(Path(cert), Path(key), hostname)


_MAKERS: dict[str, Callable[..., None]] = {"dkim-rsa": _dkim_rsa, "dkim-ed25519": _dkim_ed25519, "tls": _tls}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in _MAKERS:
        print(f"usage: python -m gk.security.keymaker {{{','.join(_MAKERS)}}} ARGS...", file=sys.stderr)
        return 2
    _MAKERS[argv[0]](*argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
