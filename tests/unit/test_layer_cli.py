"""Layering, checked on the source: nothing below the entry point imports ``gk.cli``.

``gk.cli`` monkey-patches on import and builds the parser from ``gk.features``; feature
commands share ``gk.clikit`` instead. Only ``gk/__main__.py`` (``python -m gk``) may import it.
"""

from __future__ import annotations

import ast
from pathlib import Path

GK = Path(__file__).resolve().parents[2] / "appliance" / "gk"
ALLOWED = {"cli.py", "__main__.py"}


def cli_imports(source: str, package: str = "gk") -> list[int]:
    """Line numbers that import gk.cli (absolutely, relatively from ``package`` or through sys.modules)."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import) and any(a.name == "gk.cli" or a.name.startswith("gk.cli.") for a in node.names):
            lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # relative: resolve against the file's package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, module] if module else base)
            if module == "gk.cli" or (module == "gk" and any(a.name == "cli" for a in node.names)):
                lines.append(node.lineno)
        elif isinstance(node, ast.Constant) and node.value == "gk.cli":
            lines.append(node.lineno)
    return lines


def test_the_checker_finds_every_form():
    for source in (
        "import gk.cli",
        "from gk import cli as gkcli",
        "from gk.cli import EXTRA_COMMANDS",
        "import sys\n_cli = sys.modules.get('gk.cli')",
    ):
        assert cli_imports(source), source
    assert cli_imports("from .. import cli", "gk.mail") and cli_imports("from .cli import main")
    assert not cli_imports("from gk import clikit\nimport gk.mail.queue.cli\nfrom gk.chat import cli")
    assert not cli_imports("from . import cli", "gk.chat") and not cli_imports("from .cli import x", "gk.hw")


def test_nothing_outside_gk_cli_imports_it():
    found = []
    for path in sorted(GK.rglob("*.py")):
        rel = path.relative_to(GK).as_posix()
        if rel in ALLOWED:
            continue
        package = ".".join(["gk", *path.relative_to(GK).parent.parts])
        found += [f"{rel}:{line}" for line in cli_imports(path.read_text(encoding="utf-8"), package)]
    assert found == []
