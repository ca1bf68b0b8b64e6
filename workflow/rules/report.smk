# The configured run as HTML pages and figures, each also in `snakemake --report`.
RUN = config["train"]["run_name"]


rule report:
    input:
        run=f"{RESULTS}/runs/{RUN}/run.json",
    output:
        index=report(
            f"{RESULTS}/report/index.html",
            caption="../report/index.rst",
            category="Runs",
            labels={"run": RUN, "page": "index"},
        ),
        page=report(
            f"{RESULTS}/report/{RUN}.html",
            caption="../report/index.rst",
            category="Runs",
            labels={"run": RUN, "page": "run"},
        ),
        # A directory with a pattern, so that each figure's caption knows which figure it is.
        figures=report(
            directory(f"{RESULTS}/report/{RUN}"),
            patterns=["{fig}.png"],
            caption="../report/figures.rst",
            category="Training curves",
            subcategory=RUN,
            labels={"run": RUN, "figure": "{fig}"},
        ),
    log:
        f"{RESULTS}/logs/report.log",
    conda:
        "../envs/hpcdl.yaml"
    params:
        run=lambda wc, input: os.path.dirname(input.run),
        out=lambda wc, output: os.path.dirname(output.index),
    shell:
        "hpcdl report {params.run} --output {params.out} > {log} 2>&1"
