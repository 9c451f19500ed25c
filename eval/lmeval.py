"""lm-eval (EleutherAI lm-evaluation-harness 0.4) on a model folder, via ``lm_eval.simple_evaluate``.

Two kinds of tasks:
- the paper's standard tasks (hub only): ``mmlu`` 5-shot, ``arc_challenge`` 25-shot, ``truthfulqa_mc2`` 0-shot;
- custom tasks over the experiment's own ``test.jsonl`` (offline): ``target_em`` (generation, exact
  match of the target-domain answer) and ``target_mc`` (multiple choice: the gold answer among the gold
  and 3 distractor answers drawn, seeded, from other test items). Their lm-eval YAMLs are templates in
  ``eval/tasks/``; each run writes a derived JSONL and the filled YAMLs (absolute paths) into
  ``<out>/tasks/`` and loads them with ``TaskManager(include_path=<out>/tasks)``.

    python -m eval.lmeval --model resources/models/tiny --out /tmp/ev/lmeval --data results/denoise/data \
        --options '{"limit": 8}'

Backends: lm-eval's ``hf`` model (under a launcher with N processes lm-eval shards the documents itself) or
its ``vllm`` model (``tensor_parallel_size`` GPUs, when vLLM is installed: ``requirements-vllm.txt``).

Outputs: ``lmeval_results.json`` (lm-eval's full results: configs, versions, n-shot, stderr),
``samples_<task>.jsonl`` (per-document logs), ``summary.json``.
"""

from __future__ import annotations

import json
import random
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from eval.common import cli_main, device_name, heldout_file
from eval.generation import resolve_backend
from scalebio.common.config import GenerationOptions
from scalebio.common.data import prompt_messages, read_jsonl
from scalebio.common.modeling import load_failure, resolve_model
from scalebio.common.runtime import (
    AssetError,
    ConfigError,
    DataError,
    atomic_write_json,
    hub_enabled,
    is_main,
    write_jsonl,
)

TASK_TEMPLATES = Path(__file__).with_name("tasks")
# Paper's optional lm-eval script (METHOD.md §12): task -> (num_fewshot, primary metric key).
PAPER_TASKS = {"mmlu": (5, "acc,none"), "arc_challenge": (25, "acc_norm,none"), "truthfulqa_mc2": (0, "acc,none")}
# Suite task -> (template file, lm-eval task name, primary metric key without the filter part).
LOCAL_TASKS = {
    "target_em": ("target_em.yaml", "scalebio_target_em", "exact_match"),
    "target_mc": ("target_mc.yaml", "scalebio_target_mc", "acc,none"),
}


@dataclass
class Options(GenerationOptions):
    """Options of the lm-eval evaluation; batch size, dtype, backend (lm-eval's model type) and GPUs are
    ``GenerationOptions``'."""

    tasks: list[str] = field(default_factory=lambda: ["target_em", "target_mc"])
    """Tasks to run: target_em / target_mc (local, from test.jsonl) and/or mmlu / arc_challenge /
    truthfulqa_mc2 (paper, hub only). The first one gives summary.json's value."""
    limit: int | None = None
    """Documents per task (None = all)."""
    max_gen_toks: int = 32
    """Generation budget of target_em."""
    apply_chat_template: bool = True
    """Render contexts with the model's chat template (the suite's models are chat-tuned; set false for
    the paper's base-model-style lm-eval runs)."""
    n_distractors: int = 3
    """Wrong choices per target_mc question, drawn from other test items' answers."""
    seed: int = 0
    """Seed for distractor sampling and lm-eval's own seeds."""

    def validate(self) -> None:
        unknown = [t for t in self.tasks if t not in PAPER_TASKS and t not in LOCAL_TASKS]
        if unknown or not self.tasks:
            raise ConfigError(
                f"eval.lmeval.tasks {unknown or self.tasks} not known; choose from "
                f"{sorted(LOCAL_TASKS) + sorted(PAPER_TASKS)}"
            )
        if self.limit is not None and self.limit < 1:
            raise ConfigError("eval.lmeval.limit must be >= 1 or null")
        if self.n_distractors < 1 or self.tensor_parallel_size < 1:
            raise ConfigError("eval.lmeval.n_distractors and eval.lmeval.tensor_parallel_size must be >= 1")


def task_plan(tasks: list[str], hub: bool) -> list[tuple[int, list[str]]]:
    """Group the requested tasks by few-shot count (one ``simple_evaluate`` call per group).

    Returns ``[(num_fewshot, [lm-eval task names])]`` in first-appearance order; hub tasks without
    the hub raise a ConfigError that says how to enable it.
    """
    groups: dict[int, list[str]] = {}
    for t in tasks:
        if t in PAPER_TASKS:
            if not hub:
                raise ConfigError(
                    f"eval.lmeval task '{t}' downloads its data from the Hugging Face hub, which is off; "
                    "use a config with `hub: true` or the local tasks target_em / target_mc."
                )
            groups.setdefault(PAPER_TASKS[t][0], []).append(t)
        else:
            groups.setdefault(0, []).append(LOCAL_TASKS[t][1])
    return list(groups.items())


def derive_rows(records: list[dict], n_distractors: int, seed: int, where: str) -> list[dict]:
    """Test records -> ``{id, question, answer, choices, label}`` rows for the local task YAMLs."""
    rows = []
    for r in records:
        try:
            user = [m["content"] for m in prompt_messages(r) if m["role"] == "user"]
        except Exception as e:
            raise DataError(f"{where} record {r.get('id')}: cannot find the question ({e})") from None
        answer = r.get("answer", r.get("response"))
        if not user or answer is None:
            raise DataError(f"{where} record {r.get('id')}: needs a user turn and an 'answer' (or 'response')")
        rows.append({"id": str(r["id"]), "question": user[-1], "answer": str(answer).strip()})
    pool = sorted({row["answer"] for row in rows})
    rng = random.Random(seed)
    for row in rows:
        others = [a for a in pool if a != row["answer"]]
        if not others:
            raise DataError(f"{where}: every test item has the same answer; multiple choice needs distractors")
        choices = rng.sample(others, min(n_distractors, len(others))) + [row["answer"]]
        rng.shuffle(choices)
        row["choices"], row["label"] = choices, choices.index(row["answer"])
    return rows


def write_local_tasks(data_dir: str, out: Path, opts: Options) -> tuple[Path, str]:
    """Derive the task JSONL from ``test.jsonl``, fill the YAML templates; return (task dir, em filter)."""
    test = heldout_file(data_dir, "lmeval")  # test.jsonl (tune.jsonl in a tuning run's folder)
    records = read_jsonl(test)
    if not records:
        raise DataError(f"{test} is empty; the local lm-eval tasks need test items")
    rows = derive_rows(records, opts.n_distractors, opts.seed, str(test))
    task_dir = out / "tasks"
    task_dir.mkdir(parents=True, exist_ok=True)
    data_file = (task_dir / "target.jsonl").resolve()
    write_jsonl(data_file, rows)
    for name in [t for t in opts.tasks if t in LOCAL_TASKS]:
        template = (TASK_TEMPLATES / LOCAL_TASKS[name][0]).read_text()
        filled = template.replace("__DATA_FILE__", json.dumps(str(data_file))).replace(
            "__MAX_GEN_TOKS__", str(opts.max_gen_toks)
        )
        (task_dir / LOCAL_TASKS[name][0]).write_text(filled)
    # Math-style data answers "The answer is $\boxed{X}$." -> grade the boxed part; dialogues: first line.
    boxed = sum("\\boxed" in str(r.get("response", "")) for r in records) > len(records) / 2
    return task_dir, ("boxed" if boxed else "first-line")


def primary_metric(task: str, em_filter: str) -> tuple[str, str]:
    """(lm-eval task name, metric key) of a suite task."""
    if task in PAPER_TASKS:
        return task, PAPER_TASKS[task][1]
    _, name, metric = LOCAL_TASKS[task]
    return name, (f"{metric},{em_filter}" if metric == "exact_match" else metric)


def run(model_path: str, out: Path, data_dir: str | None, opts: Options, log) -> dict:
    # lm_eval is imported here, not at the top: its import takes ~10 s, and the workflow imports this module
    # at DAG construction to check the options (`snakemake -n` must stay fast).
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager
    from lm_eval.utils import handle_non_serializable

    plan = task_plan(opts.tasks, hub_enabled())
    em_filter = "boxed"
    include = None
    if any(t in LOCAL_TASKS for t in opts.tasks):
        # Other ranks write their own copy (same content) in a temporary folder: no shared half-written file.
        task_root = out if is_main() else Path(tempfile.mkdtemp(prefix="lmeval-tasks-"))
        include, em_filter = write_local_tasks(data_dir, task_root, opts)
    backend = resolve_backend(opts.backend)
    try:
        # One model object for every few-shot group. The device goes only here (passing it in
        # model_args too raises "got multiple values for keyword argument 'device'").
        if backend == "vllm":
            from lm_eval.api.registry import get_model

            lm = get_model("vllm")(
                pretrained=resolve_model(model_path),
                dtype=opts.dtype,
                tensor_parallel_size=opts.tensor_parallel_size,
                batch_size="auto",
                seed=opts.seed,
            )
        else:
            lm = HFLM(
                pretrained=resolve_model(model_path), dtype=opts.dtype, batch_size=opts.batch_size, device=device_name()
            )
    except AssetError:
        raise
    except Exception as e:
        raise AssetError(load_failure(model_path, e)) from None

    # Indexing lm-eval's ~10k built-in task YAMLs takes ~10 s; the local tasks do not need them.
    task_manager = TaskManager(
        include_path=str(include) if include else None,
        include_defaults=any(t in PAPER_TASKS for t in opts.tasks),
    )
    merged: dict = {}
    for num_fewshot, task_names in plan:
        log.info("lm-eval: %s, %d-shot", task_names, num_fewshot)
        res = lm_eval.simple_evaluate(
            model=lm,
            tasks=task_names,
            num_fewshot=num_fewshot,
            task_manager=task_manager,
            limit=opts.limit,
            log_samples=True,
            apply_chat_template=opts.apply_chat_template,
            random_seed=opts.seed,
            bootstrap_iters=1000,
        )
        if res is None:  # ranks other than 0 helped evaluate; rank 0 holds the results
            continue
        for name, samples in (res.pop("samples", None) or {}).items():
            rows = json.loads(json.dumps(samples, default=handle_non_serializable))
            write_jsonl(out / f"samples_{name}.jsonl", rows)
        for key, value in res.items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key].update(value)
            else:
                merged.setdefault(key, value)
    if not is_main():
        return {}
    atomic_write_json(out / "lmeval_results.json", json.loads(json.dumps(merged, default=handle_non_serializable)))
    return {**summarise(merged, opts, em_filter, lm_eval.__version__), "backend": backend}


def summarise(merged: dict, opts: Options, em_filter: str, version: str) -> dict:
    """summary.json's evaluation part from lm-eval's merged results: the first task is the headline value."""
    per_task = {}
    for task in opts.tasks:
        name, metric = primary_metric(task, em_filter)
        result = merged["results"][name]
        metric_name, _, filt = metric.partition(",")
        per_task[task] = {
            "lmeval_task": name,
            "metric": metric,
            "value": result[metric],
            "stderr": result.get(f"{metric_name}_stderr,{filt}"),
            "n": merged.get("n-samples", {}).get(name, {}).get("effective"),
            "n_shot": merged.get("n-shot", {}).get(name),
        }
    first = per_task[opts.tasks[0]]
    stderr = first["stderr"] if isinstance(first["stderr"], (int, float)) else None
    local_only = all(t in LOCAL_TASKS for t in opts.tasks)
    return {
        "metric": f"{opts.tasks[0]}/{first['metric']}",
        "value": first["value"],
        "stderr": stderr,
        "n": first["n"],
        "protocol": f"lm-eval {version} simple_evaluate; "
        + "; ".join(f"{t}: {v['n_shot']}-shot {v['metric']}" for t, v in per_task.items())
        + f"; chat_template={opts.apply_chat_template}",
        "grader": f"lm-eval {version} task metrics",
        "comparable_to_paper": (not local_only) and opts.limit is None and not opts.apply_chat_template,
        "tasks": per_task,
        "device": device_name(),
    }


main = cli_main(
    "lmeval",
    Options,
    run,
    "lm-eval tasks (local target-domain tasks or the paper's hub tasks). --data: a data folder with test.jsonl "
    "(local tasks).",
    data_required=False,
)

if __name__ == "__main__":
    main()
