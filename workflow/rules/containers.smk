# Container images: `snakemake --profile profiles/slurm enroot_import` turns the registry image of
# execution.image into a squashfs file once, so pyxis does not pull it on every node of every job;
# then point execution.image at the .sqsh file.


rule enroot_import:
    output:
        f"{RESULTS}/containers/hpcdl.sqsh",
    log:
        f"{RESULTS}/logs/enroot_import.log",
    conda:
        "../envs/hpcdl.yaml"
    params:
        image=config["execution"].get("image", ""),
    shell:
        "hpcdl container import {params.image:q} {output:q} > {log:q} 2>&1"
