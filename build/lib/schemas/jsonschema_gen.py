"""JSON Schema files generated from the message types, kept in ``schemas/jsonschema/``.

Other languages and tools read these files; a test fails when they drift from the code.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from schemas.alert_payload import AlertPayload
from schemas.messages import MESSAGE_TYPES

SCHEMA_DIR = Path(__file__).parent / "jsonschema"


def _versioned() -> dict[str, tuple[type[BaseModel], object]]:
    """Every published type with its version: the Kafka messages and the alert payload."""
    types: dict[str, tuple[type[BaseModel], object]] = {
        name: (model, model.model_fields["schema_version"].default)
        for name, model in MESSAGE_TYPES.items()
    }
    types["alert_payload"] = (AlertPayload, AlertPayload.model_fields["version"].default)
    return types


def render_all() -> dict[str, str]:
    """File name -> JSON text for every published type, deterministic byte for byte."""
    return {
        f"{name}.v{version}.json":
            json.dumps(model.model_json_schema(), indent=2, sort_keys=True) + "\n"
        for name, (model, version) in _versioned().items()
    }


def write_all(folder: Path = SCHEMA_DIR) -> list[Path]:
    """Write every schema file; returns the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_all().items():
        path = folder / name
        path.write_text(text)
        written.append(path)
    return written


def stale(folder: Path = SCHEMA_DIR) -> list[str]:
    """Names of schema files that are missing or differ from what the code generates."""
    return [
        name for name, text in render_all().items()
        if not (folder / name).exists() or (folder / name).read_text() != text
    ]
