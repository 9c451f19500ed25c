"""The tuning protocol: a tuning split that leaves every other split alone, grid expansion, a tuning DAG that never
sees a test set, and configs that pin what the tuning chose.

Modules: `scalebio/pipeline/tune.py`, `scalebio/report/tune.py`.
"""

from __future__ import annotations

import json

import pytest
import yaml
from test_workflow import BIN, ROOT, run

from scalebio.assets import embedded
from scalebio.pipeline.resolve import method_options
from scalebio.pipeline.tune import expand

SMALL = {
    "denoise": {"noise": [0.0, 1.0], "n_per_source": 8, "n_val": 4, "n_test": 4, "n_tune": 4},
    "multilingual": {"languages": ["english", "spanish"], "n_per_source": 8, "n_val": 4, "n_test": 4, "n_tune": 4},
    "arithmetic": {"sources": ["word_add", "word_sub"], "n_per_source": 8, "n_val": 4, "n_test": 4, "n_tune": 4},
    "instructions": {"n_per_source": 4, "n_val": 4, "n_test": 4, "n_tune": 4},
}


def _content(row: dict) -> str:
    return json.dumps({k: v for k, v in row.items() if k != "id"}, sort_keys=True)


@pytest.mark.parametrize("builder", sorted(SMALL))
def test_tuning_rows_leave_the_pool_and_the_other_splits_unchanged(tmp_path, builder):
    """The same options with and without n_tune: byte-identical sources, validation (and test) files; the tuning
    folder holds tune.jsonl and no test.jsonl; no tuning row repeats a test or validation row."""
    opts = SMALL[builder]
    plain = embedded.build(builder, {k: v for k, v in opts.items() if k != "n_tune"}, tmp_path / "plain")
    with_tune = embedded.build(builder, opts, tmp_path / "with", heldout="test")
    tune = embedded.build(builder, opts, tmp_path / "tune", heldout="tune")
    files = sorted(p.relative_to(plain) for p in plain.rglob("*.jsonl"))
    assert "test.jsonl" in map(str, files)
    for f in files:
        assert (with_tune / f).read_bytes() == (plain / f).read_bytes(), f
        if f.name != "test.jsonl":
            assert (tune / f).read_bytes() == (plain / f).read_bytes(), f
    assert not (tune / "test.jsonl").exists() and not (plain / "tune.jsonl").exists()
    rows = [json.loads(x) for x in (tune / "tune.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(r["id"].startswith("tune-") for r in rows)
    held = {
        _content(json.loads(x))
        for f in ("test.jsonl", "validation.jsonl")
        for x in (plain / f).read_text().splitlines()
    }
    assert not {_content(r) for r in rows} & held
    assert json.loads((tune / "card.json").read_text())["heldout"] == "tune"


def test_heldout_tune_without_tuning_rows_is_an_error(tmp_path):
    from scalebio.common.runtime import ConfigError

    with pytest.raises(ConfigError, match="set data.options.n_tune > 0"):
        embedded.build("arithmetic", {"n_per_source": 4, "n_val": 2, "n_test": 2}, tmp_path / "x", heldout="tune")


def test_tuning_config_expands_into_one_variant_per_grid_point():
    cfg = expand(yaml.safe_load((ROOT / "config" / "tune.yaml").read_text()))
    base = yaml.safe_load((ROOT / "config" / "full.yaml").read_text())
    arith = cfg["experiments"]["arithmetic"]
    assert arith["data"]["heldout"] == "tune" and arith["data"]["options"]["n_tune"] == 100
    assert "paper_table" not in arith and cfg["seeds"] == [0]
    assert arith["methods"][0] == "uniform" and "scalebio-t3" in arith["methods"] and "scalebio" not in arith["methods"]
    sb = method_options(cfg, "arithmetic", "scalebio-t3")
    assert sb["theta_movement"] == 11.7 and "lr_theta" not in sb
    assert sb["lisa"] == method_options(base, "arithmetic", "scalebio")["lisa"]  # everything else is the base's
    assert method_options(cfg, "arithmetic", "rho_loss-t2")["holdout"]["epochs"] == 4.0  # SmolLM2's own grid
    assert method_options(cfg, "denoise", "rho_loss-t2")["holdout"]["epochs"] == 16.0
    assert cfg["methods"]["less-t0"] == {"module": "baselines.less"}


def _tiny_tuning_config(folder) -> None:
    """A ci-sized base config and a tuning config over it (2 ScaleBiO points, held-out loss)."""
    base = yaml.safe_load((ROOT / "config" / "ci.yaml").read_text())
    exp = base["experiments"]["denoise"]
    exp.update(methods=["uniform", "scalebio"], evals=["testloss"], budget=16)
    base["methods"] = {"scalebio": dict(base["methods"]["scalebio"], max_steps=2)}
    base["sft"] = dict(base["sft"], max_steps=2)
    base["eval"] = {"testloss": {"batch_size": 8}}
    (folder / "config").mkdir()
    (folder / "config" / "base.yaml").write_text(yaml.safe_dump(base))
    tune = {"tune": {"base": str(folder / "config" / "base.yaml"), "experiments": ["denoise"], "n_tune": 6,
                     "grid": {"scalebio": {"knob": "theta_movement", "values": [0.3, 3.0], "drop": ["lr_theta"]}}}}  # fmt: skip
    (folder / "config" / "tinytune.yaml").write_text(yaml.safe_dump(tune))
    for name in ("Snakefile", "workflow"):
        (folder / name).symlink_to(ROOT / name)


@pytest.mark.integration
def test_the_tuning_dag_never_sees_a_test_set_and_picks_the_best_point(tmp_path):
    _tiny_tuning_config(tmp_path)
    r = run([BIN / "snakemake", "--cores", "all", "--configfile", "config/tinytune.yaml"], cwd=tmp_path, timeout=900)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    results = tmp_path / "results" / "tinytune"
    assert not list(tmp_path.rglob("test.jsonl")), "a tuning run built a test set"
    assert (results / "denoise" / "data" / "tune.jsonl").exists()
    summaries = list(results.glob("denoise/tiny/**/eval/testloss/summary.json"))
    assert len(summaries) == 4  # base, uniform, two grid points
    assert {json.loads(s.read_text())["heldout"] for s in summaries} == {"tune.jsonl"}
    scores = {
        v: json.loads((results / f"denoise/tiny/{v}/s0/eval/testloss/summary.json").read_text())["value"]
        for v in ("scalebio-t0", "scalebio-t1")
    }
    best = min(scores, key=scores.get)  # held-out loss: lower is better
    chosen = yaml.safe_load((results / "report" / "chosen.yaml").read_text())
    assert chosen == {"denoise": {"scalebio": {"theta_movement": {"scalebio-t0": 0.3, "scalebio-t1": 3.0}[best]}}}
    table = (results / "report" / "tune.md").read_text()
    assert "theta_movement = 0.3" in table and "theta_movement = 3.0" in table and "chosen" in table
    sel = json.loads((results / "denoise/tiny/scalebio-t1/s0/selection.json").read_text())
    assert sel["movement"]["sum_lr_theta"] == pytest.approx(3.0)


TUNE = ROOT / "results" / "reference" / "tune" / "chosen.yaml"


@pytest.mark.parametrize("configfile", ["config/config.yaml", "config/full.yaml"])
def test_the_configs_pin_the_values_the_tuning_chose(configfile):
    """Every (experiment, method) the committed tuning chose a value for runs with exactly that value."""
    assert TUNE.exists(), "results/reference/tune/chosen.yaml is missing: run config/tune.yaml and commit its report"
    chosen = yaml.safe_load(TUNE.read_text())
    cfg = yaml.safe_load((ROOT / configfile).read_text())
    checked = 0
    for exp, methods in chosen.items():
        for method, knobs in methods.items():
            if method not in cfg["experiments"][exp]["methods"]:
                continue  # DoReMi on SmolLM2 runs in full.yaml only
            opts = method_options(cfg, exp, method)
            for knob, value in knobs.items():
                node = opts
                for key in knob.split("."):
                    node = node[key]
                assert node == value, (configfile, exp, method, knob, node, value)
                checked += 1
    assert checked >= 12
