# The run's whole settings, checked while the workflow was parsed, as one file the run reads.
rule spec:
    output:
        f"{RESULTS}/runs/{{run}}/spec.json",
    log:
        f"{RESULTS}/logs/spec/{{run}}.log",
    conda:
        "../envs/hpcdl.yaml"
    params:
        settings=run_settings,
    shell:
        "hpcdl spec {output:q} --json {params.settings:q} > {log} 2>&1"


rule train:
    input:
        data=training_inputs(),
        spec=f"{RESULTS}/runs/{{run}}/spec.json",
    output:
        done=f"{RESULTS}/runs/{{run}}/run.json",
        metrics=f"{RESULTS}/runs/{{run}}/metrics.jsonl",
        mllog=f"{RESULTS}/runs/{{run}}/mllog.txt",
    log:
        f"{RESULTS}/logs/train/{{run}}.log",
    # The checkpoint is no output, so it survives a failed attempt: every retry resumes from it.
    retries: PLACEMENT.retries
    conda:
        "../envs/hpcdl.yaml"
    resources:
        **resources_of(PLACEMENT.tasks, PLACEMENT.nodes, gpus=True),
    params:
        data=training_data,
        out=lambda wc, output: os.path.dirname(output.done),
        launch=TRAIN_LAUNCH,
        # preflight.enabled: every rank of the allocation checked before any trains
        preflight=preflight_step(),
    shell:
        "({params.preflight}{params.launch} hpcdl train --spec {input.spec:q}"
        " --data-dir {params.data:q} --output-dir {params.out:q}) > {log} 2>&1"
