# One data folder per experiment: sources/<name>.jsonl, validation.jsonl, test.jsonl, card.json.
from types import SimpleNamespace as Namespace


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


# data.clusters: the pool is built by rule data's command into <experiment>/pool, then its examples are
# embedded with the base model and clustered; each cluster becomes a source of <experiment>/data.
CLUSTERED = [e for e in experiments() if clusters_of(e) is not None]
if CLUSTERED:

    use rule data as pool with:
        output:
            directory(f"{RESULTS}/{{experiment}}/pool"),
        log:
            f"{LOGS}/pool/{{experiment}}.log",

    ruleorder: clusters > data

    rule clusters:
        input:
            pool=f"{RESULTS}/{{experiment}}/pool",
            model=lambda w: model_input(
                Namespace(model=clusters_of(w.experiment)["model"])
            ),
        output:
            directory(f"{RESULTS}/{{experiment}}/data"),
        log:
            f"{LOGS}/clusters/{{experiment}}.log",
        wildcard_constraints:
            experiment="|".join(CLUSTERED),
        conda:
            "../envs/suite.yaml"
        params:
            model=lambda w: model_dir(clusters_of(w.experiment)["model"]),
            options=lambda w: json.dumps(
                {k: v for k, v in clusters_of(w.experiment).items() if k != "model"}
            ),
            seed=config.get("seed", 0),
        shell:
            "python -m scalebio clusters {input.pool} {output} --model {params.model} "
            "--options {params.options:q} --seed {params.seed} > {log} 2>&1"
