"""The house rules: the import graph between the top-level packages, and references that resolve in the repo."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULE_PATH = re.compile(r"^(baselines|eval)(\.[A-Za-z_]\w*)+(:\w+)?$")  # "eval" alone is a folder name


def _imports(path: Path) -> list[str]:
    """Every module a file imports (absolute names; relative imports are not used in this repository)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"
            out.append(node.module)
            out += [f"{node.module}.{a.name}" for a in node.names]
    return out


def _files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_scalebio_imports_neither_baselines_nor_eval():
    """Not by an import statement and not by a module name in a string (importlib): methods and evaluations
    reach scalebio only through the entry points declared in pyproject.toml."""
    for path in _files("scalebio"):
        for name in _imports(path):
            assert name.split(".")[0] not in ("baselines", "eval"), f"{path.relative_to(ROOT)} imports {name}"
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert not MODULE_PATH.match(node.value), f"{path.relative_to(ROOT)} names module {node.value!r}"


@pytest.mark.parametrize("package, other", [("baselines", "eval"), ("eval", "baselines")])
def test_baselines_and_eval_use_only_the_shared_layer(package, other):
    for path in _files(package):
        for name in _imports(path):
            top = name.split(".")[0]
            assert top != other, f"{path.relative_to(ROOT)} imports {name}"
            if top == "scalebio" and name != "scalebio":
                assert name.startswith("scalebio.common"), (
                    f"{path.relative_to(ROOT)} imports {name} (not scalebio.common)"
                )


def _tracked_text_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    out += subprocess.run(
        ["git", "ls-files", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    suffixes = {".py", ".md", ".smk", ".yaml", ".yml", ".rst", ".toml", ".txt"}
    return [ROOT / f for f in out if (ROOT / f).suffix in suffixes or Path(f).name in ("Snakefile", "Makefile")]


def test_no_reference_points_outside_the_repository():
    for path in _tracked_text_files():
        text = path.read_text()
        if path.name == "test_structure.py":
            continue  # this file spells the forbidden strings
        assert "method notes" not in text.lower(), f"{path.relative_to(ROOT)} cites 'method notes'"
        assert "shared/notes" not in text, f"{path.relative_to(ROOT)} points at shared/notes"


def test_every_section_reference_resolves_to_the_method_document():
    headings = set(re.findall(r"^#+ §(\d+(?:\.\d+)?)", (ROOT / "scalebio" / "METHOD.md").read_text(), re.M))
    rows = set(re.findall(r"^\| (\d+) \|", (ROOT / "scalebio" / "METHOD.md").read_text(), re.M))
    assert {"1", "2", "4", "5", "14"} <= headings
    for path in _tracked_text_files():
        for m in re.finditer(r"§(\d+(?:\.\d+)?)(?:\s*#(\d+))?", path.read_text()):
            section, row = m.group(1), m.group(2)
            assert section in headings, f"{path.relative_to(ROOT)}: §{section} is not a heading of scalebio/METHOD.md"
            if row is not None:
                assert section == "14" and row in rows, f"{path.relative_to(ROOT)}: §{section} #{row} does not exist"
