# Config validation and the small input functions every stage uses.
import json
import os
import re
import shlex
import sys
from pathlib import Path

from scalebio.pipeline import configcheck, resolve
from scalebio.pipeline.launch import plan as launch_plan
from scalebio.common.paths import NAME
from scalebio.common.config import generates
from scalebio.common.registry import EVAL_GROUP, evaluation_options, registered
from scalebio.common.runtime import config_hash, configure_hub, configure_threads

# Everything checkable from the config fails here, before any job runs, with the checker of
# `python -m scalebio check-config` (configcheck.workflow_config): the config files as written (a key given twice:
# Snakemake's own loader keeps the last silently), the schema (../schemas/config.schema.yaml), then names, option
# blocks, models, data files and budgets; one message per problem. A tuning config (a `tune:` section,
# config/tune.yaml) becomes the ordinary config of its tuning runs (scalebio/pipeline/tune.py); everything below
# sees only that.
_checked, _errors = configcheck.workflow_config(config, workflow.configfiles)
if _errors:
    raise ValueError(
        f"config error ({len(_errors)}; `python -m scalebio check-config FILE` lists the same):\n"
        + "\n".join(f"config error: {e}" for e in _errors)
    )
TUNING = "tune" in config
if TUNING:
    config.clear()
    config.update(_checked)
# The memory plan of a GPU config (scalebio/pipeline/memory.py: per GPU and host, per stage), shown whenever the DAG is
# built (`snakemake -n` prints it); a stage that does not fit the config's resources already failed the check above.
if (config.get("resources") or {}).get("gpus_per_job", 0):
    from scalebio.pipeline import memory

    print(memory.render(config), file=sys.stderr)

# Offline unless the config opts into the hub; child processes inherit the environment.
configure_hub(config.get("hub", False))
# Every job runs torch with this many threads, whatever Snakemake grants (float results depend on it).
THREADS = config.get("threads", 2)
configure_threads(THREADS)


def config_name():
    """Name of the config in use: the --configfile stem ("default" for config/config.yaml)."""
    files = [Path(f) for f in workflow.configfiles]
    stem = files[-1].stem if files else "default"
    return "default" if stem == "config" else stem


# Every config writes under its own folder: results, logs and benchmarks never collide between configs.
RESULTS = config.get("results_dir") or f"results/{config_name()}"
LOGS = f"{RESULTS}/logs"
BENCH = f"{RESULTS}/benchmarks"
# Embedded assets are shared between configs only where their content is the same: the tiny model's folder
# name carries the hash of its build options (config `assets.tiny`), so two configs with different options
# never write the same folder. SmolLM2 and MT-Bench have no options (their source is a pinned package).
TINY_OPTIONS = config.get("assets", {}).get("tiny", {})
ASSET_DIRS = {
    "tiny": "resources/models/tiny"
    + (f"-{config_hash(TINY_OPTIONS)}" if TINY_OPTIONS else ""),
    "smollm2": "resources/models/smollm2-135m-instruct",
    "mtbench": "resources/mtbench",
}


# The official repository's files at the pinned commit (config `official`), fetched by `rule official_files`;
# a data entry "official:<path>" names one of them. The folder is keyed by the commit: configs share it only
# when they pin the same commit (same content).
OFFICIAL = config.get("official") or {}
OFFICIAL_DIR = (
    f"resources/official/{Path(OFFICIAL['repo']).stem}-{OFFICIAL['commit'][:12]}"
    if OFFICIAL
    else None
)
OFFICIAL_PREFIX = configcheck.OFFICIAL_PREFIX


def experiments():
    return config["experiments"]


def fetched(entry):
    """An ``official:<path>`` entry as the fetched file (an official: entry without an official: section fails in
    configcheck); any other entry as it is."""
    if configcheck.is_official(entry):
        return f"{OFFICIAL_DIR}/{entry[len(OFFICIAL_PREFIX):]}"
    return entry


def data_spec(experiment):
    """The experiment's ``data:`` with every ``official:<path>`` entry resolved to the fetched file."""
    spec = dict(experiments()[experiment]["data"])
    # data.clusters is applied to the built pool by rule clusters (data.smk)
    spec.pop("clusters", None)
    if "sources" in spec:
        spec["sources"] = {k: fetched(v) for k, v in spec["sources"].items()}
    for key in ("validation", "test"):
        if key in spec:
            spec[key] = fetched(spec[key])
    return spec


def data_inputs(wildcards):
    """The official files folder when the experiment's data uses it."""
    spec = json.dumps(experiments()[wildcards.experiment]["data"])
    return [OFFICIAL_DIR] if f'"{OFFICIAL_PREFIX}' in spec else []


def clusters_of(experiment):
    """``data.clusters`` of the experiment (its sources are found by k-means), or None."""
    return experiments()[experiment]["data"].get("clusters")


def eval_kind(experiment, evaluation):
    """The registered evaluation an entry of ``evals`` runs: ``eval.<name>.evaluation``, else its own name
    (``evals: [gsm8k, math]`` with ``eval.gsm8k.evaluation: math`` runs eval.math twice).
    """
    local = ((experiments()[experiment].get("eval") or {}).get(evaluation) or {}).get(
        "evaluation"
    )
    glob = ((config.get("eval") or {}).get(evaluation) or {}).get("evaluation")
    return local or glob or evaluation


def section(experiment, *path):
    """A global config section overridden by the experiment's copy (scalebio.pipeline.resolve.section)."""
    return resolve.section(config, experiment, *path)


def model_spec(name):
    return config["models"][name]


# Models prepared by the download step (hub ids at a pinned revision, local folders with settings), by folder name.
# Every job of such a model reads the prepared folder, never the hub (scalebio/pipeline/resolve.py: model_download).
MODEL_CACHE = config.get("model_cache") or resolve.DEFAULT_MODEL_CACHE
DOWNLOADS = {
    d["name"]: d
    for name in config["models"]
    if (d := resolve.model_download(config, name)) is not None
}


def model_dir(name):
    spec = model_spec(name)
    if spec.get("asset"):
        return ASSET_DIRS[spec["asset"]]
    download = resolve.model_download(config, name)
    return download["folder"] if download else spec["path"]


def model_input(wildcards):
    """The model folder as a Snakemake input when a rule makes it (embedded assets, prepared downloads)."""
    spec = model_spec(wildcards.model)
    if spec.get("asset"):
        return [ASSET_DIRS[spec["asset"]]]
    download = resolve.model_download(config, wildcards.model)
    return [download["folder"]] if download else []


def seeds_of(experiment):
    """The experiment's seeds (scalebio.pipeline.resolve.seeds_of)."""
    return resolve.seeds_of(config, experiment)


def run_dir(experiment, model, method, seed=None):
    """One run's folder: ``<method>/s<seed>``; the base model's evaluations have no seed (``base/``)."""
    base = f"{RESULTS}/{experiment}/{model}/{method}"
    return base if seed is None else f"{base}/s{seed}"


def method_options(experiment, method):
    return resolve.method_options(config, experiment, method)


def twin_selection(wildcards):
    """The selection.json of an earlier experiment's identical run ([] if none; resolve.selection_twin)."""
    twin = resolve.selection_twin(
        config, wildcards.experiment, wildcards.model, wildcards.method, wildcards.seed
    )
    if twin is None:
        return []
    return [
        f"{run_dir(twin, wildcards.model, wildcards.method, wildcards.seed)}/selection.json"
    ]


def select_command(w):
    """The select job's command: ``scalebio select`` under the job's launcher, or, for a run with a twin, a copy
    of the twin's run files (selection.json last, through a temporary name).

    A function of the wildcards only (paths are derived from them, never taken from ``input``/``output``):
    Snakemake records only such params, so a changed method option, budget, seed or repeat flag changes this
    string and re-runs the job and everything after it (README "What triggers a rerun").
    """
    twin = twin_selection(w)
    out = run_dir(w.experiment, w.model, w.method, w.seed)
    output = f"{out}/selection.json"
    if twin:
        src = os.path.dirname(twin[0])
        return (  # in braces: the rule's "> {log}" then takes every line of the copy
            f"{{ find {src} -maxdepth 1 -type f ! -name selection.json -exec cp -p {{}} {out}/ \\; && "
            f"cp -p {src}/selection.json {output}.tmp && mv {output}.tmp {output} && "
            f"echo 'selection reused from {src}: same data, model, method options, budget and seed'; }}"
        )
    e = experiments()[w.experiment]
    return " ".join(
        [
            job_launch("select", w.experiment, w.method).command,
            f"-m scalebio select --method {w.method}",
            f"--module={shlex.quote(method_module(w.method))}",
            f"--data {RESULTS}/{w.experiment}/data --model {model_dir(w.model)} --out {out}",
            f"--budget {e['budget']} --seed {w.seed}",
            f"--options {shlex.quote(json.dumps(method_options(w.experiment, w.method), sort_keys=True))}",
            "--allow-repeats" if e.get("allow_repeats") else "",
        ]
    ).rstrip()


def method_module(method):
    return resolve.method_module_name(config, method)


def with_model_dtype(model, opts):
    return resolve.with_model_dtype(config, model, opts)


def weights_only(experiment):
    """Methods whose runs stop at selection.json (``experiments.<e>.weights_only``)."""
    return experiments()[experiment].get("weights_only") or []


def evals_of(experiment):
    return experiments()[experiment].get("evals", [])


def report_inputs(experiment):
    """Everything the report of one experiment reads: selections and evaluation summaries."""
    e = experiments()[experiment]
    out = []
    for m in e["models"]:
        out += [
            f"{run_dir(experiment, m, 'base')}/eval/{ev}/summary.json"
            for ev in evals_of(experiment)
        ]
        for meth in e["methods"]:
            for s in seeds_of(experiment):
                rd = run_dir(experiment, m, meth, s)
                out.append(f"{rd}/selection.json")
                if meth not in weights_only(experiment):
                    out += [
                        f"{rd}/eval/{ev}/summary.json" for ev in evals_of(experiment)
                    ]
    return out


def report_twins(experiment):
    """JSON {"model/method": {seed: twin experiment}} of the runs whose selection is copied (the cost table charges
    the twin's selection job; resolve.selection_twins)."""
    e = experiments()[experiment]
    twins = {
        f"{m}/{meth}": t
        for m in e["models"]
        for meth in e["methods"]
        if (t := resolve.selection_twins(config, experiment, m, meth))
    }
    return json.dumps(twins)


def real_model(experiment):
    """Whether the experiment runs a model other than the embedded tiny one: it gets a quality-vs-cost figure."""
    return any(
        model_spec(m).get("asset") != "tiny"
        for m in experiments()[experiment]["models"]
    )


def study_of(experiment):
    """``experiments.<e>.study`` ({} if none): beyond the paper, written to report/study.*."""
    return experiments()[experiment].get("study") or {}


def study_inputs(wildcards):
    """What a study reads: this experiment's runs and data, and those of ``compare_with`` if any."""
    ref = study_of(wildcards.experiment).get("compare_with")
    out = {
        "data": f"{RESULTS}/{wildcards.experiment}/data",
        "runs": report_inputs(wildcards.experiment),
    }
    if ref:
        out |= {"ref_data": f"{RESULTS}/{ref}/data", "ref_runs": report_inputs(ref)}
    return out


def study_reference_args(wildcards, input):
    ref = study_of(wildcards.experiment).get("compare_with")
    if not ref:
        return ""
    spec = shlex.quote(json.dumps(experiments()[ref]))
    return (
        f"--reference {ref} --reference-spec {spec} --reference-data {input.ref_data}"
    )


def all_targets():
    """Every final output: selections, models and evaluations of every run, and every report."""
    out = []
    for exp, e in experiments().items():
        for m in e["models"]:
            for meth in e["methods"]:
                if meth not in weights_only(exp):
                    out += [f"{run_dir(exp, m, meth, s)}/model" for s in seeds_of(exp)]
        out += report_inputs(exp)
        out.append(f"{RESULTS}/{exp}/report/claims.csv")
        if study_of(exp):
            out.append(f"{RESULTS}/{exp}/report/study.csv")
        if real_model(exp):
            out.append(f"{RESULTS}/{exp}/report/cost_quality.png")
    if TUNING:  # the tuning protocol's choices instead of the paper-facing summary
        out.append(f"{RESULTS}/report/chosen.yaml")
    else:
        out.append(f"{RESULTS}/report/paper_vs_ours_math.csv")
    return out


# Names are plain (scalebio.common.paths.NAME, checked by the schema): a wildcard never spans a slash or starts with
# a dot.
wildcard_constraints:
    experiment=NAME,
    model=NAME,
    method=NAME,
    seed=r"\d+",


# ---- eval
def run_of(wildcards):
    """(method, seed) of an evaluation job; the base model's jobs have neither wildcard."""
    return getattr(wildcards, "method", "base"), getattr(wildcards, "seed", None)


def eval_model_path(wildcards):
    """The evaluated model: the base model folder for method "base", else the fine-tuned one."""
    method, seed = run_of(wildcards)
    if method == "base":
        return model_dir(wildcards.model)
    return f"{run_dir(wildcards.experiment, wildcards.model, method, seed)}/model"


def eval_judge_path(experiment, evaluation="mtbench"):
    """Folder of the MT-Bench log-prob judge: ``eval.mtbench.judge_model`` names a key of ``models:``."""
    key = section(experiment, "eval", evaluation).get("judge_model")
    if key is None:
        return ASSET_DIRS["smollm2"]
    return model_dir(key)  # a key that is not under models: fails in configcheck


def eval_options(experiment, evaluation, model, method, seed=None):
    """Options JSON of one evaluation job (the model's dtype, config sections, resolved paths, and the
    generation backend the launch plan chose)."""
    opts = with_model_dtype(model, section(experiment, "eval", evaluation))
    opts.pop("evaluation", None)
    if "data_file" in opts:  # GSM8K / MATH from the pinned official repository's files
        opts["data_file"] = fetched(opts["data_file"])
    kind = eval_kind(experiment, evaluation)
    if generates(evaluation_options(kind)):  # its Options take GenerationOptions
        launch = job_launch("evaluate", experiment, kind, evaluation)
        opts["backend"] = launch.backend
        # vLLM: every GPU of the job, unless the section sets a divisor of the heads
        if launch.backend == "vllm":
            opts.setdefault("tensor_parallel_size", launch.gpus)
    if kind == "mtbench":
        opts.setdefault(
            "model_id", f"{model}-{method}" + (f"-s{seed}" if seed is not None else "")
        )
        if opts.get("judge", "logprob") == "logprob":
            opts["judge_model"] = eval_judge_path(experiment, evaluation)
        else:
            opts.pop("judge_model", None)
    return opts


def eval_inputs(wildcards):
    """Model folder (the asset when it is built by a rule), data, MT-Bench files and judge model."""
    if run_of(wildcards)[0] == "base":
        model = model_input(wildcards)
    else:
        model = [eval_model_path(wildcards)]
    inputs = {"model": model}
    opts = section(wildcards.experiment, "eval", wildcards.evaluation)
    if eval_kind(wildcards.experiment, wildcards.evaluation) == "mtbench":
        inputs["mtbench"] = ASSET_DIRS["mtbench"]
        if opts.get("judge", "logprob") == "logprob":
            judge = eval_judge_path(wildcards.experiment, wildcards.evaluation)
            if judge in ASSET_DIRS.values() or judge.startswith(f"{MODEL_CACHE}/"):
                inputs["judge"] = judge
    else:
        inputs["data"] = f"{RESULTS}/{wildcards.experiment}/data"
    if configcheck.is_official(opts.get("data_file")):
        inputs["official"] = OFFICIAL_DIR
    return inputs


# ---- launch: launcher, processes and GPUs of every select / finetune / evaluate job
def job_launch(stage, experiment, variant, evaluation=None):
    """``scalebio.pipeline.launch.plan`` for one job: ``variant`` is the method (select, finetune) or the
    evaluation kind (evaluate); ScaleBiO's ``distributed`` and an evaluation's ``backend`` come from the config.
    """
    resources = config.get("resources")
    if stage == "select":
        strategy = method_options(experiment, variant).get("distributed")
        # (keyword arguments as a dict: `module=` opening a line is a Snakemake keyword)
        kw = {"distributed": strategy, "module": method_module(variant) or None}
        return launch_plan(stage, variant, resources, **kw)
    if stage == "evaluate":
        backend = section(experiment, "eval", evaluation or variant).get(
            "backend", "auto"
        )
        return launch_plan(stage, variant, resources, backend=backend)
    return launch_plan(stage, variant, resources)


def eval_launch(wildcards):
    kind = eval_kind(wildcards.experiment, wildcards.evaluation)
    return job_launch("evaluate", wildcards.experiment, kind, wildcards.evaluation)


def eval_module(wildcards):
    """The Python module an evaluation job runs (registered entry point of its kind)."""
    return registered(EVAL_GROUP)[eval_kind(wildcards.experiment, wildcards.evaluation)]


def finetune_inputs(w):
    """The SFT set and the model; with ``sft.sampling`` online/trajectory also the selection and the pool the job
    samples sources from (it finds both through the SFT set's manifest)."""
    run = run_dir(w.experiment, w.model, w.method, w.seed)
    inputs = {"train": f"{run}/sft_data/train.jsonl", "model": model_input(w)}
    if section(w.experiment, "sft").get("sampling", "static") != "static":
        inputs.update(
            selection=f"{run}/selection.json", data=f"{RESULTS}/{w.experiment}/data"
        )
    return inputs
