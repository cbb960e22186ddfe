"""One place that decides whether a missing tool skips a test or fails it.

``make test`` installs every client and tool a test needs; a developer without root may lack
some, and those tests skip with the package to install. ``.ci/run`` sets ``GK_NO_SKIP=1``: on
CI a skip would hide a missing install step, so it fails instead.
"""

from __future__ import annotations

import os

import pytest


def skip_or_fail(reason: str) -> None:
    if os.environ.get("GK_NO_SKIP") == "1":
        pytest.fail(f"{reason} (GK_NO_SKIP=1: a skip is a failure here)")
    pytest.skip(reason)
