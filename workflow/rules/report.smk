# Tables and figures per experiment (paper-facing outputs, collected by `snakemake --report`).


rule report_tables:
    input:
        data=f"{RESULTS}/{{experiment}}/data",
        runs=lambda w: report_inputs(w.experiment),
    output:
        weights=report(
            f"{RESULTS}/{{experiment}}/report/weights.csv",
            caption="../report/weights.rst",
            category="{experiment}",
            subcategory="learned weights",
        ),
        weights_md=f"{RESULTS}/{{experiment}}/report/weights.md",
        downstream=report(
            f"{RESULTS}/{{experiment}}/report/downstream.csv",
            caption="../report/downstream.rst",
            category="{experiment}",
            subcategory="downstream evaluation",
        ),
        downstream_md=f"{RESULTS}/{{experiment}}/report/downstream.md",
        cost=report(
            f"{RESULTS}/{{experiment}}/report/cost.csv",
            caption="../report/cost.rst",
            category="{experiment}",
            subcategory="cost",
        ),
        claims=report(
            f"{RESULTS}/{{experiment}}/report/claims.csv",
            caption="../report/claims.rst",
            category="{experiment}",
            subcategory="paper claim",
        ),
        fig_weights=report(
            f"{RESULTS}/{{experiment}}/report/weights.png",
            caption="../report/weights.rst",
            category="{experiment}",
            subcategory="learned weights",
        ),
        fig_trajectory=report(
            f"{RESULTS}/{{experiment}}/report/trajectory.png",
            caption="../report/trajectory.rst",
            category="{experiment}",
            subcategory="learned weights",
        ),
        fig_downstream=report(
            f"{RESULTS}/{{experiment}}/report/downstream.png",
            caption="../report/downstream.rst",
            category="{experiment}",
            subcategory="downstream evaluation",
        ),
    log:
        f"{LOGS}/report/{{experiment}}.log",
    localrule: True
    conda:
        "../envs/suite.yaml"
    params:
        spec=lambda w: json.dumps(experiments()[w.experiment]),
        seeds=lambda w: ",".join(map(str, seeds_of(w.experiment))),
        twins=lambda w: report_twins(w.experiment),
        # <results>/<experiment>/report/claims.csv -> <results>
        results=lambda w, output: str(Path(output.claims).parents[2]),
    shell:
        "python -m scalebio report --experiment {wildcards.experiment} --spec {params.spec:q} "
        "--results {params.results} --data {input.data} --seeds {params.seeds} --twins {params.twins:q} "
        "> {log} 2>&1"


# Quality against cost, for the experiments on a real model (all_targets asks for it), drawn from cost.csv alone.
rule report_cost_quality:
    input:
        cost=f"{RESULTS}/{{experiment}}/report/cost.csv",
    output:
        report(
            f"{RESULTS}/{{experiment}}/report/cost_quality.png",
            caption="../report/cost.rst",
            category="{experiment}",
            subcategory="cost",
        ),
    log:
        f"{LOGS}/report/{{experiment}}.cost_quality.log",
    localrule: True
    conda:
        "../envs/suite.yaml"
    params:
        results=lambda w, input: str(Path(input.cost).parents[2]),
    shell:
        "python -m scalebio cost-figure --results {params.results} --experiment {wildcards.experiment} > {log} 2>&1"


rule report_study:
    input:
        unpack(study_inputs),
    output:
        table=report(
            f"{RESULTS}/{{experiment}}/report/study.csv",
            caption="../report/study.rst",
            category="beyond the paper",
            subcategory="{experiment}",
        ),
        table_md=f"{RESULTS}/{{experiment}}/report/study.md",
        figure=report(
            f"{RESULTS}/{{experiment}}/report/study.png",
            caption="../report/study.rst",
            category="beyond the paper",
            subcategory="{experiment}",
        ),
    log:
        f"{LOGS}/report/{{experiment}}.study.log",
    localrule: True
    conda:
        "../envs/suite.yaml"
    params:
        spec=lambda w: json.dumps(experiments()[w.experiment]),
        seeds=lambda w: ",".join(map(str, seeds_of(w.experiment))),
        reference=study_reference_args,
        results=lambda w, output: str(Path(output.table).parents[2]),
    shell:
        "python -m scalebio study --experiment {wildcards.experiment} --spec {params.spec:q} "
        "--results {params.results} --data {input.data} --seeds {params.seeds} {params.reference} > {log} 2>&1"


rule report_summary:
    input:
        [f"{RESULTS}/{exp}/report/downstream.csv" for exp in experiments()],
        # the verdict table reads every experiment's claims
        [f"{RESULTS}/{exp}/report/claims.csv" for exp in experiments()],
    output:
        math=report(
            f"{RESULTS}/report/paper_vs_ours_math.csv",
            caption="../report/paper_vs_ours.rst",
            category="paper vs ours",
            subcategory="math reasoning",
        ),
        math_md=f"{RESULTS}/report/paper_vs_ours_math.md",
        mtbench=report(
            f"{RESULTS}/report/paper_vs_ours_mtbench.csv",
            caption="../report/paper_vs_ours.rst",
            category="paper vs ours",
            subcategory="instruction following",
        ),
        mtbench_md=f"{RESULTS}/report/paper_vs_ours_mtbench.md",
        runtime=report(
            f"{RESULTS}/report/runtime.csv",
            caption="../report/runtime.rst",
            category="cost",
            subcategory="wall time per stage",
        ),
        runtime_md=f"{RESULTS}/report/runtime.md",
        verdicts=report(
            f"{RESULTS}/report/verdicts.csv",
            caption="../report/verdicts.rst",
            category="paper vs ours",
            subcategory="verdicts",
        ),
        verdicts_md=f"{RESULTS}/report/verdicts.md",
    log:
        f"{LOGS}/report/summary.log",
    localrule: True
    conda:
        "../envs/suite.yaml"
    params:
        config=lambda w: json.dumps(config),
        # <results>/report/runtime.csv -> <results>
        results=lambda w, output: str(Path(output.runtime).parents[1]),
    shell:
        "python -m scalebio summary --results {params.results} --config-json {params.config:q} > {log} 2>&1"


# The tuning protocol (config/tune.yaml): every grid point's score on the tuning split and the chosen values.
if TUNING:

    rule tune_report:
        input:
            [f"{RESULTS}/{exp}/report/downstream.csv" for exp in experiments()],
        output:
            table=report(
                f"{RESULTS}/report/tune.csv",
                caption="../report/tune.rst",
                category="tuning",
            ),
            table_md=f"{RESULTS}/report/tune.md",
            chosen=f"{RESULTS}/report/chosen.yaml",
        log:
            f"{LOGS}/report/tune.log",
        localrule: True
        conda:
            "../envs/suite.yaml"
        params:
            config=lambda w: json.dumps(config),
        shell:
            "python -m scalebio tune-report --results {RESULTS} --config-json {params.config:q} "
            "--out $(dirname {output.chosen}) > {log} 2>&1"
