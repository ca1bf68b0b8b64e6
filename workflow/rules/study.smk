# Scaling study and two-arm comparison of the configured workload (study: section; runs built by
# hpcdl.study.runs while the workflow is parsed):
#   scaling_study: study.seeds runs per world size (or system) -> runs/study_w<N>_s<k>/
#   compare:       the same per arm of study.arms -> runs/compare_<arm>_w<N>_s<k>/
# Each run is a normal training under the active profile; each target ends in one page of time per
# epoch, time to target, speed-up and the target metric against ranks, over the seeds.


use rule train as study_train with:
    wildcard_constraints:
        run="|".join(re.escape(run) for run in STUDY) or "(?!)",
    threads: STUDY_THREADS
    resources:
        tasks=lambda wc: STUDY[wc.run].resources["tasks"],
        nodes=lambda wc: STUDY[wc.run].resources["nodes"],
        mpi=lambda wc: STUDY[wc.run].resources.get("mpi", ""),
        gres=lambda wc: STUDY[wc.run].resources.get("gres", ""),
        tasks_per_gpu=1,
        runtime=lambda wc: STUDY[wc.run].resources["runtime"],
    params:
        data=training_data,
        out=lambda wc, output: os.path.dirname(output.done),
        launch=lambda wc: STUDY[wc.run].launch,
        preflight=preflight_step(STUDY),


ruleorder: study_train > train


rule scaling_study:
    input:
        runs=study_targets("study"),
    output:
        index=report(
            f"{RESULTS}/report/scaling_study/index.html",
            caption="../report/scaling_study.rst",
            category="Scaling study",
        ),
    log:
        f"{RESULTS}/logs/report_scaling_study.log",
    conda:
        "../envs/hpcdl.yaml"
    params:
        runs=lambda wc, input: " ".join(os.path.dirname(p) for p in input.runs),
        out=lambda wc, output: os.path.dirname(output.index),
    shell:
        "hpcdl study-report {params.runs} --output {params.out} > {log} 2>&1"


rule compare:
    input:
        runs=study_targets("compare"),
    output:
        index=report(
            f"{RESULTS}/report/compare/index.html",
            caption="../report/compare.rst",
            category="Comparison",
        ),
    log:
        f"{RESULTS}/logs/report_compare.log",
    conda:
        "../envs/hpcdl.yaml"
    params:
        arms=compare_arms,
        out=lambda wc, output: os.path.dirname(output.index),
    shell:
        "hpcdl study-report {params.arms} --output {params.out} > {log} 2>&1"
