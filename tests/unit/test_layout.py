"""The tree is what docs/architecture.md says: layers signaling -> agent -> models, each
importing only downward, turn/ standing apart (signaling and agent may use it; it uses none of
them), and every file the map names where it says."""

from __future__ import annotations

import ast
import re
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


ARCHITECTURE = ROOT / "docs" / "architecture.md"
TOP = "agent|models|signaling|turn|static|benchmarks|tests|docs"
PATH = re.compile(rf"(?<![\w./-])(?:{TOP})/[\w./-]*[\w/]|(?<![\w./-])(?:{TOP})/")
FILE_NAME = re.compile(r"(?<![\w./-])[\w-]+\.(?:py|js|html|css|md)\b")


def named_paths(markdown: str) -> set[str]:
    """The paths a document names: every `room/...` path, and in its code blocks the bare
    file names of an entry (a line that starts with a path, and the indented lines after
    it), which live in that entry's folder."""
    names = set(PATH.findall(markdown))
    for block in re.findall(r"```\n(.*?)```", markdown, re.S):
        folder = None
        for line in block.splitlines():
            if line and not line[0].isspace():
                head = PATH.match(line)
                folder = None
                if head:
                    path = head.group()
                    folder = path if path.endswith("/") else path.rsplit("/", 1)[0] + "/"
            if folder is not None:
                names |= {folder + name for name in FILE_NAME.findall(line)}
    return names


def test_the_architecture_map_names_only_files_that_exist() -> None:
    names = named_paths(ARCHITECTURE.read_text(encoding="utf-8"))
    assert {"agent/session.py", "agent/aiortc_fixes/opus_codec.py", "turn/cli.py"} <= names
    assert sorted(n for n in names if not (ROOT / n).exists()) == []


def test_the_agents_top_level_holds_only_the_call_path_the_map_lists() -> None:
    """A module added to agent/ itself must be placed in the map's call path or its rooms."""
    named = named_paths(ARCHITECTURE.read_text(encoding="utf-8"))
    modules = {f"agent/{p.name}" for p in (ROOT / "agent").glob("*.py") if p.stem != "__init__"}
    assert sorted(modules - named) == []
