"""JSON Schema files generated from the message types, kept in ``schemas/jsonschema/``.

Other languages and tools read these files; a test fails when they drift from the code.
"""

from __future__ import annotations

import json
from pathlib import Path

from schemas.messages import MESSAGE_TYPES

SCHEMA_DIR = Path(__file__).parent / "jsonschema"


def render_all() -> dict[str, str]:
    """File name -> JSON text for every message type, deterministic byte for byte."""
    return {
        f"{name}.v{model.model_fields['schema_version'].default}.json":
            json.dumps(model.model_json_schema(), indent=2, sort_keys=True) + "\n"
        for name, model in MESSAGE_TYPES.items()
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
