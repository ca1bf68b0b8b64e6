# The MixUp comparison study (workload classify): mixup_comparison.seeds runs per arm, no MixUp
# and MixUp at each of mixup_comparison.alphas, each a normal training (runs/mixup_<arm>_s<k>/),
# compared on one page: validation-accuracy curves with their seed bands, test accuracy, the
# train-validation gap and a verdict against the seed-to-seed spread.


rule mixup_comparison:
    input:
        runs=mixup_targets,
    output:
        index=report(
            f"{RESULTS}/report/mixup_comparison/index.html",
            caption="../report/mixup.rst",
            category="MixUp comparison",
        ),
    log:
        f"{RESULTS}/logs/report_mixup_comparison.log",
    conda:
        "../envs/hpcdl.yaml"
    params:
        runs=lambda wc, input: " ".join(os.path.dirname(p) for p in input.runs),
        out=lambda wc, output: os.path.dirname(output.index),
    shell:
        "hpcdl mixup-comparison {params.runs} --output {params.out} > {log} 2>&1"
