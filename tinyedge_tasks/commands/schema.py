"""`tinyedge schema`: the manifest's JSON Schema, for editors (yaml-language-server) and checks; the package
carries it as SCHEMA_FILE, kept equal to what the schema says (a test compares them)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

SCHEMA_FILE = Path(__file__).parent.parent / "schema" / "tinyedge.schema.json"


def json_schema() -> dict:
    """The manifest schema as JSON Schema, the built-in backends offered as examples of firmware.backend."""
    from ..backends import builtin
    from ..config.manifest import Manifest
    schema = Manifest.model_json_schema()
    schema["$defs"]["Firmware"]["properties"]["backend"]["examples"] = builtin()  # editors offer these
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "tinyedge.yaml"
    return schema


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


def run(write: bool) -> int:
    """Print the schema, or with `write` update SCHEMA_FILE in the package."""
    if write:
        SCHEMA_FILE.parent.mkdir(exist_ok=True)
        SCHEMA_FILE.write_text(schema_text())
        print(f"wrote {SCHEMA_FILE}")
    else:
        sys.stdout.write(schema_text())
    return 0
