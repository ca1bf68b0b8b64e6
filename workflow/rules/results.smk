# The configured run scored beside published MLPerf HPC results (not part of `all`):
#   snakemake --profile profiles/local results
# `published_results` lists folders of MLPerf HPC submissions (a clone of an MLCommons results
# repository, an organisation or a system folder); hpcdl results finds the
# <org>/results/<system>/{strong,weak}/cosmoflow/result_*.txt folders in them.


rule results:
    input:
        run=f"{RESULTS}/runs/{config['train']['run_name']}/run.json",
        published=config.get("published_results", []),
    output:
        index=f"{RESULTS}/compare/index.html",
        summary=f"{RESULTS}/compare/summary.json",
    log:
        f"{RESULTS}/logs/results.log",
    conda:
        "../envs/hpcdl.yaml"
    params:
        run=lambda wc, input: os.path.dirname(input.run),
        out=lambda wc, output: os.path.dirname(output.index),
    shell:
        "hpcdl results {params.run:q} {input.published:q} --output {params.out:q} > {log:q} 2>&1"
