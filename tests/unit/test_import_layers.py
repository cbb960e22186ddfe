"""The import layers of ``appliance/gk`` (docs/architecture.md, "Import layers"): a module imports
only from its own layer or below at module level, and module-level imports form no cycle.

Imports inside functions (the lazy imports that keep ``gk --help`` and idle RSS small) and under
``if TYPE_CHECKING:`` are not edges: they run late or never. A module not named in ``LAYERS``
fails the test, so a new package has to be placed.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "appliance" / "gk"

# top to bottom; a module belongs to the longest prefix that names it
LAYERS: list[list[str]] = [
    ["gk.__main__", "gk.cli", "gk.server", "gk.features"],  # entry points and the feature list
    [
        "gk.web",
        "gk.dav.web",
        "gk.oauth.web",
    ],  # the web UI: mounts and pages over every feature (DAV sharing, OAuth consent)
    ["gk.diagnosis", "gk.backup", "gk.setupfile", "gk.mcp", "gk.api", "gk.oauth"],  # over several features at once
    ["gk.ai", "gk.chat", "gk.dav", "gk.acme", "gk.hw"],  # features
    ["gk.mail.smtp", "gk.mail.imap", "gk.mail.queue", "gk.mail.submission", "gk.mail.dnsrecords"],  # protocols
    ["gk.mail.delivery", "gk.mail.outbound", "gk.mail.authcheck", "gk.mail.dkim", "gk.mail.dnsresolver"],
    ["gk.mail.mailbox"],  # behind its face (test_mailbox_face.py)
    ["gk.context"],  # what every running feature shares
    ["gk.accounts", "gk.claim", "gk.settings", "gk.localtime", "gk.security", "gk.clikit"],
    ["gk.events", "gk.pools", "gk.hw.tune", "gk.store", "gk.config", "gk.locale", "gk.hublag", "gk.mail", "gk"],
]


def _layer(module: str) -> int | None:
    best: tuple[int, int] | None = None
    for i, prefixes in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and (best is None or len(p) > best[1]):
                best = (i, len(p))
    return best[0] if best else None


def _name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_name(p): p for p in ROOT.rglob("*.py")}


def _edges(path: Path, modules: dict[str, Path]) -> set[str]:
    """Module-level imports of gk modules (``from gk.x import y`` is gk.x.y when y is a module)."""
    out: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if not node.module.startswith("gk"):
                continue
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                out.add(sub if sub in modules else node.module)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("gk")}
    return {m for m in out if m in modules}


def test_every_module_has_a_layer() -> None:
    unplaced = sorted(m for m in _modules() if _layer(m) is None)
    assert not unplaced, f"place these in LAYERS (and docs/architecture.md): {unplaced}"


def test_no_module_imports_upward() -> None:
    modules = _modules()
    upward = []
    for name, path in modules.items():
        mine = _layer(name)
        for target in _edges(path, modules):
            theirs = _layer(target)
            if mine is not None and theirs is not None and theirs < mine:
                upward.append(f"{name} (layer {mine}) imports {target} (layer {theirs})")
    assert not upward, "upward imports at module level:\n" + "\n".join(sorted(upward))


def test_module_level_imports_form_no_cycle() -> None:
    modules = _modules()
    graph = {name: _edges(path, modules) - {name} for name, path in modules.items()}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(n: str) -> None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                cycles.append(stack[stack.index(m) :] + [m])
            elif m not in state:
                visit(m)
        stack.pop()
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_checker_sees_an_upward_import_and_a_cycle(tmp_path: Path) -> None:
    """The scanner can fail: a planted upward import and a planted cycle are found."""
    fake = {"gk.mail.mailbox.x": tmp_path / "x.py", "gk.web.y": tmp_path / "y.py"}
    fake["gk.mail.mailbox.x"].write_text("from gk.web import y\n")
    fake["gk.web.y"].write_text("import gk.mail.mailbox.x\n")
    assert _edges(fake["gk.mail.mailbox.x"], fake) == {"gk.web.y"}
    assert _edges(fake["gk.web.y"], fake) == {"gk.mail.mailbox.x"}
    layer_x, layer_y = _layer("gk.mail.mailbox.x"), _layer("gk.web.y")
    assert layer_x is not None and layer_y is not None and layer_y < layer_x
