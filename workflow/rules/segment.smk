# The segment workload's data as per-split image and mask arrays: synthetic fluorescence
# microscopy with exact masks (hpcdl cells, the embedded default, no network), or PNG/TIFF images
# and masks converted by hpcdl masks from a downloaded archive (hpcdl download: resumable, size
# and SHA-256 pinned in segment_data.download) or from a local folder (segment_data.folder).


rule cells:
    output:
        manifest=f"{RESULTS}/data/segment/cells/manifest.json",
    log:
        f"{RESULTS}/logs/cells.log",
    conda:
        "../envs/hpcdl.yaml"
    params:
        out=lambda wc, output: os.path.dirname(output.manifest),
        options=cells_options,
    shell:
        "hpcdl cells {params.out:q} {params.options} > {log} 2>&1"


rule segment_download:
    output:
        manifest=f"{RESULTS}/data/segment/download/raw/manifest.json",
    log:
        f"{RESULTS}/logs/segment_download.log",
    conda:
        "../envs/hpcdl.yaml"
    params:
        out=lambda wc, output: os.path.dirname(output.manifest),
        url=segment_data().get("download", {}).get("url", ""),
        checks=download_checks(segment_data().get("download", {})),
    shell:
        "hpcdl download {params.url:q} {params.out:q} {params.checks} > {log} 2>&1"


rule masks:
    input:
        masks_inputs,
    output:
        manifest=f"{RESULTS}/data/segment/{{origin}}/arrays/manifest.json",
    log:
        f"{RESULTS}/logs/masks/{{origin}}.log",
    wildcard_constraints:
        origin="download|folder",
    conda:
        "../envs/hpcdl.yaml"
    params:
        src=masks_source,
        out=lambda wc, output: os.path.dirname(output.manifest),
        options=masks_options,
    shell:
        "hpcdl masks {params.src:q} {params.out:q} {params.options} > {log} 2>&1"
