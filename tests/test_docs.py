"""Documentation that must not drift: the config option reference, the README's first screen and its rerun and
check-config sections, the default profile's place, and tests/README.md's bad-input table against the tests.

Modules: `scalebio/tools/docs.py`.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_config_readme_option_reference_is_generated_from_the_code():
    r = subprocess.run(
        [sys.executable, "-m", "scalebio.tools.docs", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr


def test_config_readme_documents_every_schema_key():
    import yaml

    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    text = (ROOT / "config/README.md").read_text()
    for key in schema["properties"]:
        assert f"`{key}" in text, f"config/README.md does not document top-level key '{key}'"
    exp = schema["properties"]["experiments"]["additionalProperties"]["properties"]
    for key in exp:
        assert f"`{key}`" in text, f"config/README.md does not document experiments.<name>.{key}"


def test_readme_first_screen_has_the_two_commands():
    first_screen = "\n".join((ROOT / "README.md").read_text().splitlines()[:25])
    assert "make reproduce" in first_screen and "make test" in first_screen
    makefile = (ROOT / "Makefile").read_text()
    assert "\nreproduce: setup" in makefile and "\ntest: setup" in makefile
    assert (ROOT / ".ci/run").read_text().strip().endswith("make test")


def test_full_config_is_the_default_with_three_seeds_everywhere():
    """full.yaml = config.yaml with 3 seeds for every experiment and DoReMi also on SmolLM2, with its options (the
    default leaves both out to fit 60 minutes)."""
    import yaml

    default = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    full = yaml.safe_load((ROOT / "config" / "full.yaml").read_text())
    assert full["seeds"] == [0, 1, 2]
    # every experiment runs >= 3 seeds: the 3 it inherits, or more of its own (the stability study's 5)
    assert all(len(e.get("seeds", full["seeds"])) >= 3 for e in full["experiments"].values())
    for name, e in default["experiments"].items():
        if len(e.get("seeds", default["seeds"])) < 3:
            e.pop("seeds")
        extra = [m for m in full["experiments"][name]["methods"] if m not in e["methods"]]
        assert extra in ([], ["doremi"]), (name, extra)
        e["methods"] += extra
        for m in extra:  # DoReMi's own options come with it (a method_options key must be a method the experiment runs)
            e.setdefault("method_options", {})[m] = full["experiments"][name]["method_options"][m]
    assert full == default, "config/full.yaml must equal config/config.yaml except for seeds and DoReMi: change both"


# ---- tests/README.md: every quoted message is one its test asserts -------------------------------------------------
def _cells(row: str) -> list[str]:
    """The cells of a markdown table row (a `|` inside a code span or escaped as `\\|` does not split)."""
    cells, cell, code = [], "", False
    row = row.strip().strip("|")
    i = 0
    while i < len(row):
        c = row[i]
        if c == "\\" and row[i + 1 : i + 2] == "|":
            cell += "|"
            i += 2
            continue
        if c == "`":
            code = not code
        if c == "|" and not code:
            cells.append(cell.strip())
            cell = ""
        else:
            cell += c
        i += 1
    return [*cells, cell.strip()]


def _bad_input_rows() -> list[list[str]]:
    text = (ROOT / "tests" / "README.md").read_text()
    section = text.split("## Bad inputs and what each gets", 1)[1].split("\n## ", 1)[0]
    return [_cells(line) for line in section.splitlines() if re.match(r"^\| \d+ \|", line)]


def test_tests_readme_quotes_the_messages_its_tests_assert():
    """Each row of the bad-input table names its test file(s) and quotes, in backticks, what that test asserts; a
    quote is split at placeholders (`<path>`, `...`) and every fragment of 4 or more characters must appear in the
    named test file(s) (backslashes of regex escapes ignored). "same" = the files of the row above."""
    rows = _bad_input_rows()
    assert len(rows) >= 70, len(rows)
    assert [int(r[0]) for r in rows] == list(range(1, len(rows) + 1))
    files: list[Path] = []
    problems = []
    for number, bad, gets, test in rows:
        names = re.findall(r"`([^`]+)`", test)
        if names:
            files = [ROOT / "tests" / (n.split("::")[0].removesuffix(".py") + ".py") for n in names]
        else:
            assert test.startswith("same"), f"row {number}: name a test file or say 'same'"
        missing = [f for f in files if not f.exists()]
        assert not missing, f"row {number}: {missing} do not exist"
        source = "".join(f.read_text() for f in files).replace("\\", "")
        quotes = re.findall(r"`([^`]+)`", gets)
        if not quotes:
            problems.append(f"row {number} ({bad}): quotes nothing its test asserts")
        for quote in quotes:
            for fragment in re.split(r"<[^>]+>|\.\.\.|…", quote.replace("\\", "")):
                if len(fragment.strip()) >= 4 and fragment.strip() not in source:
                    problems.append(f"row {number}: {fragment.strip()!r} does not appear in {[f.name for f in files]}")
    assert not problems, "\n".join(problems)


def test_readme_says_what_triggers_a_rerun_and_how_to_force_one():
    text = (ROOT / "README.md").read_text()
    assert "### What triggers a rerun" in text
    section = text.split("### What triggers a rerun", 1)[1].split("\n## ", 1)[0]
    for needle in ("--rerun-triggers", "--forcerun select", "-R finetune", "scalebio/", "re-runs nothing", "params"):
        assert needle in section, needle


def test_the_default_profile_is_where_snakemake_looks_for_it():
    """Snakemake 9 reads `profiles/<name>` relative to the working directory and beside the Snakefile (its cli.py);
    the default profile is there, prints failed jobs' logs, sets no global resources (which would cap SLURM jobs), and
    a plain `snakemake -n` from the repository uses it."""
    import snakemake.cli
    import yaml

    source = Path(snakemake.cli.__file__).read_text()
    assert 'Path("profiles") / workflow_profile' in source and "snakefile.parent.joinpath(" in source
    profile = ROOT / "profiles" / "default" / "config.yaml"
    assert profile.exists() and not (ROOT / "workflow" / "profiles" / "default").exists()
    settings = yaml.safe_load(profile.read_text())
    assert settings["show-failed-logs"] is True and "resources" not in settings
    assert "beside the Snakefile" in profile.read_text()
    docs = [(ROOT / "README.md").read_text(), (ROOT / "Makefile").read_text()]
    assert not any("workflow/profiles/default" in t for t in docs)
    r = subprocess.run(
        [Path(sys.executable).parent / "snakemake", "-n", "--cores", "1", "--configfile", "config/ci.yaml"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0 and "Using workflow specific profile profiles/default" in r.stderr, r.stderr[-2000:]


def test_readme_leads_to_check_config_first_and_says_what_a_missing_model_does():
    readme = (ROOT / "README.md").read_text()
    direct = readme.split("## Using Snakemake directly", 1)[1].split("\n## ", 1)[0]
    assert "python -m scalebio check-config" in direct and "make check CONFIG=" in direct
    assert "A missing model therefore stops the run before any job starts" in direct
    assert "\ncheck: setup\n\t$(PY) -m scalebio check-config $(CONFIG)" in (ROOT / "Makefile").read_text()


# ---- the maps: every module that exists is named where a reader looks for it ----------------------------------------
def _modules(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.py") if p.stem != "__init__")


def _packages() -> list[str]:
    return sorted(p.name for p in (ROOT / "scalebio").iterdir() if (p / "__init__.py").exists())


def _names(text: str, name: str, suffix: str = "") -> bool:
    """``name`` (or ``name`` + suffix) quoted as code: `name`, ``name``, `name.py`."""
    return re.search(rf"`{{1,2}}{re.escape(name)}(?:{re.escape(suffix)})?`{{1,2}}", text) is not None


def _table_row(text: str, first_cell: str) -> str:
    row = next((ln for ln in text.splitlines() if ln.startswith(f"| {first_cell} |")), None)
    assert row is not None, f"no table row for {first_cell}"
    return row


def test_scalebio_readme_map_names_every_module():
    text = (ROOT / "scalebio" / "README.md").read_text()
    section = text.split("## Map", 1)[1].split("\n## ", 1)[0]
    missing = [f"{m}.py" for m in _modules(ROOT / "scalebio") if not _names(section, m, ".py")]
    for package in _packages():
        row = _table_row(section, f"`{package}/`")
        missing += [f"{package}/{m}" for m in _modules(ROOT / "scalebio" / package) if not _names(row, m)]
    assert not missing, f"scalebio/README.md's map does not name {missing}"


def test_readme_folder_table_names_every_package_and_module():
    """The README's folder table: scalebio's packages and top-level modules, every baseline and evaluation module (the
    per-module map of scalebio's packages is scalebio/README.md's, checked above)."""
    text = (ROOT / "README.md").read_text()
    row = _table_row(text, "`scalebio/`")
    missing = [f"{p}/" for p in _packages() if not _names(row, p, "/")]
    missing += [f"{m}.py" for m in _modules(ROOT / "scalebio") if not _names(row, m, ".py")]
    for folder in ("baselines", "eval"):
        row = _table_row(text, f"`{folder}/`")
        missing += [f"{folder}/{m}" for m in _modules(ROOT / folder) if not _names(row, m, ".py")]
    assert not missing, f"README.md's folder table does not name {missing}"


def test_package_docstrings_name_every_module():
    import ast

    missing = []
    folders = [ROOT / "scalebio" / p for p in _packages()] + [ROOT / "baselines", ROOT / "eval", ROOT / "scalebio"]
    for folder in folders:
        doc = ast.get_docstring(ast.parse((folder / "__init__.py").read_text())) or ""
        missing += [f"{folder.relative_to(ROOT)}/{m}" for m in _modules(folder) if not _names(doc, m, ".py")]
        if folder == ROOT / "scalebio":
            missing += [f"scalebio/{p}/" for p in _packages() if not _names(doc, p, "/")]
    assert not missing, f"package docstrings do not name {missing}"


def test_config_readme_lists_every_builder_and_the_eval_readme_every_evaluation():
    from scalebio.assets.embedded import BUILDERS
    from scalebio.common.registry import EVAL_GROUP, registered

    config = (ROOT / "config" / "README.md").read_text()
    builders_row = next(ln for ln in config.splitlines() if ln.startswith("| `data` |"))
    assert all(b in builders_row for b in BUILDERS), sorted(BUILDERS)
    table = config.split("### Embedded data builders", 1)[1].split("\n### ", 1)[0]
    assert all(f"| `{b}` |" in table for b in BUILDERS), sorted(BUILDERS)
    evals = (ROOT / "eval" / "README.md").read_text()
    assert all(f"eval.{e}" in evals or f"eval/{e}.py" in evals for e in registered(EVAL_GROUP))


def test_readme_pipeline_diagram_names_the_default_runs_evaluations():
    import yaml

    default = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    evals = {e for spec in default["experiments"].values() for e in spec.get("evals", [])}
    diagram = (ROOT / "README.md").read_text().split("## The pipeline", 1)[1].split("```", 2)[1]
    assert all(e in diagram for e in evals), (sorted(evals), diagram)
