# Evaluation of every fine-tuned model and of the base model (method "base"): one job per
# (experiment, model, method, evaluation); each writes eval/<evaluation>/summary.json (eval/README.md).


wildcard_constraints:
    evaluation="lmeval|math|mtbench|testloss",


rule evaluate:
    input:
        unpack(eval_inputs),
    output:
        f"{RESULTS}/{{experiment}}/{{model}}/{{method}}/eval/{{evaluation}}/summary.json",
    log:
        f"{LOGS}/eval/{{experiment}}/{{model}}/{{method}}/{{evaluation}}.log",
    benchmark:
        f"{BENCH}/eval/{{experiment}}/{{model}}/{{method}}/{{evaluation}}.tsv"
    conda:
        "../envs/suite.yaml"
    threads: THREADS
    resources:
        gpu=lambda w: config.get("resources", {}).get("gpus_per_job", 0),
    params:
        model=lambda w: eval_model_path(w),
        data=lambda w: (
            ASSET_DIRS["mtbench"]
            if w.evaluation == "mtbench"
            else f"{RESULTS}/{w.experiment}/data"
        ),
        options=lambda w: json.dumps(
            eval_options(w.experiment, w.evaluation, w.model, w.method)
        ),
    shell:
        "python -m eval.{wildcards.evaluation} --model {params.model} --out $(dirname {output}) "
        "--data {params.data} --options {params.options:q} > {log} 2>&1"
