"""Checking a config (or a system file) against its JSON schema: one line per problem.

Each problem reads ``[file: ]key.path: value: reason`` (``train.epochs: -3: below the minimum 1``,
``trian: unknown key; did you mean 'train'?``): the key's full path, the value as written and why it
is refused, preceded by the config file that set the key when that is known. Problems are rendered
from jsonschema's errors generically, so a section added to the schema needs nothing here.

The workflow calls :func:`check` instead of Snakemake's ``validate``, which prints the failing
schema, and fills defaults into every object it meets (``sweep.train`` then got the engine's
defaults, overriding the config's ``train:``). :func:`check` fills only the defaults of the
top-level sections' own keys, which the rules read directly.
"""

from __future__ import annotations

import os
import re
import reprlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from jsonschema import ValidationError
from jsonschema.exceptions import best_match

from hpcdl import schemas, settings
from hpcdl.settings import did_you_mean

# Problem lines shown at most; more are counted on one last line.
MAX_LINES = 4

_TYPES = {"integer": "an integer", "number": "a number", "string": "a string", "boolean": "true or false",
          "array": "a list", "object": "a mapping", "null": "empty"}

_REPR = reprlib.Repr()
_REPR.maxother = 60
_REPR.maxstring = 300  # paths are shown whole
_REPR.maxlist = _REPR.maxdict = 4


class ConfigError(ValueError):
    """A config that fails its schema; ``problems`` holds one line each, the message all of them."""

    def __init__(self, problems: Sequence[str], what: str = "config") -> None:
        self.problems = list(problems)
        shown = self.problems[:MAX_LINES]
        more = len(self.problems) - len(shown)
        super().__init__("\n".join([f"invalid {what}:", *shown] + ([f"... and {more} more"] if more else [])))


def key_path(path: Iterable[Any]) -> str:
    """``experiments.x.world_sizes[0]`` from a jsonschema path."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _joined(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _types(expected: str | list[str]) -> list[str]:
    return [expected] if isinstance(expected, str) else list(expected)


def _bound(word: str) -> str:
    return {"minimum": "below the minimum {}", "exclusiveMinimum": "must be above {}",
            "maximum": "above the maximum {}", "exclusiveMaximum": "must be below {}"}[word]


def _count(word: str, limit: int) -> str:
    thing = {"Length": "characters", "Items": "items", "Properties": "keys"}[word[3:]]
    if word.startswith("min"):
        return "empty" if limit == 1 else f"fewer than {limit} {thing}"
    return f"more than {limit} {thing}"


def _reason(error: ValidationError) -> str:
    """Why ``error.instance`` is refused, in words."""
    kind, expected, value = error.validator, error.validator_value, error.instance
    if kind == "type":
        return "not " + _joined([_TYPES.get(t, t) for t in _types(expected)])
    if kind == "enum":
        near = did_you_mean(value, map(str, expected)) if isinstance(value, str) else ""
        return f"not one of {', '.join(map(str, expected))}" + (near if near.startswith(";") else "")
    if kind == "const":
        return f"must be {expected!r}"
    if kind in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        return _bound(str(kind)).format(expected)
    if kind == "multipleOf":
        return f"not a multiple of {expected}"
    if kind == "pattern":
        return f"does not match {expected}"
    if kind in ("minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties"):
        return _count(str(kind), expected)
    if kind == "uniqueItems":
        return "has repeated items"
    return error.message


def _alternatives(error: ValidationError) -> tuple[list[Any], str]:
    """An ``anyOf``/``oneOf`` failure: the one branch's problem that fits best, or, when every
    branch refuses the value's type, all the types in one reason."""
    top = [e for e in error.context or () if len(e.relative_schema_path) == 2]
    if top and all(e.validator == "type" for e in top):
        types = [t for e in top for t in _types(e.validator_value)]
        why = "not " + _joined([_TYPES.get(t, t) for t in dict.fromkeys(types)])
        return list(error.absolute_path), f"{_REPR.repr(error.instance)}: {why}"
    best = best_match(error.context or ())
    if best is None:
        return list(error.absolute_path), f"{_REPR.repr(error.instance)}: {error.message}"
    return _problem(best)[0]


def _problem(error: ValidationError) -> list[tuple[list[Any], str]]:
    """(key path, ``value: reason`` or ``reason``) of every problem ``error`` stands for."""
    path = list(error.absolute_path)
    if error.validator in ("anyOf", "oneOf"):
        where, why = _alternatives(error)
        return [(where, why)]
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = list(error.schema.get("properties", {}))
        patterns = list(error.schema.get("patternProperties", {}))
        extra = [k for k in error.instance if k not in known and not any(re.search(p, k) for p in patterns)]
        return [(path + [k], "unknown key" + did_you_mean(str(k), known)) for k in extra]
    if error.validator == "required" and isinstance(error.instance, dict):
        return [(path + [k], "missing (required)") for k in error.validator_value if k not in error.instance]
    if "propertyNames" in error.relative_schema_path:
        expected = error.validator_value if error.validator == "enum" else None
        why = f"unknown key (known: {', '.join(map(str, expected))})" if expected else f"key {_reason(error)}"
        return [(path + [error.instance], why)]
    return [(path, f"{_REPR.repr(error.instance)}: {_reason(error)}")]


def _has(source: Mapping[str, Any], path: Sequence[Any]) -> bool:
    node: Any = source
    for part in path:
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            return False
    return True


def _origin(path: Sequence[Any], sources: Sequence[tuple[str, Mapping[str, Any]]]) -> str:
    """The last source (the one that wins) setting ``path``, or the nearest key above it."""
    for depth in range(len(path), 0, -1):
        for label, source in reversed(sources):
            if _has(source, path[:depth]):
                return label
    return ""


def problems(validator: Any, instance: Any, sources: Sequence[tuple[str, Mapping[str, Any]]] = ()) -> list[str]:
    """One line per schema violation of ``instance``, sorted by key path, each prefixed by the
    source (of ``sources``: label, mapping; later ones override earlier) that set its key."""
    found: dict[str, str] = {}
    for error in validator.iter_errors(instance):
        for path, why in _problem(error):
            origin = _origin(path, sources)
            name = key_path(path) or "top level"
            found[f"{origin + ': ' if origin else ''}{name}: {why}"] = name
    return sorted(found, key=lambda line: (found[line], line))


def _label(path: str | os.PathLike[str]) -> str:
    relative = os.path.relpath(path)
    return str(path) if relative.startswith("..") else relative


def sources(files: Sequence[str | os.PathLike[str]], cli_files: Sequence[str | os.PathLike[str]],
            cli_config: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """Where the workflow's config came from, lowest priority first: the Snakefile's config files
    (those of ``files``, Snakemake's ``workflow.configfiles``, not given on the command line), the
    ``--configfile`` files, then ``--config`` values."""
    given = [Path(f).absolute() for f in cli_files]
    ordered = [f for f in files if Path(f).absolute() not in given] + list(given)
    out: list[tuple[str, Mapping[str, Any]]] = []
    for path in ordered:
        try:
            loaded = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(loaded, Mapping):
            out.append((_label(path), loaded))
    return out + ([("--config", dict(cli_config))] if cli_config else [])


def section_defaults(config: dict[str, Any], schema: Path) -> None:
    """Fill the defaults of each present top-level section's own keys into ``config``; nested
    objects (override sections such as ``sweep.train``) keep only what the config says."""
    for name, section in schemas.resolved_properties(schema).items():
        if isinstance(config.get(name), dict):
            for key, prop in section.get("properties", {}).items():
                if "default" in prop:
                    config[name].setdefault(key, prop["default"])


def check(config: dict[str, Any], schema: Path | str,
          origins: Sequence[tuple[str, Mapping[str, Any]]] = (),
          choices: Mapping[str, Sequence[str]] | None = None,
          sections: Mapping[str, type] | None = None) -> None:
    """Check ``config`` against ``schema``, then fill the top-level sections' defaults.

    Known only now (see :func:`hpcdl.schemas.validator`): ``choices``, the allowed values of
    top-level keys; ``sections``, settings classes of top-level sections the schema file does not
    describe (a plugin workload's). Raises :class:`ConfigError` with one line per problem (see
    the module docstring).
    """
    extra = {key: settings.schema(cls, f"the {key}: section") for key, cls in (sections or {}).items()}
    found = problems(schemas.validator(Path(schema), choices, extra), config, origins)
    if found:
        raise ConfigError(found)
    section_defaults(config, Path(schema))
