rule synth:
    output:
        manifest=f"{RESULTS}/data/cosmoflow/synth/manifest.json",
    log:
        f"{RESULTS}/logs/synth.log",
    conda:
        "../envs/hpcdl.yaml"
    threads: config["synth"]["workers"]
    params:
        out=lambda wc, output: os.path.dirname(output.manifest),
        cfg=config["synth"],
    shell:
        "hpcdl synth {params.out} --crop-size {params.cfg[crop_size]}"
        " --train {params.cfg[train]} --validation {params.cfg[validation]}"
        " --seed {params.cfg[seed]} --workers {threads} > {log} 2>&1"


rule download:
    output:
        manifest=f"{RESULTS}/data/cosmoflow/download/manifest.json",
    log:
        f"{RESULTS}/logs/download.log",
    conda:
        "../envs/hpcdl.yaml"
    params:
        out=lambda wc, output: os.path.dirname(output.manifest),
        url=config.get("download", {}).get("url", ""),
        checks=lambda wc: " ".join(
            f"--{key} {value}"
            for key, value in config.get("download", {}).items()
            if key in ("sha256", "size") and value
        ),
    shell:
        "hpcdl download {params.url:q} {params.out} {params.checks} > {log} 2>&1"
