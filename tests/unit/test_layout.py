"""The tree keeps its layers: signaling -> agent -> models, each importing only downward, and
turn/ standing apart (signaling and agent may use it; it uses none of them)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {
    "models": {"agent", "signaling", "turn"},
    "agent": {"signaling"},
    "turn": {"agent", "signaling", "models"},
    "signaling": set(),
}
"""Top-level packages that each package must never import, at any depth of its code."""


def imported_modules(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in a file under `root`, inside functions too,
    in line order; relative imports are resolved against the file's package."""
    package = path.relative_to(root).with_suffix("").parts[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else ()
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.append((node.lineno, module))
    return sorted(found)


def upward_imports(package: str, root: Path = ROOT) -> list[str]:
    """`file:line imports module` for each import of `package` that points upward."""
    bad = []
    for path in sorted((root / package).rglob("*.py")):
        for line, module in imported_modules(path, root):
            if module.split(".")[0] in FORBIDDEN[package]:
                bad.append(f"{path.relative_to(root).as_posix()}:{line} imports {module}")
    return bad


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layers_import_only_downward(package: str) -> None:
    assert upward_imports(package) == []


def test_the_check_sees_imports_inside_functions_and_relative_ones(tmp_path: Path) -> None:
    probe = tmp_path / "models" / "data" / "probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text(
        "from . import manifest\nfrom ..speech import vad\n\n\ndef late():\n"
        "    import signaling.app\n    from agent.session import Session\n"
    )
    assert imported_modules(probe, tmp_path) == [
        (1, "models.data"),
        (2, "models.speech"),
        (6, "signaling.app"),
        (7, "agent.session"),
    ]
    assert upward_imports("models", tmp_path) == [
        "models/data/probe.py:6 imports signaling.app",
        "models/data/probe.py:7 imports agent.session",
    ]
