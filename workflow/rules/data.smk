# One data folder per experiment: sources/<name>.jsonl, validation.jsonl, test.jsonl, card.json.


rule data:
    input:
        data_inputs,
    output:
        directory(f"{RESULTS}/{{experiment}}/data"),
    log:
        f"{LOGS}/data/{{experiment}}.log",
    conda:
        "../envs/suite.yaml"
    params:
        spec=lambda w: json.dumps(data_spec(w.experiment)),
        seed=config.get("seed", 0),
    shell:
        "python -m scalebio data {output} --spec {params.spec:q} --seed {params.seed} > {log} 2>&1"


# The official repository's files at the pinned commit (config `official`; needs git and a route to it).
if OFFICIAL:

    rule official_files:
        output:
            directory(OFFICIAL_DIR),
        log:
            f"{LOGS}/official/{Path(OFFICIAL_DIR).name}.log",
        conda:
            "../envs/suite.yaml"
        params:
            repo=OFFICIAL["repo"],
            commit=OFFICIAL["commit"],
            paths=" ".join(f"--path {p}" for p in OFFICIAL.get("paths", [])),
        shell:
            "python -m scalebio official {output} --repo {params.repo:q} --commit {params.commit} "
            "{params.paths} > {log} 2>&1"
