# Pages: one per run (hpcdl report) and the one index of every run, experiment and sweep under
# the results directory (hpcdl index, which also pages every run that has no page yet). A run
# made by another config (another workload, an experiment, a sweep) is read from its records as it
# is: no rule of this config retrains it (rules/train.smk trains only this config's runs). The
# Snakefile refreshes the index after every invocation that ran jobs, so it lists every run,
# experiment and sweep whichever target made them.


rule run_page:
    input:
        run=f"{RESULTS}/runs/{{run}}/run.json",
    output:
        page=report(
            f"{RESULTS}/report/{{run}}.html",
            caption="../report/run.rst",
            category="Runs",
            labels={"run": "{run}", "page": "run"},
        ),
        # A directory with a pattern, so that each figure's caption knows which figure it is.
        figures=report(
            directory(f"{RESULTS}/report/{{run}}"),
            patterns=["{fig}.png"],
            caption="../report/figures.rst",
            category="Training curves",
            subcategory="{run}",
            labels={"run": "{run}", "figure": "{fig}"},
        ),
    log:
        f"{RESULTS}/logs/report/{{run}}.log",
    localrule: True
    conda:
        "../envs/hpcdl.yaml"
    params:
        run=lambda wc, input: os.path.dirname(input.run),
        out=lambda wc, output: os.path.dirname(output.page),
    shell:
        "hpcdl report {params.run:q} --output {params.out:q} > {log:q} 2>&1"


rule index:
    input:
        page=f"{RESULTS}/report/{RUN}.html",
    output:
        report(
            f"{RESULTS}/report/index.html",
            caption="../report/index.rst",
            category="Runs",
            labels={"run": "all runs", "page": "index"},
        ),
    log:
        f"{RESULTS}/logs/report/index.log",
    localrule: True
    conda:
        "../envs/hpcdl.yaml"
    params:
        # results/ above report/index.html
        root=lambda wc, output: os.path.dirname(os.path.dirname(output[0])),
    shell:
        "hpcdl index {params.root:q} --output {output:q} > {log:q} 2>&1"
