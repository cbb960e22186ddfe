"""The in-process IMAP harness (a socket pair to a real session, no ``gk serve``), fresh per test;
a file that needs another (more users, a module-wide one) defines its own ``harness``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.imapharness import IMAPHarness


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[IMAPHarness]:
    h = IMAPHarness(tmp_path / "gk")
    yield h
    h.close()
