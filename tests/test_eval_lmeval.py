"""lm-eval stage: task planning, local task construction and a real simple_evaluate run on the tiny model."""

from __future__ import annotations

import json

import pytest
import yaml

from eval.lmeval import Options as LmevalOptions
from eval.lmeval import derive_rows, main, task_plan, write_local_tasks
from scalebio.common.runtime import ConfigError, DataError


def test_task_plan_groups_paper_tasks_by_fewshot():
    plan = task_plan(["mmlu", "arc_challenge", "truthfulqa_mc2", "target_em"], hub=True)
    assert plan == [(5, ["mmlu"]), (25, ["arc_challenge"]), (0, ["truthfulqa_mc2", "scalebio_target_em"])]
    assert task_plan(["target_mc", "target_em"], hub=False) == [(0, ["scalebio_target_mc", "scalebio_target_em"])]
    with pytest.raises(ConfigError, match="hub"):
        task_plan(["mmlu"], hub=False)
    with pytest.raises(ConfigError, match="not known"):
        LmevalOptions(tasks=["hellaswag"]).validate()


def test_derive_rows_math_and_dialogue_records():
    math = [
        {
            "id": str(i),
            "prompt": f"What is {i}+1?",
            "response": f"The answer is $\\boxed{{{i + 1}}}$.",
            "answer": str(i + 1),
        }
        for i in range(6)
    ]
    rows = derive_rows(math, n_distractors=3, seed=0, where="test.jsonl")
    assert [r["question"] for r in rows] == [m["prompt"] for m in math]
    for r in rows:
        assert len(r["choices"]) == 4 and len(set(r["choices"])) == 4
        assert r["choices"][r["label"]] == r["answer"]
    assert rows == derive_rows(math, 3, 0, "x")  # seeded
    assert [r["choices"] for r in rows] != [r["choices"] for r in derive_rows(math, 3, 1, "x")]
    dialogue = [
        {
            "id": "a",
            "messages": [{"role": "user", "content": "Hola"}, {"role": "assistant", "content": "Hola, amigo."}],
            "answer": "Hola, amigo.",
        },
        {
            "id": "b",
            "messages": [{"role": "user", "content": "Adios"}, {"role": "assistant", "content": "Hasta luego."}],
            "answer": "Hasta luego.",
        },
    ]
    rows = derive_rows(dialogue, 3, 0, "x")
    assert rows[0]["question"] == "Hola" and sorted(rows[0]["choices"]) == ["Hasta luego.", "Hola, amigo."]
    with pytest.raises(DataError, match="same answer"):
        derive_rows([dialogue[0], {**dialogue[0], "id": "c"}], 3, 0, "x")


def test_task_yaml_points_at_run_folder(denoise_data_dir, tmp_path):
    task_dir, em_filter = write_local_tasks(str(denoise_data_dir), tmp_path, LmevalOptions(max_gen_toks=7))
    assert em_filter == "boxed"
    em = yaml.safe_load((task_dir / "target_em.yaml").read_text())
    data_file = em["dataset_kwargs"]["data_files"]["test"]
    assert data_file == str((task_dir / "target.jsonl").resolve())
    assert em["generation_kwargs"]["max_gen_toks"] == 7
    mc = yaml.safe_load((task_dir / "target_mc.yaml").read_text())
    assert mc["task"] == "scalebio_target_mc" and mc["output_type"] == "multiple_choice"
    assert sum(1 for _ in open(data_file)) == 32


def test_lmeval_run_on_tiny_model(tiny_model_dir, denoise_data_dir, tmp_path):
    out = tmp_path / "lmeval"
    argv = ["--model", str(tiny_model_dir), "--out", str(out), "--data", str(denoise_data_dir)]
    summary = main([*argv, "--options", json.dumps({"limit": 4, "max_gen_toks": 8})])
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["metric"] == "target_em/exact_match,boxed" and on_disk["n"] == 4
    assert on_disk["grader"].startswith("lm-eval 0.4") and on_disk["comparable_to_paper"] is False
    assert set(on_disk["tasks"]) == {"target_em", "target_mc"} and summary["value"] == on_disk["value"]
    assert 0.0 <= on_disk["tasks"]["target_mc"]["value"] <= 1.0
    full = json.loads((out / "lmeval_results.json").read_text())
    for key in ("results", "configs", "versions", "n-shot", "n-samples", "higher_is_better"):
        assert key in full
    res = full["results"]["scalebio_target_mc"]
    assert {"acc,none", "acc_stderr,none", "acc_norm,none"} <= set(res)
    assert full["n-shot"]["scalebio_target_em"] == 0
    samples = [json.loads(line) for line in (out / "samples_scalebio_target_mc.jsonl").read_text().splitlines()]
    assert len(samples) == 4 and samples[0]["doc"]["choices"][samples[0]["doc"]["label"]] == samples[0]["doc"]["answer"]


def test_lmeval_bad_model_folder(tmp_path, denoise_data_dir, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SystemExit) as exc:
        main(
            [
                "--model",
                str(empty),
                "--out",
                str(tmp_path / "o"),
                "--data",
                str(denoise_data_dir),
                "--options",
                '{"tasks": ["target_mc"]}',
            ]
        )
    assert exc.value.code == 2 and "config.json" in capsys.readouterr().err
    assert not (tmp_path / "o" / "summary.json").exists()
