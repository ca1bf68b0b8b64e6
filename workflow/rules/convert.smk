# convert.elements > 0: the files are first converted by that many one-task jobs side by side
# (SLURM: --slurm-array-jobs convert_element makes them one array), each its share; the whole
# conversion after them finds every file converted, cleans up and writes the summary.
rule convert_element:
    input:
        manifest=f"{RESULTS}/data/cosmoflow/{{source}}/manifest.json",
    output:
        summary=f"{RESULTS}/data/cosmoflow/{{source}}/{{fmt}}/{{split}}_elements/e{{element}}.json",
    log:
        f"{RESULTS}/logs/convert/{{source}}_{{fmt}}_{{split}}_e{{element}}.log",
    wildcard_constraints:
        element=r"\d+",
    conda:
        "../envs/hpcdl.yaml"
    resources:
        **one_rank_resources(),
    params:
        src=lambda wc: f"{data_dir(wc.source)}/{wc.split}",
        dst=lambda wc: f"{converted_dir(wc.fmt, wc.source)}/{wc.split}",
        launch=launch(1),
        elements=CONVERT_ELEMENTS,
    shell:
        "{params.launch} hpcdl convert {params.src} {params.dst} --to {wildcards.fmt}"
        " --element {wildcards.element} --elements {params.elements}"
        " --summary {output.summary} > {log} 2>&1"


rule convert:
    input:
        manifest=f"{RESULTS}/data/cosmoflow/{{source}}/manifest.json",
        elements=convert_elements,
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
