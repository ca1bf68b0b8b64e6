"""Launch composition: exact argv of every launcher x runtime, every bad setting's message, the CLI."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml

from conftest import BIN, REPO, run_tool, train_command
from hpcdl.launch import Launch, LaunchError, job_resources, launch_prefix, stage_prefix, validate_execution

IMAGE = "ghcr.io#hpcdl/hpcdl:0.1.0"
SRUN = ["srun", "--nodes=2", "--ntasks=16", "--ntasks-per-node=8", "--mpi=pmix"]


def argv(launch: Launch) -> list[str]:
    return shlex.split(launch_prefix(launch))


@pytest.fixture
def sqsh(tmp_path: Path) -> str:
    path = tmp_path / "hpcdl.sqsh"
    path.write_bytes(b"hsqs")
    return str(path)


@pytest.fixture
def sif(tmp_path: Path) -> str:
    path = tmp_path / "hpcdl.sif"
    path.write_bytes(b"SIF_MAGIC")
    return str(path)


# --- launcher x runtime: the exact words -------------------------------------------------------


@pytest.mark.parametrize(
    ("launch", "expected"),
    [
        (Launch(launcher="none"), []),
        (Launch(launcher="mpirun", tasks=1), []),
        (Launch(launcher="mpirun", tasks=4), ["mpirun", "-np", "4", "--oversubscribe"]),
        (
            Launch(launcher="mpirun", tasks=8, nodes=2),
            ["mpirun", "-np", "8", "--oversubscribe", "--map-by", "ppr:4:node"],
        ),
        (
            Launch(launcher="mpirun", tasks=6, nodes=2, tasks_per_node=4),
            ["mpirun", "-np", "6", "--oversubscribe", "--map-by", "ppr:4:node"],
        ),
        (Launch(launcher="srun", tasks=16, nodes=2), SRUN),
        (Launch(launcher="srun", tasks=16, nodes=2, gpus_per_node=8), [*SRUN, "--gpus-per-task=1"]),
        (
            Launch(launcher="srun", tasks=3, srun_mpi="pmi2"),
            ["srun", "--nodes=1", "--ntasks=3", "--ntasks-per-node=3", "--mpi=pmi2"],
        ),
        # LSF started the job inside the image already: nothing to add around the ranks.
        (Launch(launcher="none", runtime="lsf-docker"), []),
        (Launch(launcher="mpirun", runtime="lsf-docker", tasks=4), ["mpirun", "-np", "4", "--oversubscribe"]),
    ],
    ids=lambda v: v.__repr__()[:60] if isinstance(v, Launch) else None,
)
def test_launchers_without_image(launch, expected):
    assert argv(launch) == expected


def test_pyxis_flags_follow_srun_with_mounts_and_workdir():
    launch = Launch(
        launcher="srun",
        runtime="pyxis",
        tasks=16,
        nodes=2,
        gpus_per_node=8,
        image=IMAGE,
        mounts=("/data/cosmo:/data/cosmo:ro", "/home/u/run:/home/u/run", "/local/stage:/local/stage"),
        workdir="/home/u/run",
    )
    assert argv(launch) == [
        *SRUN,
        "--gpus-per-task=1",
        f"--container-image={IMAGE}",
        "--container-mounts=/data/cosmo:/data/cosmo:ro,/home/u/run:/home/u/run,/local/stage:/local/stage",
        "--container-workdir=/home/u/run",
    ]


def test_pyxis_reads_an_imported_squashfs_and_defaults_workdir_to_cwd(sqsh, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # pyxis takes only paths starting with / or ./ as files: a relative one is made absolute.
    for image in (sqsh, "hpcdl.sqsh"):
        launch = Launch(launcher="srun", runtime="pyxis", tasks=2, image=image)
        assert argv(launch) == [
            "srun", "--nodes=1", "--ntasks=2", "--ntasks-per-node=2", "--mpi=pmix",
            f"--container-image={sqsh}", f"--container-workdir={tmp_path}",
        ]


@pytest.mark.parametrize(
    ("image", "pyxis", "apptainer"),
    [
        # enroot pulls a name without `#` from Docker Hub and pyxis adds docker:// itself;
        # apptainer wants docker://registry/name.
        ("ghcr.io/hpcdl/hpcdl:0.1.0", "ghcr.io#hpcdl/hpcdl:0.1.0", "docker://ghcr.io/hpcdl/hpcdl:0.1.0"),
        ("docker://ghcr.io/hpcdl/hpcdl:0.1.0", "ghcr.io#hpcdl/hpcdl:0.1.0", "docker://ghcr.io/hpcdl/hpcdl:0.1.0"),
        ("ghcr.io#hpcdl/hpcdl:0.1.0", "ghcr.io#hpcdl/hpcdl:0.1.0", "docker://ghcr.io/hpcdl/hpcdl:0.1.0"),
        ("localhost:5000/hpcdl:1", "localhost:5000#hpcdl:1", "docker://localhost:5000/hpcdl:1"),
        ("hpcdl/hpcdl:0.1.0", "hpcdl/hpcdl:0.1.0", "docker://hpcdl/hpcdl:0.1.0"),
    ],
)
def test_registry_image_is_written_the_way_each_runtime_reads_it(image, pyxis, apptainer):
    srun = argv(Launch(launcher="srun", runtime="pyxis", image=image, workdir="/w"))
    assert f"--container-image={pyxis}" in srun
    assert argv(Launch(launcher="none", runtime="apptainer", image=image, workdir="/w"))[-1] == apptainer


@pytest.mark.parametrize(
    ("launcher", "tasks", "nodes", "head"),
    [
        ("none", 1, 1, []),
        ("mpirun", 4, 1, ["mpirun", "-np", "4", "--oversubscribe"]),
        ("mpirun", 8, 2, ["mpirun", "-np", "8", "--oversubscribe", "--map-by", "ppr:4:node"]),
        ("srun", 16, 2, SRUN),
    ],
)
def test_apptainer_runs_inside_each_task(sif, launcher, tasks, nodes, head):
    launch = Launch(
        launcher=launcher, runtime="apptainer", tasks=tasks, nodes=nodes, gpus_per_node=1,
        image=sif, mounts=("/data:/data:ro", "/run:/run"), workdir="/run",
    )
    gpu = ["--gpus-per-task=1"] if launcher == "srun" else []
    assert argv(launch) == [
        *head, *gpu, "apptainer", "exec", "--nv", "--bind", "/data:/data:ro", "--bind", "/run:/run",
        "--pwd", "/run", sif,
    ]


def test_apptainer_pulls_a_registry_image_without_gpus(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    launch = Launch(launcher="none", runtime="apptainer", image="docker://ghcr.io/hpcdl/hpcdl:0.1.0")
    assert argv(launch) == ["apptainer", "exec", "--pwd", str(tmp_path), "docker://ghcr.io/hpcdl/hpcdl:0.1.0"]


# --- bad settings: one clear message each ------------------------------------------------------


@pytest.mark.parametrize(
    ("launch", "message"),
    [
        (Launch(runtime="docker"),
         "execution.runtime: unknown runtime 'docker' (one of none, pyxis, apptainer, lsf-docker)"),
        (Launch(launcher="torchrun"), "execution.launcher: unknown launcher 'torchrun' (one of none, mpirun, srun)"),
        (Launch(launcher="mpirun", runtime="pyxis", image=IMAGE),
         "execution.launcher: runtime 'pyxis' needs launcher srun, got 'mpirun'"),
        (Launch(launcher="none", runtime="pyxis", image=IMAGE),
         "execution.launcher: runtime 'pyxis' needs launcher srun, got 'none'"),
        (Launch(launcher="srun", runtime="lsf-docker"),
         "execution.launcher: runtime 'lsf-docker' needs launcher none or mpirun, got 'srun'"),
        (Launch(launcher="srun", runtime="pyxis", image="ghcr.io/HPCDL/hpcdl:0.1.0"),
         "execution.image: 'ghcr.io/HPCDL/hpcdl:0.1.0' is not a valid image reference"),
        (Launch(launcher="srun", runtime="pyxis", image="hpcdl image:latest"),
         "execution.image: 'hpcdl image:latest' is not a valid image reference"),
        (Launch(launcher="srun", runtime="pyxis", image="ghcr.io/hpcdl/hpcdl:bad:tag"),
         "is not a valid image reference"),
        (Launch(launcher="srun", runtime="pyxis", image=""),
         "execution.image: runtime 'pyxis' needs a container image, got an empty value"),
        (Launch(launcher="srun", runtime="pyxis", image="/nonexistent/hpcdl.sqsh"),
         "execution.image: image file '/nonexistent/hpcdl.sqsh' does not exist"),
        (Launch(launcher="srun", runtime="pyxis", image="/images/hpcdl.sif"),
         "execution.image: '/images/hpcdl.sif': pyxis reads squashfs images ending in .sqsh"),
        (Launch(launcher="mpirun", runtime="apptainer", image="/images/hpcdl.sqsh"),
         "execution.image: '/images/hpcdl.sqsh': apptainer reads image files ending in .sif"),
        (Launch(launcher="mpirun", runtime="apptainer", image="hpcdl.sif"),
         "execution.image: image file 'hpcdl.sif' does not exist"),
        (Launch(launcher="srun", tasks=17, nodes=2, tasks_per_node=8),
         "stage: 17 tasks do not fit the allocation of 2 node(s) x 8 tasks per node"),
        (Launch(launcher="none", tasks=2, nodes=2), "stage: 2 nodes need a launcher (mpirun or srun), got 'none'"),
        (Launch(tasks=0), "stage: tasks (0) and nodes (1) must be at least 1"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_bad_launch_is_rejected_with_its_reason(launch, message):
    with pytest.raises(LaunchError) as err:
        launch_prefix(launch)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


# --- one workflow stage: its mounts and GPU flags (stage_prefix), its job resources ---------------


PYXIS = {"launcher": "srun", "runtime": "pyxis", "image": IMAGE, "gpus_per_node": 8, "tasks_per_node": 8}


def mounts_of(prefix: str) -> list[str]:
    """The ``--container-mounts`` of a pyxis prefix, in order."""
    (flag,) = [w for w in shlex.split(prefix) if w.startswith("--container-mounts=")]
    return flag.split("=", 1)[1].split(",")


def test_stage_prefix_mounts_the_working_directory_readonly_data_and_staging(tmp_path):
    work = tmp_path / "work"
    data = work / "results/data/cosmoflow/synth"
    prefix = stage_prefix(PYXIS, 16, 2, str(work), str(work / "results"), (str(data),), "/local/stage", gpus=True)
    # Results under the working directory ride on its mount; the data goes on top read-only.
    assert mounts_of(prefix) == [f"{work}:{work}", f"{data}:{data}:ro", "/local/stage:/local/stage"]
    assert shlex.split(prefix)[:6] == [*SRUN, "--gpus-per-task=1"]
    assert f"--container-image={IMAGE}" in shlex.split(prefix)


def test_stage_prefix_mounts_results_outside_the_working_directory(tmp_path):
    work, scratch = tmp_path / "work", tmp_path / "scratch/results"
    prefix = stage_prefix(PYXIS, 8, 1, str(work), str(scratch), (), "")
    assert mounts_of(prefix) == [f"{work}:{work}", f"{scratch}:{scratch}"]  # no staging directory


def test_stage_prefix_resolves_relative_paths_against_the_working_directory(tmp_path, monkeypatch):
    # Relative results and data directories are the workflow's, under workdir, and the container
    # starts there, whatever directory this process is in.
    monkeypatch.chdir(tmp_path)
    work = tmp_path / "elsewhere/work"
    prefix = stage_prefix(PYXIS, 8, 1, str(work), "results", ("results/data/cosmoflow/synth",), "")
    data = work / "results/data/cosmoflow/synth"
    assert mounts_of(prefix) == [f"{work}:{work}", f"{data}:{data}:ro"]
    assert shlex.split(prefix)[-1] == f"--container-workdir={work}"
    # execution.workdir still decides where the container starts.
    pinned = stage_prefix({**PYXIS, "workdir": "/w"}, 8, 1, str(work), "results")
    assert shlex.split(pinned)[-1] == "--container-workdir=/w"


def test_stage_prefix_appends_the_configured_mounts(tmp_path):
    execution = {**PYXIS, "mounts": ["/site/models:/models:ro"]}
    prefix = stage_prefix(execution, 8, 1, str(tmp_path), str(tmp_path / "results"), (), "/stage")
    assert mounts_of(prefix) == [f"{tmp_path}:{tmp_path}", "/stage:/stage", "/site/models:/models:ro"]


def test_stage_prefix_gives_gpu_flags_to_gpu_stages_only(tmp_path, sif):
    pyxis = stage_prefix(PYXIS, 16, 2, str(tmp_path), "results", gpus=False)
    assert shlex.split(pyxis)[:5] == SRUN and "--gpus-per-task=1" not in shlex.split(pyxis)
    apptainer = {"launcher": "mpirun", "runtime": "apptainer", "image": sif, "gpus_per_node": 4}
    cpu = shlex.split(stage_prefix(apptainer, 4, 1, str(tmp_path), "results", ("/data",), "/stage"))
    gpu = shlex.split(stage_prefix(apptainer, 4, 1, str(tmp_path), "results", ("/data",), "/stage", gpus=True))
    binds = ["--bind", f"{tmp_path}:{tmp_path}", "--bind", "/data:/data:ro", "--bind", "/stage:/stage"]
    head = ["mpirun", "-np", "4", "--oversubscribe", "apptainer", "exec"]
    assert cpu == [*head, *binds, "--pwd", str(tmp_path), sif]
    assert gpu == [*head, "--nv", *binds, "--pwd", str(tmp_path), sif]


def test_stage_prefix_without_a_container_is_the_plain_launcher(tmp_path):
    assert stage_prefix({"launcher": "mpirun"}, 2, 1, str(tmp_path), "results", ("/data",), "/stage") == (
        "mpirun -np 2 --oversubscribe"
    )
    assert stage_prefix({"launcher": "mpirun", "gpus_per_node": 2}, 1, 1, str(tmp_path), "results", gpus=True) == ""


def test_stage_prefix_rejects_a_layout_the_launcher_cannot_start(tmp_path):
    with pytest.raises(LaunchError, match=r"2 nodes need a launcher \(mpirun or srun\), got 'none'"):
        stage_prefix({"launcher": "none"}, 2, 2, str(tmp_path), "results")


@pytest.mark.parametrize(
    ("execution", "tasks", "nodes", "gpus", "expected"),
    [
        ({"launcher": "mpirun"}, 1, 1, False, {"tasks": 1, "nodes": 1}),
        # A job that starts its own ranks says with which launcher (SLURM then adds no srun -n1).
        ({"launcher": "mpirun"}, 2, 1, False, {"tasks": 2, "nodes": 1, "mpi": "mpirun"}),
        ({"launcher": "srun"}, 16, 2, False, {"tasks": 16, "nodes": 2, "mpi": "srun"}),
        ({"launcher": "none"}, 2, 1, False, {"tasks": 2, "nodes": 1}),
        # One GPU per rank: the node's GPUs, one task per GPU; none for CPU stages or CPU systems.
        ({"launcher": "srun", "gpus_per_node": 8}, 16, 2, True,
         {"tasks": 16, "nodes": 2, "mpi": "srun", "gres": "gpu:8", "tasks_per_gpu": 1}),
        ({"launcher": "srun", "gpus_per_node": 8}, 16, 2, False, {"tasks": 16, "nodes": 2, "mpi": "srun"}),
        ({"launcher": "mpirun", "gpus_per_node": 0}, 2, 1, True, {"tasks": 2, "nodes": 1, "mpi": "mpirun"}),
        ({"launcher": "none", "gpus_per_node": 1}, 1, 1, True,
         {"tasks": 1, "nodes": 1, "gres": "gpu:1", "tasks_per_gpu": 1}),
    ],
)
def test_job_resources(execution, tasks, nodes, gpus, expected):
    assert job_resources(execution, tasks, nodes, gpus) == expected


# --- whole-config validation, as the workflow runs it at start ---------------------------------


def pipeline_config(*overlays: Path, **execution) -> dict:
    """config/config.yaml with profile overlays (as --configfile merges them) and execution keys."""
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    for overlay in overlays:
        for key, value in yaml.safe_load(overlay.read_text()).items():
            config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
    config["execution"].update(execution)
    return config


def profile_resources(name: str, **values) -> dict:
    resources = yaml.safe_load((REPO / f"profiles/{name}/config.yaml").read_text())["default-resources"]
    return {**resources, **values}


SLURM_SITE = {"slurm_partition": "gpu", "slurm_account": "m1234"}
LSF_SITE = {"lsf_group": "compute-jdoe", "lsf_job_group": "/jdoe/hpcdl"}


def test_shipped_profiles_validate_once_site_values_are_set():
    validate_execution(pipeline_config(REPO / "profiles/slurm/pipeline.yaml"), profile_resources("slurm", **SLURM_SITE))
    validate_execution(pipeline_config(REPO / "profiles/lsf/pipeline.yaml"), profile_resources("lsf", **LSF_SITE))
    validate_execution(pipeline_config(), {})


@pytest.mark.parametrize(
    ("profile", "execution", "resources", "message"),
    [
        ("slurm", {}, {**SLURM_SITE, "slurm_partition": ""},
         "default-resources: slurm_partition is empty; set it under default-resources in profiles/slurm/config.yaml"),
        ("slurm", {}, {**SLURM_SITE, "slurm_account": " "}, "default-resources: slurm_account is empty"),
        ("lsf", {}, {**LSF_SITE, "lsf_group": ""},
         "default-resources: lsf_group is empty; set it under default-resources in profiles/lsf/config.yaml"),
        ("lsf", {}, {**LSF_SITE, "lsf_job_group": ""}, "default-resources: lsf_job_group is empty"),
        ("lsf", {}, {**LSF_SITE, "lsf_queue": ""}, "default-resources: lsf_queue is empty"),
        ("lsf", {}, {**LSF_SITE, "lsf_image": "Not An Image"},
         "default-resources: lsf_image: 'Not An Image' is not a valid image reference"),
        ("lsf", {}, {**LSF_SITE, "lsf_image": "/images/hpcdl.sif"},
         "LSF Docker needs a registry reference, not a file"),
        ("lsf", {}, {**LSF_SITE, "lsf_image": "ghcr.io#hpcdl/hpcdl:0.1.0"},
         "default-resources: lsf_image: 'ghcr.io#hpcdl/hpcdl:0.1.0': Docker names the registry with '/'"),
        ("slurm", {"scheduler": "pbs"}, SLURM_SITE, "execution.scheduler: unknown scheduler 'pbs' (one of local, slurm, lsf)"),
        ("slurm", {"runtime": "singularity"}, SLURM_SITE, "execution.runtime: unknown runtime 'singularity'"),
        ("slurm", {"launcher": "mpirun"}, SLURM_SITE, "runtime 'pyxis' needs launcher srun, got 'mpirun'"),
        ("slurm", {"image": "/scratch/hpcdl.sqsh"}, SLURM_SITE, "image file '/scratch/hpcdl.sqsh' does not exist"),
    ],
)
def test_validate_execution_names_the_bad_setting(profile, execution, resources, message):
    config = pipeline_config(REPO / f"profiles/{profile}/pipeline.yaml", **execution)
    with pytest.raises(LaunchError) as err:
        validate_execution(config, profile_resources(profile, **resources))
    assert message in str(err.value)


def test_validate_execution_checks_each_stage_against_the_allocation():
    config = pipeline_config(REPO / "profiles/slurm/pipeline.yaml")
    config["train"].update(tasks=17, nodes=2)  # the profile runs 8 tasks per node
    with pytest.raises(LaunchError, match=r"^train: 17 tasks do not fit the allocation of 2 node\(s\) x 8"):
        validate_execution(config, profile_resources("slurm", **SLURM_SITE))


# --- hpcdl launch-cmd --------------------------------------------------------------------------


def test_launch_cmd_prints_prefix_and_command(hpcdl):
    result = hpcdl(
        "launch-cmd", "--launcher", "srun", "--runtime", "pyxis", "--tasks", "16", "--nodes", "2",
        "--gpus-per-node", "8", "--image", IMAGE, "--mount", "/data:/data:ro", "--mount", "/run:/run",
        "--workdir", "/run", "--", "hpcdl", "train", "--run-name", "a b",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "srun --nodes=2 --ntasks=16 --ntasks-per-node=8 --mpi=pmix --gpus-per-task=1"
        " '--container-image=ghcr.io#hpcdl/hpcdl:0.1.0' --container-mounts=/data:/data:ro,/run:/run"
        " --container-workdir=/run hpcdl train --run-name 'a b'\n"
    )
    assert result.stderr == ""


def test_launch_cmd_local_default_is_plain_mpirun(hpcdl):
    result = hpcdl("launch-cmd", "--tasks", "3")
    assert (result.returncode, result.stdout) == (0, "mpirun -np 3 --oversubscribe\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--runtime", "docker"], "hpcdl launch-cmd: execution.runtime: unknown runtime 'docker'"),
        (["--launcher", "mpirun", "--runtime", "pyxis", "--image", IMAGE],
         "hpcdl launch-cmd: execution.launcher: runtime 'pyxis' needs launcher srun, got 'mpirun'"),
        (["--launcher", "srun", "--runtime", "pyxis", "--image", "/missing/hpcdl.sqsh"],
         "hpcdl launch-cmd: execution.image: image file '/missing/hpcdl.sqsh' does not exist"),
        (["--launcher", "srun", "--tasks", "9", "--tasks-per-node", "8"],
         "hpcdl launch-cmd: stage: 9 tasks do not fit the allocation of 1 node(s) x 8 tasks per node"),
    ],
)
def test_launch_cmd_rejects_bad_settings_with_one_line(hpcdl, args, message):
    result = hpcdl("launch-cmd", *args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1


def test_launch_cmd_unknown_launcher_is_a_usage_error(hpcdl):
    result = hpcdl("launch-cmd", "--launcher", "torchrun")
    assert result.returncode == 2
    assert "invalid choice: 'torchrun'" in result.stderr


# --- the workflow: container flags on the rule's srun, bad settings stop the run first ------------


def snakemake(*args: str):
    return run_tool([str(BIN / "snakemake"), "--cores", "1", *args], cwd=REPO, timeout=300)


def test_workflow_puts_pyxis_flags_on_srun_never_on_the_job(tmp_path):
    staging = tmp_path / "staging"
    config = tmp_path / "pyxis.yaml"
    config.write_text(yaml.safe_dump({
        "execution": {"launcher": "srun", "runtime": "pyxis", "image": IMAGE, "gpus_per_node": 4,
                      "tasks_per_node": 4},
        "train": {"run_name": "demo", "tasks": 4, "seed": 0, "batch_size": 8, "epochs": 1,
                  "staging_dir": str(staging)},
        "preflight": {"enabled": True, "min_busbw": 100},
    }))
    # Dry run over the default results/ (under the working directory): nothing is written.
    result = snakemake("-n", "-p", "--forceall", "results/runs/demo/run.json", "--configfile", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    shells = [line.removeprefix("Shell command: ") for line in result.stdout.splitlines()
              if line.startswith(("Shell command: srun", "Shell command: (srun"))]
    shell = next(s for s in shells if " hpcdl train " in s)
    train = shlex.split(train_command(shell))
    # The preflight runs first, in the same job, with the training's own srun and container.
    preflight = shlex.split(shell.removeprefix("(").split(" && ")[0])
    assert preflight[: preflight.index("hpcdl")] == train[: train.index("hpcdl")]
    assert preflight[preflight.index("hpcdl"):][:4] == ["hpcdl", "preflight", "--data", "results/data/cosmoflow/synth/npy"]
    assert "--min-busbw" in preflight and preflight[preflight.index("--min-busbw") + 1] == "100"
    data = str(REPO / "results/data/cosmoflow/synth")
    assert train[: train.index("hpcdl")] == [
        "srun", "--nodes=1", "--ntasks=4", "--ntasks-per-node=4", "--mpi=pmix", "--gpus-per-task=1",
        f"--container-image={IMAGE}",
        f"--container-mounts={REPO}:{REPO},{data}:{data}:ro,{staging}:{staging}",
        f"--container-workdir={REPO}",
    ]
    assert any(" hpcdl convert " in s and "--container-image=" in s for s in shells)
    # The batch job itself (sbatch) gets resources only; the container belongs to the job's srun.
    resources = [line for line in result.stdout.splitlines() if line.strip().startswith("resources:")]
    assert resources and not any("container" in line for line in resources)
    assert any("gres=gpu:4" in line and "mpi=srun" in line for line in resources)


@pytest.mark.parametrize(
    ("execution", "message"),
    [
        ({"launcher": "mpirun", "runtime": "docker"}, "execution.runtime: unknown runtime 'docker'"),
        ({"launcher": "mpirun", "runtime": "pyxis", "image": IMAGE},
         "runtime 'pyxis' needs launcher srun, got 'mpirun'"),
        ({"launcher": "srun", "runtime": "pyxis", "image": "/nowhere/hpcdl.sqsh"},
         "image file '/nowhere/hpcdl.sqsh' does not exist"),
    ],
)
def test_workflow_stops_on_a_bad_execution_setting_before_any_job(tmp_path, execution, message):
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump({"results": str(tmp_path / "results"), "execution": execution}))
    result = snakemake("-n", "--configfile", str(config))
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert "Building DAG of jobs" not in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()
