# The run's whole settings, checked while the workflow was parsed, as one file the run reads.
rule spec:
    output:
        f"{RESULTS}/runs/{{run}}/spec.json",
    log:
        f"{RESULTS}/logs/spec/{{run}}.log",
    conda:
        "../envs/hpcdl.yaml"
    params:
        settings=get_run_settings,
    shell:
        "hpcdl spec {output:q} --json {params.settings:q} > {log:q} 2>&1"


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
    # Only this config's run: a run of another config in the same results directory is kept as it
    # is, never retrained with this config's settings.
    wildcard_constraints:
        run=re.escape(RUN),
    # The checkpoint is no output, so it survives a failed attempt: every retry resumes from it. A
    # failure no retry can mend (settings, data, another run's checkpoint) is recorded by the first
    # attempt, and later attempts (--attempt) exit at once with its reason.
    retries: PLACEMENT.retries
    conda:
        "../envs/hpcdl.yaml"
    resources:
        **P.resources(PLACEMENT.tasks, PLACEMENT.nodes, gpus=True),
        attempt=lambda wc, attempt: attempt,
    params:
        data=training_data,
        out=lambda wc, output: os.path.dirname(output.done),
        launch=P.train_launch,
        # preflight.enabled: every rank of the allocation checked before any trains
        preflight=get_preflight,
    shell:
        "({params.preflight}{params.launch} hpcdl train --spec {input.spec:q}"
        " --data-dir {params.data:q} --output-dir {params.out:q} --attempt {resources.attempt})"
        " > {log:q} 2>&1"
