# Evaluation of every fine-tuned model and of the base model (method "base"): one job per
# (experiment, model, method, evaluation); each writes eval/<evaluation>/summary.json (eval/README.md).


# An evaluation is a name listed in `evals:`; `eval.<name>.evaluation` says which registered one it runs.
wildcard_constraints:
    evaluation=r"[A-Za-z0-9_\-]+",


rule evaluate:
    input:
        unpack(eval_inputs),
    output:
        f"{RESULTS}/{{experiment}}/{{model}}/{{method}}/s{{seed}}/eval/{{evaluation}}/summary.json",
    log:
        f"{LOGS}/eval/{{experiment}}/{{model}}/{{method}}/s{{seed}}/{{evaluation}}.log",
    benchmark:
        f"{BENCH}/eval/{{experiment}}/{{model}}/{{method}}/s{{seed}}/{{evaluation}}.tsv"
    conda:
        "../envs/suite.yaml"
    threads: THREADS
    resources:
        gpu=lambda w: eval_launch(w).gpus,
    params:
        model=lambda w: eval_model_path(w),
        data=lambda w: (
            ASSET_DIRS["mtbench"]
            if eval_kind(w.experiment, w.evaluation) == "mtbench"
            else f"{RESULTS}/{w.experiment}/data"
        ),
        options=lambda w: json.dumps(
            eval_options(w.experiment, w.evaluation, w.model, *run_of(w))
        ),
        launch=lambda w: eval_launch(w).command,
        module=eval_module,
    shell:
        "{params.launch} -m {params.module} --model {params.model} --out $(dirname {output}) "
        "--data {params.data} --options {params.options:q} > {log} 2>&1"


# The base model is evaluated once per experiment (no selection, no seed).
use rule evaluate as evaluate_base with:
    input:
        unpack(eval_inputs),
    output:
        f"{RESULTS}/{{experiment}}/{{model}}/base/eval/{{evaluation}}/summary.json",
    log:
        f"{LOGS}/eval/{{experiment}}/{{model}}/base/{{evaluation}}.log",
    benchmark:
        f"{BENCH}/eval/{{experiment}}/{{model}}/base/{{evaluation}}.tsv"
