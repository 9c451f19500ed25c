"""`python -m scalebio check-reference` on small synthetic tables: a cell outside the tolerance is named (table, row,
column, both values), numbers inside the tolerance and timing columns pass, missing tables and rows fail; and
`make check-reference` runs the default config into its own folder before comparing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scalebio.pipeline.reference import check_reference, main

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

DOWNSTREAM = """\
model,method,evaluation,metric,mean,sd,seeds,diff_low
tiny,uniform,testloss,test_loss,5.687,0.02998,3,
tiny,less,testloss,test_loss,5.579,0.04583,3,-0.288
"""
COST = """\
model,method,seeds,wall_time_s,wall_time_s_sd,tokens
tiny,scalebio,3,30.23,2.038,1.447e+05
"""
CLAIMS = """\
model,claim,measure,value,low,high,verdict,interval over
tiny,ScaleBiO beats less on testloss,ScaleBiO − less,-0.1052,-0.2043,-0.006226,does not hold,seeds (n=3)
"""
RUNTIME = """\
"stage","method","jobs","wall_s","cpu_s"
"select","scalebio","19","754.0","474.1"
"""
PAPER = """\
"method","ours: smollm2-135m, arithmetic miniature (accuracy)"
"Uniform","0.065, 1 seed"
"""


def _tree(root: Path, reference: bool, **edits: tuple[str, str]) -> Path:
    """A results folder (``<exp>/report/*.csv``) or a reference (``<exp>/*.csv``); ``edits``: table -> (old, new)."""
    tables = {"denoise/downstream.csv": DOWNSTREAM, "denoise/cost.csv": COST, "denoise/claims.csv": CLAIMS,
              "report/runtime.csv": RUNTIME, "report/paper_vs_ours_math.csv": PAPER}  # fmt: skip
    for name, text in tables.items():
        old, new = edits.get(name.replace("/", "_").removesuffix(".csv"), ("", ""))
        exp, file = name.split("/")
        path = root / name if reference or exp == "report" else root / exp / "report" / file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.replace(old, new) if old else text)
    return root


def _run(results: Path, reference: Path, capsys, *extra: str) -> tuple[int, str, str]:
    try:
        main(["--results", str(results), "--reference", str(reference), *extra])
        code = 0
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_identical_tables_pass(tmp_path, capsys):
    code, out, _ = _run(_tree(tmp_path / "run", False), _tree(tmp_path / "ref", True), capsys)
    assert code == 0 and out.startswith("ok: 5 tables, ") and "timing columns skipped" in out


def test_a_cell_outside_the_tolerance_is_named_with_both_values(tmp_path, capsys):
    run = _tree(tmp_path / "run", False, denoise_downstream=("5.579", "5.700"))
    code, _, err = _run(run, _tree(tmp_path / "ref", True), capsys)
    assert code == 2
    assert (
        "outside: denoise/downstream.csv: row (model=tiny, method=less, evaluation=testloss, metric=test_loss), "
        "column 'mean': '5.700' vs reference '5.579' (|Δ| 0.121 > 0.0485)"
    ) in err
    assert err.count("outside: ") == 1 and "error: 1 cell(s) or table(s) outside the tolerance" in err


def test_numbers_within_the_tolerance_and_timing_columns_pass(tmp_path, capsys):
    run = _tree(
        tmp_path / "run",
        False,
        denoise_downstream=("5.579,0.04583", "5.620,0.05200"),  # 0.041 nats: within 0.02 + 0.005 * 5.62
        denoise_cost=("30.23,2.038", "95.1,11.7"),  # wall seconds on a slower machine: not compared
        report_runtime=('"754.0","474.1"', '"1754.0","1474.1"'),
        report_paper_vs_ours_math=("0.065, 1 seed", "0.080, 1 seed"),  # a number inside text, within 0.02
    )
    code, out, err = _run(run, _tree(tmp_path / "ref", True), capsys)
    assert code == 0, err


def test_text_numbers_in_text_and_the_tolerance_flag(tmp_path, capsys):
    run = _tree(
        tmp_path / "run",
        False,
        denoise_claims=("does not hold", "inconclusive"),
        report_paper_vs_ours_math=("0.065, 1 seed", "0.065, 2 seeds"),
    )
    code, _, err = _run(run, _tree(tmp_path / "ref", True), capsys)
    assert code == 2 and err.count("outside: ") == 2, err
    assert "column 'verdict': 'inconclusive' vs reference 'does not hold' (text differs)" in err
    assert "'0.065, 2 seeds' vs reference '0.065, 1 seed' (text differs)" in err
    run2 = _tree(tmp_path / "run2", False, denoise_downstream=("5.579", "5.700"))
    assert _run(run2, tmp_path / "ref", capsys, "--tolerance", "0.2")[0] == 0


def test_missing_tables_and_rows_fail_and_new_ones_are_listed(tmp_path, capsys):
    run = _tree(tmp_path / "run", False, denoise_downstream=("tiny,less,", "tiny,rho_loss,"))
    (run / "denoise" / "report" / "claims.csv").unlink()
    (run / "report" / "verdicts.csv").write_text("claim,verdict\nx,holds\n")
    code, out, err = _run(run, _tree(tmp_path / "ref", True), capsys)
    assert code == 2
    assert "outside: denoise/claims.csv: a table of the reference is missing from" in err
    assert (
        "outside: denoise/downstream.csv: row (model=tiny, method=less, evaluation=testloss, metric=test_loss) " in err
    )
    assert "note: report/verdicts.csv: not in the reference (not compared)" in out
    assert "note: denoise/downstream.csv: 1 row(s) not in the reference (not compared)" in out


def test_the_committed_reference_parses_and_matches_itself_in_a_fresh_layout(tmp_path):
    ref = ROOT / "results" / "reference" / "default"
    run = tmp_path / "run"
    for path in ref.glob("*/*.csv"):
        sub = "report" if path.parent.name != "report" else ""
        dest = run / path.parent.name / sub / path.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, dest)
    report = check_reference(run, ref)
    assert not report.failures and report.tables >= 30 and report.cells > 1000


def test_make_check_reference_runs_the_default_config_into_its_own_folder():
    make = subprocess.run(["make", "-n", "check-reference"], cwd=ROOT, capture_output=True, text=True)
    assert make.returncode == 0, make.stderr
    assert "--configfile config/config.yaml" in make.stdout and "--config results_dir=results/check" in make.stdout
    assert "-m scalebio check-reference --results results/check --reference results/reference/default" in make.stdout
    full = subprocess.run(["make", "-n", "check-reference", "REFERENCE=full"], cwd=ROOT, capture_output=True, text=True)
    assert full.returncode == 0, full.stderr
    assert "--configfile config/full.yaml" in full.stdout
    assert "--reference results/reference/full" in full.stdout
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}")
    args = [
        "-n",
        "--forceall",
        "--cores",
        "1",
        "--configfile",
        "config/config.yaml",
        "--config",
        "results_dir=results/check",
    ]
    r = subprocess.run([BIN / "snakemake", *args], cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    from test_workflow import planned_jobs

    files = [f for job in planned_jobs(r.stdout) for f in job["files"]]
    assert files and all(f.startswith(("results/check/", "resources/")) for f in files), [
        f for f in files if not f.startswith(("results/check/", "resources/"))
    ][:5]


@pytest.mark.parametrize("missing", ["--results", "--reference"])
def test_a_missing_folder_is_one_line(missing, tmp_path, capsys):
    folders = {"--results": _tree(tmp_path / "run", False), "--reference": _tree(tmp_path / "ref", True)}
    folders[missing] = tmp_path / "nope"
    code, _, err = _run(folders["--results"], folders["--reference"], capsys)
    assert code == 2 and err.strip() == f"error: {missing} folder '{tmp_path / 'nope'}' does not exist"
