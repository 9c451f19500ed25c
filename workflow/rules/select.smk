# Data selection: one job per (experiment, model, method); every method writes selection.json.


rule select:
    input:
        data=f"{RESULTS}/{{experiment}}/data",
        model=model_input,
    output:
        f"{RESULTS}/{{experiment}}/{{model}}/{{method}}/s{{seed}}/selection.json",
    log:
        f"{LOGS}/select/{{experiment}}/{{model}}/{{method}}/s{{seed}}.log",
    benchmark:
        f"{BENCH}/select/{{experiment}}/{{model}}/{{method}}/s{{seed}}.tsv"
    conda:
        "../envs/suite.yaml"
    threads: THREADS
    resources:
        gpu=lambda w: job_launch("select", w.experiment, w.method).gpus,
    params:
        model=lambda w: model_dir(w.model),
        budget=lambda w: experiments()[w.experiment]["budget"],
        options=lambda w: json.dumps(method_options(w.experiment, w.method)),
        module=lambda w: method_module(w.method),
        repeats=lambda w: (
            "--allow-repeats"
            if experiments()[w.experiment].get("allow_repeats")
            else ""
        ),
        launch=lambda w: job_launch("select", w.experiment, w.method).command,
    shell:
        "{params.launch} -m scalebio select --method {wildcards.method} --module={params.module:q} "
        "--data {input.data} --model {params.model} --out $(dirname {output}) "
        "--budget {params.budget} --seed {wildcards.seed} --options {params.options:q} {params.repeats} > {log} 2>&1"
