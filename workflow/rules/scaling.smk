# Strong and weak scaling layouts as targets (systems: config/systems/<name>.yaml).
#   strong_scaling: one run per system in scaling.strong -> runs/strong_<system>/
#   weak_scaling:   scaling.weak.instances independent runs of scaling.weak.system, seed =
#                   train.seed + instance index -> runs/weak_<system>_i<k>/
# Each target ends in a report index over its runs (with the scaling figure over world sizes).


use rule train as scaling_train with:
    wildcard_constraints:
        # Only the configured scaling runs; "(?!)" matches nothing when there are none.
        run="|".join(re.escape(run) for run in SCALED) or "(?!)",
    resources:
        tasks=lambda wc: SCALED[wc.run].resources["tasks"],
        nodes=lambda wc: SCALED[wc.run].resources["nodes"],
        # Empty: a single-rank job, or a CPU system (no GPUs to request).
        mpi=lambda wc: SCALED[wc.run].resources.get("mpi", ""),
        gres=lambda wc: SCALED[wc.run].resources.get("gres", ""),
        tasks_per_gpu=1,
        runtime=lambda wc: SCALED[wc.run].resources["runtime"],
    params:
        data=training_data,
        out=lambda wc, output: os.path.dirname(output.done),
        launch=lambda wc: SCALED[wc.run].launch,
        preflight=preflight_step(SCALED),


ruleorder: scaling_train > train


rule strong_scaling:
    input:
        runs=scaling_targets("strong"),
    output:
        index=f"{RESULTS}/report/strong_scaling/index.html",
    log:
        f"{RESULTS}/logs/report_strong_scaling.log",
    conda:
        "../envs/hpcdl.yaml"
    params:
        runs=lambda wc, input: " ".join(os.path.dirname(p) for p in input.runs),
        out=lambda wc, output: os.path.dirname(output.index),
    shell:
        "hpcdl report {params.runs} --output {params.out} > {log} 2>&1"


use rule strong_scaling as weak_scaling with:
    input:
        runs=scaling_targets("weak"),
    output:
        index=f"{RESULTS}/report/weak_scaling/index.html",
    log:
        f"{RESULTS}/logs/report_weak_scaling.log",
