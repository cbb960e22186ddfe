"""The re-export shims left where the integration tests' helpers used to live.

Issue 11 moved ``tests/integration/test_*_support.py`` into ``tests/support/`` while seven
engineers wrote new tests that may import the old paths; each old path kept a one-line
``from support.x import *`` so those tests still import after the merge. This test lists them:
next session, point every import at ``support.*``, delete the shims and this test.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import pytest

INTEGRATION = Path(__file__).resolve().parents[1] / "integration"

# old path -> the support modules it re-exports
SHIMS = {
    "test_imap_support.py": ["support.imap"],
    "test_smtp_support.py": ["support.smtp"],
    "test_queue_support.py": ["support.outbound", "support.peermta", "support.testca"],
}


@pytest.mark.documenting
def test_the_old_helper_paths_are_only_shims_to_remove_next_session() -> None:
    assert sorted(p.name for p in INTEGRATION.glob("test_*_support.py")) == sorted(SHIMS)
    for name, targets in SHIMS.items():
        path = INTEGRATION / name
        code = [line for line in path.read_text().splitlines() if line.strip()]
        assert code == [f"from {t} import *  # noqa: F403  moved: import from {t}" for t in targets], name
        spec = importlib.util.spec_from_file_location(f"shim_{path.stem}", path)
        assert spec and spec.loader
        shim = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(shim)
        for target in targets:
            module = importlib.import_module(target)
            public = sorted(n for n in vars(module) if not n.startswith("_"))
            assert [n for n in public if getattr(shim, n, None) is not getattr(module, n)] == [], (name, target)
