"""Settings declared once: the committed schema and docs are the generated ones, every setting is a
flag, each kind of constraint is checked, and the schema agrees with the typed checks."""

from __future__ import annotations

import math
import re
from typing import Any

import jsonschema
import pytest

from conftest import BIN, REPO, run_tool
from hpcdl import settings, settings_cmd, workloads
from hpcdl.train.config import TrainConfig

SCHEMA = REPO / "workflow" / "schemas" / "settings.schema.yaml"
README = REPO / "config" / "README.md"
TRAIN = settings.key_namer("train")


def test_committed_schema_is_generated() -> None:
    assert SCHEMA.read_text() == settings_cmd.render_schema(), (
        f"{SCHEMA.relative_to(REPO)} is stale: regenerate it with"
        " `hpcdl settings --schema > workflow/schemas/settings.schema.yaml`")


def test_config_readme_holds_generated_tables() -> None:
    assert settings_cmd.markdown() in README.read_text(), (
        f"{README.relative_to(REPO)} lacks the current settings tables: paste the output of"
        " `hpcdl settings --markdown` in place of the old ones")


@pytest.mark.parametrize("workload", sorted(workloads.REGISTRY))
def test_every_setting_is_a_train_flag(workload: str) -> None:
    out = run_tool([str(BIN / "hpcdl"), "train", "--workload", workload, "--help"], COLUMNS="1000")
    assert out.returncode == 0, out.stderr
    shown = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", out.stdout))
    # one entry per option: its line and the help text argparse may put on the next
    entries = [" ".join(e.split()) for e in re.split(r"\n  (?=-)", out.stdout)]
    for cls in (TrainConfig, workloads.entry(workload).params):
        for f in settings.fields(cls):
            assert f.flag in shown, f"{cls.__name__}.{f.name}: no {f.flag} in `hpcdl train --help`"
            if f.kind is bool:
                assert f"--no-{f.flag[2:]}" in shown
            # its help states what the value is checked against, and the default
            [line] = [e for e in entries if re.match(rf"{f.flag}[ ,]", e)]
            default = list(f.default) if isinstance(f.default, tuple) else f.default
            assert f"default {default!r})" in line, line
            r = f.rule
            bounds = ((">=", r.minimum), (">", r.exclusive_minimum), ("<=", r.maximum), ("<", r.exclusive_maximum))
            for op, bound in bounds:
                if bound is not None:
                    assert f"{op} {bound:g}" in line, line


def _rule(name: str) -> settings.Rule:
    return next(f.rule for f in settings.fields(TrainConfig) if f.name == name)


# (constraint kind, key, bad value, the rule attribute that makes it bad)
VIOLATIONS = [
    ("minimum", "seed", -1, "minimum"),
    ("exclusive minimum", "lr_scheduler_decays", [0.5, 0.0], "exclusive_minimum"),
    ("exclusive maximum", "momentum", 1.0, "exclusive_maximum"),
    ("choices", "device", "tpu", "choices"),
    ("pattern", "run_name", "my run", "pattern"),
    ("length", "lr_scheduler_epochs", [8.0], None),
    ("integer type", "batch_size", 2.5, None),
    ("boolean type", "shuffle", "yes", None),
    ("string type", "run_name", 7, None),
    ("non-finite", "base_lr", math.inf, None),
    ("not a number", "base_lr", math.nan, None),
]


@pytest.mark.parametrize(("kind", "key", "value", "attr"), VIOLATIONS, ids=[v[0] for v in VIOLATIONS])
def test_each_constraint_gives_one_error_naming_the_key(kind: str, key: str, value: Any, attr: str | None) -> None:
    if attr is not None:
        assert getattr(_rule(key), attr) is not None, f"{key} no longer has a {kind} constraint: pick another key"
    cfg, errors = settings.from_mapping(TrainConfig, {key: value}, TRAIN)
    assert cfg is None
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"train.{key}"), errors


def test_workload_params_checked_the_same_way() -> None:
    params = workloads.entry("cosmoflow").params
    namer = settings.key_namer("cosmoflow")
    for values, key in (({"dropout": 1.0}, "dropout"), ({"target_mae": 0.0}, "target_mae"),
                        ({"target_mae": math.inf}, "target_mae"), ({"droput": 0.1}, "droput")):
        obj, errors = settings.from_mapping(params, values, namer)
        assert obj is None and len(errors) == 1 and errors[0].startswith(f"cosmoflow.{key}"), errors


# Each case must be decided by per-value rules alone: the schema cannot express the cross-field
# rules (base_lr >= initial_lr, ...), which only the typed checks run.
TRAIN_CASES = [
    {},
    {"base_lr": 0.01, "initial_lr": 0.0},
    {"batch_size": 2, "epochs": 1, "seed": 0},
    {"batch_size": 2.0},
    {"lr_scheduler_epochs": [1, 2], "lr_scheduler_decays": [0.5, 0.5]},
    {"device": "cpu", "shuffle": True, "run_name": "a-b_c.1", "staging_dir": "/tmp/x"},
    {"momentum": 0.0, "weight_decay": 0.0, "warmup_epochs": 0},
    {"seed": -1},
    {"batch_size": 0},
    {"batch_size": 2.5},
    {"batch_size": True},
    {"base_lr": "0.1"},
    {"momentum": 1.0},
    {"lr_scheduler_decays": [0.5, 0.0]},
    {"lr_scheduler_decays": [0.5, 1.0]},
    {"lr_scheduler_epochs": [1.0]},
    {"lr_scheduler_epochs": [1.0, 2.0, 3.0]},
    {"lr_scheduler_epochs": 8.0},
    {"device": "tpu"},
    {"run_name": "my run"},
    {"run_name": ""},
    {"submission_org": ""},
    {"submission_status": "draft"},
    {"shuffle": 1},
    {"compile": "true"},
    {"unknown_key": 1},
]
PARAM_CASES = [{}, {"dropout": 0.0}, {"dropout": 0.99, "target_mae": 0.5}, {"dropout": 1.0},
               {"dropout": -0.1}, {"target_mae": 0}, {"target_mae": "0.1"}, {"droput": 0.5}]


def _schema_ok(schema: dict[str, Any], values: dict[str, Any]) -> bool:
    return not list(jsonschema.Draft202012Validator(schema).iter_errors(values))


@pytest.mark.parametrize("values", TRAIN_CASES, ids=lambda v: repr(v)[:40])
def test_schema_agrees_with_typed_checks_on_train(values: dict[str, Any]) -> None:
    schema = settings_cmd.schema()["$defs"]["train"]
    cfg, errors = settings.from_mapping(TrainConfig, values, TRAIN)
    assert _schema_ok(schema, values) == (cfg is not None), errors


@pytest.mark.parametrize("values", PARAM_CASES, ids=lambda v: repr(v)[:40])
def test_schema_agrees_with_typed_checks_on_workload_params(values: dict[str, Any]) -> None:
    schema = settings_cmd.schema()["$defs"]["cosmoflow"]
    obj, errors = settings.from_mapping(workloads.entry("cosmoflow").params, values, settings.key_namer("cosmoflow"))
    assert _schema_ok(schema, values) == (obj is not None), errors


def test_schema_bounds_are_the_declared_ones() -> None:
    # the whole generated section, key by key, against the declarations it comes from
    props = settings_cmd.schema()["$defs"]["train_overrides"]["properties"]
    assert list(props) == [f.name for f in settings.fields(TrainConfig)]
    for f in settings.fields(TrainConfig):
        item = props[f.name]["items"] if f.length else props[f.name]
        r = f.rule
        got = tuple(item.get(k) for k in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"))
        assert got == (r.minimum, r.exclusive_minimum, r.maximum, r.exclusive_maximum), f.name
        assert item.get("enum") == (list(r.choices) if r.choices else None), f.name


def test_non_finite_only_typed_checks_reject() -> None:
    # JSON schema has no way to say "finite": YAML's .inf and .nan pass the schema's bounds, so the
    # typed checks, which the workflow runs on every run's settings (hpcdl spec), must reject them.
    schema = settings_cmd.schema()["$defs"]["train"]
    for value in (math.inf, math.nan):
        assert _schema_ok(schema, {"base_lr": value})
        cfg, errors = settings.from_mapping(TrainConfig, {"base_lr": value}, TRAIN)
        assert cfg is None and errors == [f"train.base_lr must be finite, got {value!r}"]
