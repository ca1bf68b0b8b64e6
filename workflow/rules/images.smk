# The classify workload's data: an image dataset as per-split arrays (hpcdl arrays), from
# Debian's Fashion-MNIST (the embedded default, no network), downloaded MNIST IDX files or the
# CIFAR-10 tarball (hpcdl fetch: resumable, size and SHA-256 pinned in images.downloads), or a
# local Kaggle digit-recognizer CSV.


rule fetch:
    output:
        f"{RESULTS}/data/classify/{{dataset}}/raw/{{file}}",
    log:
        f"{RESULTS}/logs/fetch/{{dataset}}/{{file}}.log",
    wildcard_constraints:
        dataset="mnist|cifar10",
    conda:
        "../envs/hpcdl.yaml"
    params:
        url=lambda wc: image_download(wc.dataset, wc.file)["url"],
        checks=lambda wc: download_checks(image_download(wc.dataset, wc.file)),
    shell:
        "hpcdl fetch {params.url:q} {output:q} {params.checks} > {log} 2>&1"


rule arrays:
    input:
        sources=image_sources,
    output:
        manifest=f"{RESULTS}/data/classify/{{dataset}}/arrays/manifest.json",
    log:
        f"{RESULTS}/logs/arrays/{{dataset}}.log",
    conda:
        "../envs/hpcdl.yaml"
    params:
        source=image_source_arg,
        out=lambda wc, output: os.path.dirname(output.manifest),
        options=image_options,
    shell:
        "hpcdl arrays {wildcards.dataset} {params.source:q} {params.out:q} {params.options}"
        " > {log} 2>&1"
