"""The data declarations: every registered workload's data sections checked with one line per
problem (nested keys named in full), and a stage's ``--json`` arguments read as its flags."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from hpcdl import cli, workloads
from hpcdl.data import stages


def plan_of(workload: str, **sections: object) -> stages.DataPlan:
    return stages.plan(workloads.entry(workload).data, workload, {"results": "r", **sections})


@pytest.mark.parametrize("name", sorted(workloads.REGISTRY))
def test_every_workload_plans_its_default_data_under_its_own_directory(name: str) -> None:
    plan = plan_of(name)
    assert plan.dir.startswith(f"r/data/{name}/") and plan.data_dir.startswith(plan.dir)
    assert plan.inputs and all(path.startswith(plan.dir) for path in plan.inputs)
    made = {path for stage in plan.stages for path in stage.outputs.values()}
    assert made, "a workload's data is made by at least one stage"


@pytest.mark.parametrize(
    ("workload", "sections", "lines"),
    [
        ("segment", {"segment_data": {"cells": {"size": 8, "colour": 1}}},
         ["segment_data.cells.colour: unknown setting (known: size, train, validation, test, seed, nuclei)"]),
        ("segment", {"segment_data": {"cells": {"size": 8}, "classes": ["a,b", "c"]}},
         ["segment_data.cells.size must be >= 16, got 8", "segment_data.classes[0] 'a,b' does not match [^,]+"]),
        ("segment", {"segment_data": {"source": "folder"}},
         ["segment_data.folder: segment_data.source folder needs the folder"]),
        ("classify", {"images": {"dataset": "cifar10", "downloads": {"cifar10": [{"url": "ftp://x"}]}}},
         ["images.downloads.cifar10[0].url 'ftp://x' does not match ((https?|file)://.*)?"]),
        ("classify", {"images": {"dataset": "mnist"}}, ["images.downloads.mnist: lists no file to download"]),
        ("cosmoflow", {"dataset": {"source": "download"}, "convert": {"tasks": 0}},
         ["convert.tasks must be >= 1, got 0"]),
        ("cosmoflow", {"dataset": {"source": "download"}},
         ["download.url: dataset.source download needs the tarball's url"]),
    ],
)
def test_bad_data_settings_are_named_by_their_keys(workload: str, sections: dict, lines: list[str]) -> None:
    with pytest.raises(stages.DataSettingsError) as caught:
        plan_of(workload, **sections)
    assert caught.value.problems == lines


def test_a_stage_runs_each_job_with_its_wildcards_values() -> None:
    plan = plan_of("cosmoflow", convert={"elements": 2})
    element = next(stage for stage in plan.stages if stage.name == "convert_element")
    assert element.log("L") == "L/convert_element/{fmt}_{split}_{element}.log"
    args = element.args({"fmt": "gzip", "split": "train", "element": "1"})
    assert args == {"input_dir": "r/data/cosmoflow/synth/train", "output_dir": "r/data/cosmoflow/synth/gzip/train",
                    "to": "gzip", "element": 1, "elements": 2,
                    "summary": "r/data/cosmoflow/synth/gzip/train_elements/e1.json"}


def test_json_arguments_become_the_commands_flags() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("src")
    parser.add_argument("out")
    parser.add_argument("--size", type=int, default=1)
    parser.add_argument("--nuclei", action="store_true")
    parser.add_argument("--shuffle", action=argparse.BooleanOptionalAction, default=True)
    argv = cli.json_argv(parser, json.dumps({"src": "-odd name", "out": "o", "size": 3, "nuclei": True,
                                             "shuffle": False}))
    args = parser.parse_args(argv)
    assert (args.src, args.out, args.size, args.nuclei, args.shuffle) == ("-odd name", "o", 3, True, False)
    with pytest.raises(SystemExit):
        cli.json_argv(parser, json.dumps({"src": "s", "colour": 1}))


def test_the_declarations_import_no_torch() -> None:
    code = ("import sys; from hpcdl import workloads; from hpcdl.data import stages;"
            "[stages.plan(e.data, n, {'results': 'r'}) for n, e in workloads.REGISTRY.items()];"
            "assert 'torch' not in sys.modules, 'torch imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
