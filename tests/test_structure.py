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


# ---- the layers of scalebio/ (scalebio/README.md, "Layers"): a package may import its own modules and any lower layer
LAYERS = [
    ["common"],  # the ground floor: imports nothing else of the project
    ["algorithm", "sft", "assets"],  # siblings: none imports another
    ["pipeline"],  # the workflow's Python half: config resolution, checks, launch planning, tuning expansion
    ["report"],  # the report stages
    ["tools"],  # docs, benchmark, the studies run outside the DAG
    ["cli"],  # python -m scalebio: every command
]
LAYER_OF = {name: i for i, names in enumerate(LAYERS) for name in names}


def _part(module: str) -> str | None:
    """The part of scalebio a module belongs to: its sub-package, ``algorithm`` for the modules at the top of the
    package (ScaleBiO itself), ``cli`` for the command line, ``common`` for the package's own ``__init__`` (it only
    applies the hub policy through ``common.runtime``)."""
    parts = module.split(".")
    if parts[0] != "scalebio":
        return None
    if len(parts) == 1:
        return "common"
    if parts[1] in ("cli", "__main__"):
        return "cli"
    if (ROOT / "scalebio" / parts[1]).is_dir():
        return parts[1]
    return "algorithm"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_modules(path: Path) -> set[str]:
    """Modules a file imports; ``from pkg import name`` counts as ``pkg.name`` when that is a module."""
    out = set()
    for name in _imports(path):
        parts = name.split(".")
        while parts and not ((ROOT.joinpath(*parts).with_suffix(".py")).exists() or ROOT.joinpath(*parts).is_dir()):
            parts.pop()
        if parts:
            out.add(".".join(parts))
    return out


def test_every_scalebio_package_has_a_layer():
    packages = {p.name for p in (ROOT / "scalebio").iterdir() if (p / "__init__.py").exists()}
    assert packages <= set(LAYER_OF), f"packages without a layer in LAYERS: {sorted(packages - set(LAYER_OF))}"


def test_imports_go_down_the_layers_only():
    """No arrow from a lower layer to a higher one, and none between siblings of one layer (the algorithm, sft and
    assets do not import each other); the same order as scalebio/README.md's "Layers"."""
    problems = []
    for path in _files("scalebio"):
        me = _part(_module_name(path))
        for target in _imported_modules(path):
            other = _part(target)
            if other is None or other == me:
                continue
            if LAYER_OF[other] >= LAYER_OF[me]:
                problems.append(f"{path.relative_to(ROOT)} ({me}, layer {LAYER_OF[me]}) imports {target} ({other}, "
                                f"layer {LAYER_OF[other]})")  # fmt: skip
    assert not problems, "\n".join(problems)


def test_the_readme_states_the_same_layers():
    text = (ROOT / "scalebio" / "README.md").read_text()
    section = text.split("### Layers", 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in section.splitlines() if re.match(r"^\s*\d+\. ", ln)]
    assert len(lines) == len(LAYERS), lines
    for line, names in zip(lines, LAYERS):
        for name in names:
            assert f"`{name}" in line, f"scalebio/README.md, Layers: {line!r} does not name {name}"


# ---- method names live in their modules: everything else reads MethodInfo (scalebio.common.registry)
METHOD_MODULES = {str(p.relative_to(ROOT)) for p in (ROOT / "scalebio").glob("*.py")} - {
    "scalebio/__init__.py", "scalebio/__main__.py", "scalebio/cli.py"
} | {str(p.relative_to(ROOT)) for p in (ROOT / "baselines").glob("*.py")}  # fmt: skip
"""Where a method may name itself: its own modules (ScaleBiO: the algorithm at the top of scalebio/, its method
module included; the baselines, with their shared plumbing and CLI alias)."""
ALGORITHM_TOOLS = {"scalebio/tools/benchmark.py", "scalebio/tools/lisa_study.py", "scalebio/tools/stability_study.py"}
"""ScaleBiO's own studies and benchmark: they run its trainer directly, never through the registry, and name their
modes ("scalebio", "scalebio_lisa") after it; part of the method's tooling, not a consumer of the registry."""
NOT_A_METHOD = {
    ("scalebio/pipeline/reference.py", "reference"): "the committed reference results folder, not RHO-LOSS's alias",
    ("scalebio/report/tune.py", "reference"): "the tuning table's word for a run kept unchanged beside the grid",
    ("scalebio/common/runtime.py", "scalebio"): "the package's logger, which every module logger propagates to",
    ("eval/judge_trust.py", "reference"): "MT-Bench's reference answer, one of the judged candidates",
}
"""String literals that spell a method's name but mean something else, each with the reason."""


def _method_names() -> set[str]:
    import tomllib

    return set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["scalebio.methods"])


def test_no_method_name_outside_its_module_the_registry_the_configs_and_the_docs():
    """A stage that treats a method specially reads its MethodInfo; a name written in code elsewhere (a launch table, a
    list of baselines, a paper-table order) would silently leave out the next method. Checked: every string constant
    of the Python code in scalebio/ and eval/ and every quoted string of the workflow's rules."""
    names = _method_names()
    problems = []
    for path in _files("scalebio") + _files("eval"):
        rel = str(path.relative_to(ROOT))
        if rel in METHOD_MODULES | ALGORITHM_TOOLS:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in names and (rel, node.value) not in NOT_A_METHOD:
                problems.append(f"{rel}:{node.lineno}: {node.value!r}")
    for path in [ROOT / "Snakefile", *sorted((ROOT / "workflow").rglob("*.smk"))]:
        for i, line in enumerate(path.read_text().splitlines(), 1):
            for name in re.findall(r"[\"']([\w-]+)[\"']", line.split("#")[0]):
                if name in names:
                    problems.append(f"{path.relative_to(ROOT)}:{i}: {name!r}")
    assert not problems, "method names outside their modules:\n" + "\n".join(problems)


def test_every_registered_method_declares_what_it_is():
    from scalebio.common.registry import method_info, registered

    for name in _method_names():
        info = method_info(name)
        assert info.name in registered() and registered()[info.name] == registered()[name], name
        assert info.role in ("method", "baseline", "reference_point") and info.display, name
    assert [n for n in _method_names() if method_info(n).role == "method"] == ["scalebio"]


# ---- size: the cap the history cites, for modules and for functions
MODULE_LINES, FUNCTION_LINES = 500, 80


def test_no_module_over_500_lines_and_no_function_over_80():
    problems = []
    for path in _files("scalebio") + _files("baselines") + _files("eval"):
        text = path.read_text()
        if len(text.splitlines()) > MODULE_LINES:
            problems.append(f"{path.relative_to(ROOT)}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > FUNCTION_LINES:
                    problems.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.name} has {length} lines")
    assert not problems, "\n".join(problems)


# ---- tests mirror the layout: a module's tests are found by its path
NO_TEST_FILE = {
    "scalebio/__main__.py": "two lines that call cli.main; every CLI test runs through it",
    "scalebio/common/ifeval_checkers.py": "a re-export of the instruction checks, tested with eval/ifeval and the "
    "instructions builder (tests/test_assets.py)",
    "baselines/__main__.py": "the alias `python -m baselines select`, one call of the registry's main",
    "scalebio/tools/lisa_study.py": "a study run by hand (~100 s per run, minutes in all); what it measures is the "
    "trainer and LISA (tests/test_scalebio_trainer.py, tests/test_common_lisa.py), its numbers are in scalebio/README.md",
    "scalebio/tools/stability_study.py": "the same: read-outs of lisa_study's runs (their averaging is "
    "tests/test_scalebio_weights.py's); its numbers are in scalebio/README.md",
    "eval/judge_trust.py": "a measurement of the offline judge run by hand (results/reference/judge_trust.json); the "
    "judges it measures are tested in tests/test_eval_mtbench.py",
}
"""Modules without a test file of their own, with the reason."""


def _test_files() -> dict[str, str]:
    return {p.name: p.read_text() for p in (ROOT / "tests").glob("test_*.py")}


def _test_file_of(rel: str) -> str:
    """The rule: ``scalebio/<pkg>/<mod>.py`` -> ``tests/test_<pkg>_<mod>.py``; ``scalebio/<mod>.py`` (the algorithm)
    -> ``tests/test_scalebio_<mod>.py``; ``baselines/<mod>.py`` / ``eval/<mod>.py`` -> ``tests/test_baselines_<mod>.py``
    / ``tests/test_eval_<mod>.py``."""
    parts = Path(rel).with_suffix("").parts
    return f"test_{parts[-2]}_{parts[-1].lstrip('_')}.py"


def test_each_module_has_a_test_file_or_a_stated_reason():
    """Findable by rule: a module's tests are in the file ``_test_file_of`` names, or — where one file tests several
    modules at once (the report, the CLI's bad inputs) — a test file's docstring names the module's path; a module
    with neither says why in NO_TEST_FILE."""
    tests = _test_files()
    docstrings = {name: ast.get_docstring(ast.parse(text)) or "" for name, text in tests.items()}
    missing = []
    for path in _files("scalebio") + _files("baselines") + _files("eval"):
        rel = str(path.relative_to(ROOT))
        if path.name == "__init__.py" or rel in NO_TEST_FILE:
            continue
        if _test_file_of(rel) in tests or any(rel in doc for doc in docstrings.values()):
            continue
        missing.append(f"{rel}: no tests/{_test_file_of(rel)} and no test file's docstring names it")
    assert not missing, "\n".join(missing)
    stale = [m for m in NO_TEST_FILE if not (ROOT / m).exists()]
    assert not stale, f"NO_TEST_FILE names modules that no longer exist: {stale}"


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
