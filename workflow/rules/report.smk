RUNS = [config["train"]["run_name"]]
FIGURES = ["loss", "mae", "lr", "throughput"]


rule report:
    input:
        runs=expand(f"{RESULTS}/runs/{{run}}/run.json", run=RUNS),
    output:
        index=report(
            f"{RESULTS}/report/index.html",
            caption="../report/index.rst",
            category="Runs",
        ),
        figures=report(
            expand(f"{RESULTS}/report/{{run}}/{{fig}}.png", run=RUNS, fig=FIGURES),
            caption="../report/figures.rst",
            category="Training curves",
        ),
    log:
        f"{RESULTS}/logs/report.log",
    conda:
        "../envs/hpcdl.yaml"
    params:
        runs=lambda wc, input: " ".join(os.path.dirname(p) for p in input.runs),
        out=lambda wc, output: os.path.dirname(output.index),
    shell:
        "hpcdl report {params.runs} --output {params.out} > {log} 2>&1"
