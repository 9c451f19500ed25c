# Config validation and helpers shared by every stage.
import json
from pathlib import Path

from scalebio.runtime import configure_hub

from snakemake.utils import validate

validate(config, schema="../schemas/config.schema.yaml")

# Offline unless the config opts into the hub; child processes inherit the environment.
configure_hub(config.get("hub", False))

RESULTS = config.get("results_dir", "results")
ASSET_DIRS = {
    "tiny": "resources/models/tiny",
    "smollm2": "resources/models/smollm2-135m-instruct",
    "mtbench": "resources/mtbench",
}


def experiments():
    return config["experiments"]


def check_config():
    errors = []
    for exp, e in experiments().items():
        for m in e["models"]:
            if m not in config["models"]:
                errors.append(
                    f"experiments.{exp}.models names '{m}', which is not under models:"
                )
    if errors:
        raise ValueError("config error: " + "; ".join(errors))


check_config()


def model_spec(name):
    return config["models"][name]


def model_dir(name):
    spec = model_spec(name)
    return ASSET_DIRS[spec["asset"]] if spec.get("asset") else spec["path"]


def model_input(wildcards):
    """The model folder as a Snakemake input when a rule builds it (embedded assets)."""
    spec = model_spec(wildcards.model)
    return [ASSET_DIRS[spec["asset"]]] if spec.get("asset") else []


def run_dir(experiment, model, method):
    return f"{RESULTS}/{experiment}/{model}/{method}"


def method_options(experiment, method):
    """Global ``methods.<m>`` options, overridden by ``experiments.<e>.method_options.<m>``."""
    opts = dict(config.get("methods", {}).get(method, {}) or {})
    opts.pop("module", None)
    opts.update(
        experiments()[experiment].get("method_options", {}).get(method, {}) or {}
    )
    return opts


def method_module(method):
    return (config.get("methods", {}).get(method) or {}).get("module", "")


def evals_of(experiment):
    return experiments()[experiment].get("evals", [])


def report_inputs(experiment):
    """Everything the report of one experiment reads: selections, and evaluations if that stage exists."""
    e = experiments()[experiment]
    out = []
    for m in e["models"]:
        out += [
            f"{run_dir(experiment, m, meth)}/selection.json" for meth in e["methods"]
        ]
        if has_rule("evaluate"):
            for meth in ["base", *e["methods"]]:
                out += [
                    f"{run_dir(experiment, m, meth)}/eval/{ev}/summary.json"
                    for ev in evals_of(experiment)
                ]
    return out


def report_targets():
    return [f"{RESULTS}/{exp}/report/claims.csv" for exp in experiments()]


def has_rule(name):
    try:
        getattr(rules, name)
        return True
    except Exception:
        return False


def all_targets():
    """Final outputs of every stage whose rules are defined (stages join as they land)."""
    out = []
    for exp, e in experiments().items():
        for m in e["models"]:
            for meth in e["methods"]:
                rd = run_dir(exp, m, meth)
                out.append(f"{rd}/selection.json")
                if has_rule("finetune"):
                    out.append(f"{rd}/model")
                if has_rule("evaluate"):
                    out += [f"{rd}/eval/{ev}/summary.json" for ev in evals_of(exp)]
            if has_rule("evaluate"):
                rd = run_dir(exp, m, "base")
                out += [f"{rd}/eval/{ev}/summary.json" for ev in evals_of(exp)]
    if has_rule("report_tables"):
        out += report_targets()
    return out


wildcard_constraints:
    experiment=r"[A-Za-z0-9_\-]+",
    model=r"[A-Za-z0-9_.\-]+",
    method=r"[A-Za-z0-9_\-]+",


# ---- sft
def sft_options(experiment, model):
    """SFT options: the model's ``dtype``, then top-level ``sft:``, then ``experiments.<e>.sft``."""
    opts = {}
    if model_spec(model).get("dtype"):
        opts["dtype"] = model_spec(model)["dtype"]
    opts.update(config.get("sft") or {})
    opts.update(experiments()[experiment].get("sft") or {})
    return opts


# ---- eval
def eval_model_path(wildcards):
    """The evaluated model: the base model folder for method "base", else the fine-tuned one."""
    if wildcards.method == "base":
        return model_dir(wildcards.model)
    return f"{run_dir(wildcards.experiment, wildcards.model, wildcards.method)}/model"


def eval_judge_path(experiment):
    """Folder of the MT-Bench log-prob judge: ``eval.mtbench.judge_model`` names a key of ``models:``."""
    opts = eval_section(experiment, "mtbench")
    key = opts.get("judge_model")
    if key is None:
        return ASSET_DIRS["smollm2"]
    if key not in config["models"]:
        raise ValueError(
            f"config error: eval.mtbench.judge_model '{key}' is not a key of models:"
        )
    return model_dir(key)


def eval_section(experiment, evaluation):
    """Top-level ``eval.<evaluation>`` overridden by ``experiments.<e>.eval.<evaluation>``."""
    opts = dict((config.get("eval") or {}).get(evaluation) or {})
    opts.update((experiments()[experiment].get("eval") or {}).get(evaluation) or {})
    return opts


def eval_options(experiment, evaluation, model, method):
    """Options JSON of one evaluation job (the model's dtype, config sections, resolved paths)."""
    opts = {}
    if model_spec(model).get("dtype"):
        opts["dtype"] = model_spec(model)["dtype"]
    opts.update(eval_section(experiment, evaluation))
    if evaluation == "mtbench":
        opts.setdefault("model_id", f"{model}-{method}")
        if opts.get("judge", "logprob") == "logprob":
            opts["judge_model"] = eval_judge_path(experiment)
        else:
            opts.pop("judge_model", None)
    return opts


def eval_inputs(wildcards):
    """Model folder (the asset when it is built by a rule), data, MT-Bench files and judge model."""
    if wildcards.method == "base":
        model = model_input(wildcards)
    else:
        model = [eval_model_path(wildcards)]
    inputs = {"model": model}
    if wildcards.evaluation == "mtbench":
        inputs["mtbench"] = ASSET_DIRS["mtbench"]
        opts = eval_section(wildcards.experiment, "mtbench")
        if opts.get("judge", "logprob") == "logprob":
            judge = eval_judge_path(wildcards.experiment)
            if judge in ASSET_DIRS.values():
                inputs["judge"] = judge
    else:
        inputs["data"] = f"{RESULTS}/{wildcards.experiment}/data"
    return inputs
