# A hyperparameter sweep (the sweep: section, examples in config/sweeps/): every point of the
# space trained once (hpcdl sweep) as an ordinary run results/runs/<name>-t<i>/, results in
# results/sweeps/<name>/trials.jsonl, then checked and plotted (hpcdl sweep-report) in
# results/report/sweeps/<name>/. sweep.backend: mpi (one job of sweep.tasks ranks), local (a pool of
# sweep.tasks processes) or array (sweep.elements elements per halving rung: SLURM or local jobs of
# one element each, grouped by the SLURM profile into one array; LSF arrays -J name[1-N]).


rule sweep:
    input:
        done=get_sweep_target,
    output:
        index=report(
            # without a sweep: section the input function stops with the reason first
            f"{RESULTS}/report/sweeps/{SWEEP.sweep.options.name if SWEEP else 'sweep'}/index.html",
            caption="../report/sweep.rst",
            category="Hyperparameter sweep",
        ),
    log:
        f"{RESULTS}/logs/report_sweep.log",
    conda:
        "../envs/hpcdl.yaml"
    params:
        sweep=lambda wc: SWEEP.dir,
        out=lambda wc, output: os.path.dirname(output.index),
    shell:
        "hpcdl sweep-report {params.sweep:q} --output {params.out:q} > {log:q} 2>&1"


if SWEEP is not None:

    rule sweep_plan:
        output:
            f"{SWEEP.dir}/sweep.json",
        log:
            f"{RESULTS}/logs/sweep/plan.log",
        conda:
            "../envs/hpcdl.yaml"
        params:
            definition=json.dumps(SWEEP.sweep.as_dict(), sort_keys=True),
        shell:
            "hpcdl sweep-plan {output:q} --json {params.definition:q} > {log:q} 2>&1"

    # The whole sweep in one job: MPI ranks (one trial each, rank 0 handing out points) or a
    # local pool. A failed or timed-out job is resubmitted; finished trials are kept.
    rule sweep_run:
        input:
            data=training_inputs(),
            definition=f"{SWEEP.dir}/sweep.json",
        output:
            done=f"{SWEEP.dir}/done/all.json",
        log:
            f"{RESULTS}/logs/sweep/run.log",
        retries: PLACEMENT.retries
        conda:
            "../envs/hpcdl.yaml"
        threads: SWEEP.sweep.options.tasks if SWEEP.sweep.options.backend == "local" else 1
        resources:
            **(
                P.resources(
                    SWEEP.sweep.options.tasks, SWEEP.sweep.options.nodes, gpus=True
                )
                if SWEEP.sweep.options.backend == "mpi"
                else P.resources(1)
            ),
        params:
            data=training_data,
            out=lambda wc, input: os.path.dirname(input.definition),
            launch=(
                P.launch(
                    SWEEP.sweep.options.tasks,
                    SWEEP.sweep.options.nodes,
                    readonly=[DATA.dir],
                    gpus=True,
                )
                if SWEEP.sweep.options.backend == "mpi"
                else P.launch(1, readonly=[DATA.dir], gpus=True)
            ),
            runs=f"{RESULTS}/runs",
            workers=SWEEP.sweep.options.tasks,
        shell:
            "{params.launch} hpcdl sweep --definition {input.definition:q}"
            " --data-dir {params.data:q} --output-dir {params.out:q} --runs-dir {params.runs:q}"
            + (
                " --workers {params.workers:q}"
                if SWEEP.sweep.options.backend == "local"
                else ""
            )
            + " --done {output.done:q} > {log:q} 2>&1"

    # One array element: the element-th of every sweep.elements tasks of a rung (SLURM: the
    # profile's slurm-array-jobs puts a rung's elements into one sbatch --array).
    rule sweep_element:
        input:
            data=training_inputs(),
            definition=f"{SWEEP.dir}/sweep.json",
            before=get_rung_before,
        output:
            done=f"{SWEEP.dir}/done/r{{rung}}_e{{element}}.json",
        log:
            f"{RESULTS}/logs/sweep/r{{rung}}_e{{element}}.log",
        wildcard_constraints:
            rung=r"\d+",
            element=r"\d+",
        retries: PLACEMENT.retries
        conda:
            "../envs/hpcdl.yaml"
        resources:
            **P.one_rank_resources(gpus=True),
        params:
            data=training_data,
            out=lambda wc, input: os.path.dirname(input.definition),
            launch=P.launch(1, readonly=[DATA.dir], gpus=True),
            elements=lambda wc: SWEEP.elements(int(wc.rung)),
            runs=f"{RESULTS}/runs",
        shell:
            "{params.launch} hpcdl sweep --definition {input.definition:q}"
            " --data-dir {params.data:q} --output-dir {params.out:q} --runs-dir {params.runs:q}"
            " --element {wildcards.element:q} --elements {params.elements:q}"
            " --rung {wildcards.rung:q} --done {output.done:q} > {log:q} 2>&1"

    # A rung is closed once every point of it has a result: the next rung's jobs wait on this.
    rule sweep_rung:
        input:
            jobs=get_rung_jobs,
            definition=f"{SWEEP.dir}/sweep.json",
        output:
            done=f"{SWEEP.dir}/done/rung{{rung}}.json",
        log:
            f"{RESULTS}/logs/sweep/rung{{rung}}.log",
        wildcard_constraints:
            rung=r"\d+",
        localrule: True
        conda:
            "../envs/hpcdl.yaml"
        params:
            out=lambda wc, input: os.path.dirname(input.definition),
            runs=f"{RESULTS}/runs",
        shell:
            "hpcdl sweep --definition {input.definition:q} --output-dir {params.out:q}"
            " --runs-dir {params.runs:q} --close-rung {wildcards.rung:q} --done {output.done:q} > {log:q} 2>&1"

    # One LSF array of up to 1000 elements (-J sweep_lsf_array[1-N], under the job group that caps
    # how many run at once); element = offset + LSB_JOBINDEX - 1. Every element writes the marker
    # when its share is done (their lines share the log, each naming its element as its rank); the job is done when every element is (profiles/lsf/status.py).
    rule sweep_lsf_array:
        input:
            data=training_inputs(),
            definition=f"{SWEEP.dir}/sweep.json",
            before=get_rung_before,
        output:
            done=f"{SWEEP.dir}/done/r{{rung}}_a{{array}}.json",
        log:
            f"{RESULTS}/logs/sweep/r{{rung}}_a{{array}}.log",
        wildcard_constraints:
            rung=r"\d+",
            array=r"\d+",
        retries: PLACEMENT.retries
        conda:
            "../envs/hpcdl.yaml"
        resources:
            **P.one_rank_resources(gpus=True),
            lsf_array=lambda wc: SWEEP.lsf_array_size(int(wc.rung), int(wc.array)),
        params:
            data=training_data,
            out=lambda wc, input: os.path.dirname(input.definition),
            launch=P.launch(1, readonly=[DATA.dir], gpus=True),
            elements=lambda wc: SWEEP.elements(int(wc.rung)),
            offset=lambda wc: int(wc.array) * LSF_ARRAY_MAX,
            runs=f"{RESULTS}/runs",
        shell:
            "{params.launch} hpcdl sweep --definition {input.definition:q}"
            " --data-dir {params.data:q} --output-dir {params.out:q} --runs-dir {params.runs:q}"
            " --array-index-from LSB_JOBINDEX --element-offset {params.offset:q}"
            " --elements {params.elements:q} --rung {wildcards.rung:q} --done {output.done:q}"
            " >> {log:q} 2>&1"
