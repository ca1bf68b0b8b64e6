# The configured workload's data: one rule per preparation stage its registry entry declares
# (hpcdl.data.stages), named like the stage, running `hpcdl <command> --json ARGS`.
for stage in DATA.stages:

    rule:
        name:
            stage.name
        input:
            *stage.inputs,
        output:
            **stage.outputs,
        log:
            stage.log(f"{RESULTS}/logs"),
        wildcard_constraints:
            **stage.wildcards,
        conda:
            "../envs/hpcdl.yaml"
        threads: stage.threads
        resources:
            **get_stage_resources(stage),
        params:
            launch=get_stage_launch(stage),
            command=stage.command,
            args=get_stage_args(stage),
        shell:
            "{params.launch} hpcdl {params.command:q} --json {params.args:q} > {log:q} 2>&1"
