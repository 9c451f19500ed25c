# Thin entry point: the workflow lives in workflow/. `rule all` must be defined in this file,
# because Snakemake takes the default target only from the file it starts from.


include: "workflow/Snakefile"


rule all:
    default_target: True
    input:
        all_targets(),
