"""Typed settings declared once: their flags, JSON schema, checks and documentation follow from it.

A settings class is a frozen dataclass whose fields are made with :func:`setting`. From that one
declaration this module derives

* the command-line flags (:func:`add_flags`, ``--base-lr``; booleans get ``--x/--no-x``),
* the JSON schema of the config section (:func:`schema`),
* the per-value checks (:func:`field_errors`: type, finiteness, bounds, choices, pattern, length),
* the documentation table (:func:`markdown_rows`),
* reading a mapping (:func:`from_mapping`) with one message per unknown key or bad value.

A field may also hold another settings class (a nested section, ``segment_data.cells``) or a
list of values or of settings (``tuple[str, ...]``, ``tuple[Download, ...]``).

Cross-field rules stay with the class (its ``cross_errors()`` method) and are run by the same callers,
so the CLI and the workflow check exactly the same things.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import functools
import json
import math
import re
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

_META = "hpcdl"


@dataclass(frozen=True)
class Rule:
    """Documentation and constraints of one setting."""

    help: str
    minimum: float | None = None
    exclusive_minimum: float | None = None
    maximum: float | None = None
    exclusive_maximum: float | None = None
    choices: tuple[str, ...] | None = None
    pattern: str | None = None
    # True for settings that do not change what a run computes (limits, workers, paths, labels):
    # they may differ when a run resumes; every other setting is held to the checkpoint.
    resumable: bool = False


def setting(default: Any, help: str, **constraints: Any) -> Any:
    """A dataclass field carrying its :class:`Rule` (``minimum=0``, ``choices=(...)``, ...)."""
    return dataclasses.field(default=default, metadata={_META: Rule(help, **constraints)})


@dataclass(frozen=True)
class Field:
    """One declared setting: name, Python type, default and rule."""

    name: str
    kind: type
    default: Any
    rule: Rule
    length: int | None = None  # tuples: their fixed length (``tuple[float, float]``), 0 for any (``tuple[str, ...]``)

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


def fields(cls: type) -> list[Field]:
    """The declared settings of ``cls`` in declaration order."""
    return list(_fields(cls))


@functools.cache  # resolving type hints is slow, and a sweep checks thousands of points
def _fields(cls: type) -> tuple[Field, ...]:
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        rule = f.metadata.get(_META)
        if rule is None:
            raise TypeError(f"{cls.__name__}.{f.name} is not declared with setting()")
        hint = hints[f.name]
        if typing.get_origin(hint) is tuple:
            args = typing.get_args(hint)
            any_length = len(args) == 2 and args[1] is Ellipsis
            out.append(Field(f.name, args[0], f.default, rule, 0 if any_length else len(args)))
        else:
            out.append(Field(f.name, hint, f.default, rule))
    return tuple(out)


Namer = Callable[[str], str]


def flag_name(name: str) -> str:
    """How a CLI error names a setting: its flag."""
    return "--" + name.replace("_", "-")


def key_namer(section: str) -> Namer:
    """How a workflow error names a setting: its config key, ``section.name``."""
    return lambda name: f"{section}.{name}"


def _nested(kind: type) -> bool:
    return dataclasses.is_dataclass(kind)


def _scalar_error(f: Field, value: Any, name: str) -> str | None:
    r = f.rule
    if _nested(f.kind):
        found = errors(value, lambda key: f"{name}.{key}") if isinstance(value, f.kind) else [
            f"{name} must be a mapping, got {value!r}"]
        return "; ".join(found) or None
    if f.kind is bool:
        return None if isinstance(value, bool) else f"{name} must be true or false, got {value!r}"
    if f.kind is str:
        if not isinstance(value, str):
            return f"{name} must be a string, got {value!r}"
        if r.choices is not None and value not in r.choices:
            return f"{name} must be one of {', '.join(r.choices)}, got {value!r}"
        if r.pattern is not None and not re.fullmatch(r.pattern, value):
            return f"{name} {value!r} does not match {r.pattern}"
        return None
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    if f.kind is int and not (numeric and float(value).is_integer()):
        return f"{name} must be an integer, got {value!r}"
    if not numeric:
        return f"{name} must be a number, got {value!r}"
    if not math.isfinite(value):
        return f"{name} must be finite, got {value!r}"
    bounds = (
        (r.minimum, lambda v, b: v >= b, ">="),
        (r.exclusive_minimum, lambda v, b: v > b, ">"),
        (r.maximum, lambda v, b: v <= b, "<="),
        (r.exclusive_maximum, lambda v, b: v < b, "<"),
    )
    for bound, ok, op in bounds:
        if bound is not None and not ok(value, bound):
            return f"{name} must be {op} {bound:g}, got {value!r}"
    return None


def field_errors(obj: Any, namer: Namer = flag_name) -> list[str]:
    """Every per-value violation in ``obj`` (a settings instance), one line each."""
    out = []
    for f in fields(type(obj)):
        value = getattr(obj, f.name)
        name = namer(f.name)
        if f.length is not None:
            if not isinstance(value, (tuple, list)) or (f.length and len(value) != f.length):
                out.append(f"{name} needs exactly {f.length} values, got {value!r}" if f.length
                           else f"{name} must be a list, got {value!r}")
                continue
            errs = [_scalar_error(f, v, f"{name}[{i}]") for i, v in enumerate(value)]
        else:
            errs = [_scalar_error(f, value, name)]
        out += [e for e in errs if e]
    return out


def errors(obj: Any, namer: Namer = flag_name) -> list[str]:
    """Per-value violations, then (when those pass) the class's cross-field rules."""
    found = field_errors(obj, namer)
    if not found and hasattr(obj, "cross_errors"):
        found = obj.cross_errors(namer)
    return found


def _coerce(f: Field, value: Any) -> Any:
    """Lists become tuples; a whole float (``2.0`` in YAML or JSON, which the schema's ``integer``
    accepts) of an integer setting becomes an int, so the engine never sees ``batch_size=2.0``."""

    def one(v: Any) -> Any:
        return int(v) if f.kind is int and isinstance(v, float) and v.is_integer() else v

    return tuple(one(v) for v in value) if isinstance(value, list) else one(value)


# Known names listed at most after an unknown one without a near miss.
MAX_KNOWN = 10


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """``; did you mean 'x'?`` for a near miss of ``word`` among ``known``, else ``(known: ...)``."""
    names = list(known)
    # A near miss by spelling, else a name the word begins (``gpus`` for ``gpus_per_node``).
    close = difflib.get_close_matches(word, names, n=1) or [k for k in names if len(word) > 2 and k.startswith(word)]
    if close:
        return f"; did you mean {close[0]!r}?"
    if len(names) > MAX_KNOWN:
        return f" (known: {', '.join(names[:MAX_KNOWN])}, ... {len(names) - MAX_KNOWN} more)"
    return f" (known: {', '.join(names)})" if names else ""


def _built(cls: type, values: Any, namer: Namer) -> tuple[Any, list[str]]:
    """An instance of ``cls`` from ``values`` (nested sections built alike) before its checks,
    or the unknown keys and misshapen sections found."""
    known = {f.name: f for f in fields(cls)}
    unknown = [k for k in values if k not in known]
    if unknown:
        return None, [f"{namer(k)}: unknown setting{did_you_mean(str(k), known)}" for k in unknown]
    kwargs, found = {}, []
    for key, value in values.items():
        f = known[key]
        if not _nested(f.kind):
            kwargs[key] = _coerce(f, value)
        elif not isinstance(value, Mapping if f.length is None else (list, tuple)):
            found.append(f"{namer(key)} must be a {'mapping' if f.length is None else 'list'}, got {value!r}")
        elif f.length is None:
            kwargs[key], problems = _built(f.kind, value, lambda k, n=namer(key): f"{n}.{k}")
            found += problems
        elif not all(isinstance(v, Mapping) for v in value):
            found.append(f"{namer(key)} must be a list of mappings, got {value!r}")
        else:
            items = [_built(f.kind, v, lambda k, n=f"{namer(key)}[{i}]": f"{n}.{k}") for i, v in enumerate(value)]
            kwargs[key] = tuple(item for item, _ in items)
            found += [p for _, problems in items for p in problems]
    return (None, found) if found else (cls(**kwargs), [])


def from_mapping(cls: type, values: Mapping[str, Any], namer: Namer = flag_name) -> tuple[Any, list[str]]:
    """An instance of ``cls`` from ``values`` over the defaults, and every error found.

    Unknown keys are errors; lists become tuples. The instance is ``None`` when there are errors.
    """
    obj, found = _built(cls, values, namer)
    if not found:
        found = errors(obj, namer)
    return (None if found else obj), found


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return as_dict(value) if dataclasses.is_dataclass(value) else value


def as_dict(obj: Any) -> dict[str, Any]:
    """JSON-ready values (tuples as lists, nested sections as mappings)."""
    return {f.name: _plain(getattr(obj, f.name)) for f in fields(type(obj))}


def held(obj: Any) -> dict[str, Any]:
    """The JSON-ready values of the settings a resumed run must keep (those not ``resumable``)."""
    kept = {f.name for f in fields(type(obj)) if not f.rule.resumable}
    return {k: v for k, v in as_dict(obj).items() if k in kept}


def _json_type(kind: type) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string"}[kind]


def _scalar_schema(f: Field) -> dict[str, Any]:
    r = f.rule
    if _nested(f.kind):
        return schema(f.kind, f.rule.help)
    out: dict[str, Any] = {"type": _json_type(f.kind)}
    for key, value in (("minimum", r.minimum), ("exclusiveMinimum", r.exclusive_minimum),
                       ("maximum", r.maximum), ("exclusiveMaximum", r.exclusive_maximum)):
        if value is not None:
            out[key] = value
    if r.choices is not None:
        out["enum"] = list(r.choices)
    if r.pattern is not None:
        out["pattern"] = f"^(?:{r.pattern})$"
    return out


def schema(cls: type, description: str) -> dict[str, Any]:
    """JSON schema (draft 2020-12 subset) of a config section holding ``cls``'s settings."""
    props: dict[str, Any] = {}
    for f in fields(cls):
        if f.length is not None:
            prop = {"type": "array", "items": _scalar_schema(f)}
            if f.length:
                prop.update(minItems=f.length, maxItems=f.length)
        else:
            prop = _scalar_schema(f)
        prop["description"] = f.rule.help
        prop["default"] = _plain(f.default)
        props[f.name] = prop
    return {"type": "object", "description": description, "properties": props, "additionalProperties": False}


def add_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type) -> None:
    """One flag per setting of ``cls``; unset flags are absent from the parsed namespace, so a
    spec file's values are only replaced by the flags actually given."""
    for f in fields(cls):
        if _nested(f.kind):
            continue  # nested sections are config keys only
        default = list(f.default) if isinstance(f.default, tuple) else f.default
        checked = _constraint_text(f, " | ")
        help_text = f"{f.rule.help} ({checked + '; ' if checked else ''}default {default!r})"
        if f.kind is bool:
            parser.add_argument(f.flag, dest=f.name, action=argparse.BooleanOptionalAction,
                                default=argparse.SUPPRESS, help=help_text)
        else:
            parser.add_argument(f.flag, dest=f.name, type=f.kind, default=argparse.SUPPRESS,
                                nargs=f.length, choices=f.rule.choices, help=help_text)


def given_flags(cls: type, args: argparse.Namespace) -> dict[str, Any]:
    """The settings of ``cls`` given on the command line."""
    return {f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)}


def _constraint_text(f: Field, bar: str = " \\| ") -> str:
    """What ``f`` is checked against, in words (``bar`` separates choices: escaped in tables)."""
    r = f.rule
    parts = []
    for word, value in ((">=", r.minimum), (">", r.exclusive_minimum), ("<=", r.maximum), ("<", r.exclusive_maximum)):
        if value is not None:
            parts.append(f"{word} {value:g}")
    if r.choices:
        parts.append(bar.join(r.choices))
    if r.pattern:
        parts.append(f"matches `{r.pattern.replace('|', bar.strip())}`")
    if f.length:
        parts.insert(0, f"{f.length} values")
    elif f.length == 0:
        parts.insert(0, "list")
    return ", ".join(parts)


def markdown_rows(cls: type, section: str, flags: bool = True) -> list[str]:
    """Documentation rows of ``cls`` as config keys ``section.name``: key, flag, type, default,
    constraint, meaning (``flags=False``: settings that are config keys only)."""
    rows = []
    for f in fields(cls):
        if _nested(f.kind):
            key = f"{section}.{f.name}" + ("[]" if f.length is not None else "")
            kind = "list" if f.length is not None else "mapping"
            rows.append(f"| `{section}.{f.name}` | — | {kind} | `{json.dumps(_plain(f.default))}` | — | "
                        f"{f.rule.help.replace('|', chr(92) + '|')} |")
            rows += markdown_rows(f.kind, key, flags=False)
            continue
        default = list(f.default) if isinstance(f.default, tuple) else f.default
        flag = f"`{f.flag}`" if flags else "—"
        resumable = " (may change when a run resumes)" if f.rule.resumable else ""
        rows.append(
            f"| `{section}.{f.name}` | {flag} | {f.kind.__name__} | `{json.dumps(default)}` | "
            f"{_constraint_text(f)} | {f.rule.help.replace('|', chr(92) + '|')}{resumable} |"
        )
    return rows


MARKDOWN_HEADER = ["| key | flag | type | default | constraint | meaning |", "|---|---|---|---|---|---|"]
