# Experiments (experiments: section, runs built by hpcdl.experiments.runs while the workflow is
# parsed): arms x world sizes | system files x seeds, each point an ordinary training under the
# active profile -> runs/<workload>-<name>-<arm>-w<N>-s<k>/ (-<system>- for a system file), and
# one page per experiment: report/experiments/<name>/index.html (+ summary.json).
#   snakemake experiments                                 every experiment of the config
#   snakemake results/report/experiments/<name>/index.html   one of them


use rule train as experiment_train with:
    wildcard_constraints:
        # Only the configured experiment runs; "(?!)" matches nothing when there are none.
        run="|".join(re.escape(run) for run in EXPERIMENT_RUNS) or "(?!)",
    threads: P.experiment_threads
    resources:
        tasks=lambda wc: EXPERIMENT_RUNS[wc.run].resources["tasks"],
        nodes=lambda wc: EXPERIMENT_RUNS[wc.run].resources["nodes"],
        # Empty: a single-rank job, or a CPU system (no GPUs to request).
        mpi=lambda wc: EXPERIMENT_RUNS[wc.run].resources.get("mpi", ""),
        gres=lambda wc: EXPERIMENT_RUNS[wc.run].resources.get("gres", ""),
        tasks_per_gpu=1,
        runtime=lambda wc: EXPERIMENT_RUNS[wc.run].resources["runtime"],
        attempt=lambda wc, attempt: attempt,
    params:
        data=training_data,
        out=lambda wc, output: os.path.dirname(output.done),
        launch=lambda wc: EXPERIMENT_RUNS[wc.run].launch,
        preflight=get_preflight,


ruleorder: experiment_train > train


rule experiment:
    input:
        pages=get_experiment_pages_of_runs,
    output:
        index=report(
            f"{RESULTS}/report/experiments/{{name}}/index.html",
            caption="../report/experiment.rst",
            category="Experiments",
            subcategory="{name}",
        ),
        summary=f"{RESULTS}/report/experiments/{{name}}/summary.json",
    log:
        f"{RESULTS}/logs/report_experiment_{{name}}.log",
    wildcard_constraints:
        name="|".join(re.escape(name) for name in EXPERIMENTS) or "(?!)",
    conda:
        "../envs/hpcdl.yaml"
    params:
        arms=get_experiment_arms,
        title=lambda wc: EXPERIMENTS[wc.name].title,
        workload=config["workload"],
        out=lambda wc, output: os.path.dirname(output.index),
    shell:
        "hpcdl experiment-report --name {wildcards.name:q} --title {params.title:q}"
        " --workload {params.workload:q} {params.arms:q} --output {params.out:q} > {log:q} 2>&1"


rule experiments:
    input:
        get_experiment_pages,
