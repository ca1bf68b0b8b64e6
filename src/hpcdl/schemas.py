"""JSON-schema validators for the YAML schema files under ``workflow/schemas/``.

Schemas refer to each other by relative ``$ref`` (``settings.schema.yaml#/$defs/train``), as
Snakemake's ``validate`` resolves them; this resolves them the same way for the checks the
package runs itself (system files).
"""

from __future__ import annotations

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


def validator(path: Path) -> Any:
    """A validator of the schema at ``path``, with ``$ref``s to files beside it resolved."""
    schema = yaml.safe_load(path.read_text())
    schema.setdefault("$id", path.resolve().as_uri())
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, registry=Registry(retrieve=_retrieve))
