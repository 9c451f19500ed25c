"""The tuning protocol's result: every grid point's tuning score and the value chosen per experiment and method.

    python -m scalebio tune-report --results results/tune --config-json JSON --out results/tune/report

Reads the runs of an expanded tuning config (``scalebio.pipeline.tune``): per grid point, the mean over seeds of
the experiment's first evaluation on the tuning split (``tune.jsonl``), beside the references (uniform). The
chosen point is the best score (ties: the earlier point). Writes ``tune.{csv,md}`` and ``chosen.yaml``
(``{experiment: {method: {knob: value}}}``), which the base config pins.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

from scalebio.common.runtime import DataError, atomic_write_text, main_guard
from scalebio.pipeline.tune import grid_points, parse, references
from scalebio.report.collect import read_json
from scalebio.report.markdown import markdown_table
from scalebio.report.stats import mean_sd


def _score(results: Path, experiment: str, model: str, method: str, evaluation: str, seeds: list[int]) -> dict:
    """Mean ± SD over seeds of one run's tuning score, and whether higher is better."""
    summaries = []
    for seed in seeds:
        path = results / experiment / model / method / f"s{seed}" / "eval" / evaluation / "summary.json"
        summary = read_json(path)
        if summary is None:
            raise DataError(f"tuning run missing: {path} (run the tuning config to the end first)")
        if not str(summary.get("heldout", summary.get("source", "tune.jsonl"))).endswith("tune.jsonl"):
            raise DataError(f"{path} was not scored on the tuning split (tune.jsonl): {summary.get('heldout')}")
        summaries.append(summary)
    mean, sd = mean_sd([s["value"] for s in summaries])
    return {"mean": mean, "sd": sd, "higher_is_better": summaries[0].get("higher_is_better", True),
            "metric": summaries[0]["metric"]}  # fmt: skip


def _diagnostics(results: Path, experiment: str, model: str, variant: str, seeds: list[int]) -> str:
    """ScaleBiO's Σ η_θ, largest log-ratio and clip fractions (from selection.json), else ""."""
    parts = []
    for seed in seeds:
        sel = read_json(results / experiment / model / variant / f"s{seed}" / "selection.json") or {}
        mv, clip = sel.get("movement"), sel.get("clip_fraction")
        if mv and clip:
            parts.append(
                f"Σ η_θ {mv['sum_lr_theta']:.2f}, log-ratio {mv['max_log_ratio']:.2f}, "
                f"clipped u/w {100 * clip['u']:.0f}/{100 * clip['w']:.0f} %"
            )
    return "; ".join(parts)


def tune_report(config: dict, results: Path, out: Path) -> dict:
    tune = parse(config["tune"])
    rows, chosen = [], {}
    points = grid_points(config)
    for exp in tune.experiments:
        spec = config["experiments"][exp]
        model, evaluation = spec["models"][0], spec["evals"][0]
        for ref in references(tune, config, spec):
            if ref in spec["methods"]:
                s = _score(results, exp, model, ref, evaluation, tune.seeds)
                rows.append({"experiment": exp, "method": ref, "variant": ref, "knob": "—", "value": "—", **s,
                             "chosen": "reference", "diagnostics": ""})  # fmt: skip
        for method in dict.fromkeys(p["method"] for p in points if p["experiment"] == exp):
            mine = [p for p in points if p["experiment"] == exp and p["method"] == method]
            scored = [{**p, **_score(results, exp, model, p["variant"], evaluation, tune.seeds)} for p in mine]
            sign = 1 if scored[0]["higher_is_better"] else -1
            best = max(range(len(scored)), key=lambda i: (sign * scored[i]["mean"], -i))
            chosen.setdefault(exp, {})[method] = {scored[best]["knob"]: scored[best]["value"]}
            for i, r in enumerate(scored):
                diag = _diagnostics(results, exp, model, r["variant"], tune.seeds)
                rows.append({**r, "chosen": "chosen" if i == best else "", "diagnostics": diag})
    out.mkdir(parents=True, exist_ok=True)
    cols = ["experiment", "method", "variant", "knob", "value", "metric", "mean", "sd", "higher_is_better", "chosen"]
    csv = ",".join(cols) + "\n" + "".join(",".join(str(r.get(c, "")) for c in cols) + "\n" for r in rows)
    atomic_write_text(out / "tune.csv", csv)
    n = len(tune.seeds)
    md = (
        "# Tuning: each method's main knob on a small grid, scored on the tuning split\n\n"
        f"Score: the experiment's first evaluation on `tune.jsonl` (rows drawn after every other row of the pool; the "
        f"tuning data folders hold no `test.jsonl`), mean over {n} seed{'s' if n != 1 else ''} {tune.seeds}. The "
        "chosen value (best score, ties to the earlier point) is pinned in the base config "
        f"(`{tune.base}`). ScaleBiO's knob is the movement budget Σ η_θ (`theta_movement`; the official math run's "
        "is ≈ 1.17).\n\n"
    )
    md += markdown_table(
        ["experiment", "method", "knob = value", "tuning score (mean ± SD)", "chosen", "ScaleBiO diagnostics"],
        [
            [r["experiment"], r["method"], f"{r['knob']} = {r['value']}" if r["knob"] != "—" else "—",
             f"{r['metric']} {r['mean']:.4f}" + (f" ± {r['sd']:.4f}" if r["sd"] is not None else "")
             + (" (lower is better)" if not r["higher_is_better"] else ""), r["chosen"], r["diagnostics"]]
            for r in rows
        ],
    )  # fmt: skip
    atomic_write_text(out / "tune.md", md)
    atomic_write_text(out / "chosen.yaml", "# written by scalebio.report.tune: pinned in " + tune.base + "\n"
                      + yaml.safe_dump(chosen, sort_keys=True))  # fmt: skip
    return chosen


@main_guard
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m scalebio tune-report", description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", required=True, help="results folder of the tuning config")
    ap.add_argument("--config-json", required=True, help="the expanded tuning config as JSON")
    ap.add_argument("--out", required=True, help="output folder (tune.csv, tune.md, chosen.yaml)")
    a = ap.parse_args(argv)
    tune_report(json.loads(a.config_json), Path(a.results), Path(a.out))


if __name__ == "__main__":
    main()
