rule train:
    input:
        lists=training_lists(),
    output:
        done=f"{RESULTS}/runs/{{run}}/run.json",
        metrics=f"{RESULTS}/runs/{{run}}/metrics.jsonl",
        mllog=f"{RESULTS}/runs/{{run}}/mllog.txt",
    log:
        f"{RESULTS}/logs/train/{{run}}.log",
    conda:
        "../envs/hpcdl.yaml"
    resources:
        **parallel_resources(
            config["train"]["tasks"], config["train"].get("nodes", 1), gpus=True
        ),
    params:
        data=lambda wc, input: os.path.dirname(os.path.dirname(input.lists[0])),
        out=lambda wc, output: os.path.dirname(output.done),
        launch=launch(
            config["train"]["tasks"],
            config["train"].get("nodes", 1),
            readonly=[data_dir()],
            gpus=True,
        ),
        args=train_args(config["train"]),
    shell:
        "{params.launch} hpcdl train --data-dir {params.data} --output-dir {params.out}"
        " --run-name {wildcards.run} {params.args} > {log} 2>&1"
