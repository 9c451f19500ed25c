# One data folder per experiment: sources/<name>.jsonl, validation.jsonl, test.jsonl, card.json.


rule data:
    output:
        directory(f"{RESULTS}/{{experiment}}/data"),
    log:
        f"{LOGS}/data/{{experiment}}.log",
    conda:
        "../envs/suite.yaml"
    params:
        spec=lambda w: json.dumps(experiments()[w.experiment]["data"]),
        seed=config.get("seed", 0),
    shell:
        "python -m scalebio data {output} --spec {params.spec:q} --seed {params.seed} > {log} 2>&1"
