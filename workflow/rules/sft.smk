# Selection -> SFT training set -> fine-tuned model (the same hand-off for every method).


rule sft_set:
    input:
        selection=f"{RESULTS}/{{experiment}}/{{model}}/{{method}}/s{{seed}}/selection.json",
        data=f"{RESULTS}/{{experiment}}/data",
    output:
        train=f"{RESULTS}/{{experiment}}/{{model}}/{{method}}/s{{seed}}/sft_data/train.jsonl",
        manifest=f"{RESULTS}/{{experiment}}/{{model}}/{{method}}/s{{seed}}/sft_data/manifest.json",
    log:
        f"{LOGS}/sft_set/{{experiment}}/{{model}}/{{method}}/s{{seed}}.log",
    conda:
        "../envs/suite.yaml"
    shell:
        "python -m scalebio sft-set --selection {input.selection} --data {input.data} "
        "--out $(dirname {output.train}) --seed {wildcards.seed} > {log} 2>&1"


rule finetune:
    input:
        unpack(finetune_inputs),
    output:
        directory(f"{RESULTS}/{{experiment}}/{{model}}/{{method}}/s{{seed}}/model"),
    log:
        f"{LOGS}/finetune/{{experiment}}/{{model}}/{{method}}/s{{seed}}.log",
    benchmark:
        f"{BENCH}/finetune/{{experiment}}/{{model}}/{{method}}/s{{seed}}.tsv"
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
        launch=lambda w: job_launch("finetune", w.experiment, w.method).command,
    shell:
        "{params.launch} -m scalebio finetune --train {input.train} --model {params.model} --out {output} "
        "--options {params.options:q} --seed {wildcards.seed} > {log} 2>&1"
