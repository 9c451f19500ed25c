# Selection -> SFT training set -> fine-tuned model (the same hand-off for every method).


def online_sampling(experiment):
    """``sft.sampling`` online/trajectory: the finetune job samples sources from the selection's p."""
    return section(experiment, "sft").get("sampling", "static") != "static"


def finetune_inputs(w):
    """The SFT set and the model; with online sampling also the selection and the pool it samples from."""
    run = run_dir(w.experiment, w.model, w.method, w.seed)
    inputs = {"train": f"{run}/sft_data/train.jsonl", "model": model_input(w)}
    if online_sampling(w.experiment):
        inputs.update(
            selection=f"{run}/selection.json", data=f"{RESULTS}/{w.experiment}/data"
        )
    return inputs


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
        online=lambda w, input: (
            f"--selection {input.selection} --data {input.data}"
            if online_sampling(w.experiment)
            else ""
        ),
    shell:
        "{params.launch} -m scalebio finetune --train {input.train} --model {params.model} --out {output} "
        "--options {params.options:q} --seed {wildcards.seed} {params.online} > {log} 2>&1"
