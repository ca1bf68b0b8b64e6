rule convert:
    input:
        manifest=f"{RESULTS}/data/cosmoflow/{{source}}/manifest.json",
    output:
        summary=f"{RESULTS}/data/cosmoflow/{{source}}/{{fmt}}/{{split}}/convert.json",
    log:
        f"{RESULTS}/logs/convert/{{source}}_{{fmt}}_{{split}}.log",
    conda:
        "../envs/hpcdl.yaml"
    resources:
        **resources_of(config["convert"]["tasks"], config["convert"].get("nodes", 1)),
    params:
        src=lambda wc: f"{data_dir(wc.source)}/{wc.split}",
        dst=lambda wc: f"{converted_dir(wc.fmt, wc.source)}/{wc.split}",
        launch=launch(config["convert"]["tasks"], config["convert"].get("nodes", 1)),
    shell:
        "{params.launch} hpcdl convert {params.src} {params.dst} --to {wildcards.fmt}"
        " --summary {output.summary} > {log} 2>&1"


rule lists:
    input:
        summary=f"{RESULTS}/data/cosmoflow/{{source}}/npy/{{split}}/convert.json",
    output:
        data=f"{RESULTS}/data/cosmoflow/{{source}}/npy/{{split}}/files_data.lst",
        label=f"{RESULTS}/data/cosmoflow/{{source}}/npy/{{split}}/files_label.lst",
    log:
        f"{RESULTS}/logs/lists/{{source}}_{{split}}.log",
    conda:
        "../envs/hpcdl.yaml"
    params:
        dir=lambda wc, input: os.path.dirname(input.summary),
    shell:
        "hpcdl lists {params.dir} > {log} 2>&1"
