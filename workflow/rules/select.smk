# Data selection: one job per (experiment, model, method); every method writes selection.json.


rule select:
    input:
        data=f"{RESULTS}/{{experiment}}/data",
        model=model_input,
        twin=twin_selection,
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
        # A twin's selection (scalebio.pipeline.resolve.selection_twin) is copied: same inputs, same result, no recomputation.
        # Wildcards only: Snakemake tracks this string, so changed options or budget re-run the job.
        command=select_command,
    shell:
        "{params.command} > {log} 2>&1"
