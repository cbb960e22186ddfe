"""Tests a person runs ON a real GK board (`make hwtest`): skipped with a clear message elsewhere.

A board is recognised by its device tree model (/proc/device-tree/model) or GK_HWTEST=1. The
button tests are interactive: they ask on the terminal to press/hold the button.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

MODEL = Path("/proc/device-tree/model")


def board_model() -> str:
    try:
        return MODEL.read_text().strip("\x00\n ")
    except OSError:
        return ""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if board_model() or os.environ.get("GK_HWTEST") == "1":
        return
    skip = pytest.mark.skip(reason="HWTEST SKIPPED: not a GK board (no /proc/device-tree/model; GK_HWTEST=1 forces)")
    for item in items:
        item.add_marker(skip)
