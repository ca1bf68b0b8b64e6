"""JSON-schema validators for the YAML schema files under ``workflow/schemas/``.

Schemas refer to each other by relative ``$ref`` (``settings.schema.yaml#/$defs/train``), as
Snakemake's ``validate`` resolves them; this resolves them the same way for the checks the
package runs itself (the config, system files).

One keyword is added: ``outputDirectory: true`` on a path setting refuses a path that exists and
is not a directory, or lies under a file, so it stops the workflow while it is parsed rather than
the first job that writes there.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import jsonschema
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012


def _retrieve(uri: str) -> Resource[Any]:
    path = Path(url2pathname(urlparse(uri).path))
    return Resource.from_contents(yaml.safe_load(path.read_text()), default_specification=DRAFT202012)


def _output_directory(_validator: Any, wanted: bool, instance: Any,
                      _schema: Any) -> Iterator[jsonschema.ValidationError]:
    if not (wanted and isinstance(instance, str) and instance):
        return
    path = Path(instance)
    for above in [path, *path.parents]:
        if above.exists():
            if not above.is_dir():
                where = "exists" if above == path else f"lies under {above}, which exists"
                yield jsonschema.ValidationError(f"{where} and is not a directory")
            return


def _load(path: Path) -> dict[str, Any]:
    schema = yaml.safe_load(path.read_text())
    schema.setdefault("$id", path.resolve().as_uri())
    return schema


def validator(path: Path, choices: Mapping[str, Sequence[str]] | None = None,
              sections: Mapping[str, dict[str, Any]] | None = None) -> Any:
    """A validator of the schema at ``path``, with ``$ref``s to files beside it resolved.

    What is known only when the check runs (the registered workloads, installed plugins
    included) is added: ``choices``, allowed values of top-level properties, as ``enum``s;
    ``sections``, schemas of top-level sections the file does not describe."""
    schema = _load(path)
    for key, allowed in (choices or {}).items():
        schema["properties"][key] = {**schema["properties"][key], "enum": list(allowed)}
    for key, section in (sections or {}).items():
        schema["properties"].setdefault(key, section)
    cls = jsonschema.validators.extend(jsonschema.validators.validator_for(schema),
                                       {"outputDirectory": _output_directory})
    return cls(schema, registry=Registry(retrieve=_retrieve))


def resolved_properties(path: Path) -> dict[str, dict[str, Any]]:
    """The top-level ``properties`` of the schema at ``path``, each with its ``$ref`` followed."""
    schema = _load(path)
    resolver = Registry(retrieve=_retrieve).resolver(base_uri=schema["$id"])
    out = {}
    for name, prop in schema.get("properties", {}).items():
        if "$ref" in prop:
            prop = {**resolver.lookup(prop["$ref"]).contents, **{k: v for k, v in prop.items() if k != "$ref"}}
        out[name] = prop
    return out
