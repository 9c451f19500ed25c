# Selection -> SFT training set -> fine-tuned model (the same hand-off for every method).


rule sft_set:
    input:
        selection=f"{RESULTS}/{{experiment}}/{{model}}/{{method}}/selection.json",
        data=f"{RESULTS}/{{experiment}}/data",
    output:
        train=f"{RESULTS}/{{experiment}}/{{model}}/{{method}}/sft_data/train.jsonl",
        manifest=f"{RESULTS}/{{experiment}}/{{model}}/{{method}}/sft_data/manifest.json",
    log:
        f"{LOGS}/sft_set/{{experiment}}/{{model}}/{{method}}.log",
    conda:
        "../envs/suite.yaml"
    params:
        seed=config.get("seed", 0),
    shell:
        "python -m scalebio sft-set --selection {input.selection} --data {input.data} "
        "--out $(dirname {output.train}) --seed {params.seed} > {log} 2>&1"


rule finetune:
    input:
        train=f"{RESULTS}/{{experiment}}/{{model}}/{{method}}/sft_data/train.jsonl",
        model=model_input,
    output:
        directory(f"{RESULTS}/{{experiment}}/{{model}}/{{method}}/model"),
    log:
        f"{LOGS}/finetune/{{experiment}}/{{model}}/{{method}}.log",
    benchmark:
        f"{BENCH}/finetune/{{experiment}}/{{model}}/{{method}}.tsv"
    conda:
        "../envs/suite.yaml"
    threads: THREADS
    resources:
        gpu=lambda w: job_launch("finetune", w.experiment, w.method).gpus,
    params:
        model=lambda w: model_dir(w.model),
        options=lambda w: json.dumps(
            with_model_dtype(w.model, section(w.experiment, "sft"))
        ),
        seed=config.get("seed", 0),
        launch=lambda w: job_launch("finetune", w.experiment, w.method).command,
    shell:
        "{params.launch} -m scalebio finetune --train {input.train} --model {params.model} --out {output} "
        "--options {params.options:q} --seed {params.seed} > {log} 2>&1"
