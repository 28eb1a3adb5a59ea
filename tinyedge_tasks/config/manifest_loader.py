"""Reading tinyedge.yaml fast: validated once per content, then served from a memo under cache/.

Every stage reads the manifest through a `ConfigSlice` that holds only the keys the stage declared,
so a stage's fingerprint cannot miss a key it actually uses.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from ..engine.hashing import digest_bytes
from ..errors import ManifestError

MANIFEST_NAME = "tinyedge.yaml"
SCHEMA_SOURCE = Path(__file__).with_name("manifest.py")
MEMO_NAME = "manifest.validated.json"


class LoadedManifest:
    """A validated manifest plus where each key came from, for errors raised later (e.g. a missing path)."""

    def __init__(self, path: Path, data: dict, lines: dict):
        self.path = path
        self.root = path.parent
        self.data = data
        self._lines = lines

    def where(self, key: str) -> str:
        parts = tuple(key.split("."))
        while parts and parts not in self._lines:
            parts = parts[:-1]
        line = self._lines.get(parts)
        return f"{self.path}:{line}" if line else str(self.path)

    def error(self, key: str, problem: str) -> ManifestError:
        return ManifestError(f"{self.where(key)}: {key}: {problem}")

    def get(self, key: str) -> Any:
        value: Any = self.data
        for part in key.split("."):
            value = value[part]
        return value

    def slice(self, keys: tuple[str, ...], stage: str) -> "ConfigSlice":
        return ConfigSlice({key: self.get(key) for key in keys}, stage, self)

    def path_of(self, key: str) -> Path:
        """A manifest value that names a file, resolved against the manifest's folder."""
        return (self.root / self.get(key)).resolve()


class ConfigSlice:
    """The manifest keys one stage declared; reading any other key is a bug in the stage table."""

    def __init__(self, values: dict, stage: str, manifest: LoadedManifest | None = None):
        self.values = values
        self.stage = stage
        self.manifest = manifest

    def section(self, key: str):
        """The value at `key` as its typed schema object (attributes, defaults filled in); None for a section
        that is off. Imports the schema (pydantic): for stages, never for task creation."""
        from .manifest import section_type
        value = self[key]
        kind = section_type(key)
        return value if value is None or kind is None else kind.model_validate(value)

    def error(self, key: str, problem: str) -> ManifestError:
        """A stage's error about a manifest value, with the file:line and key path a manifest error has."""
        self[key]  # only keys the stage declared
        return self.manifest.error(key, problem) if self.manifest else ManifestError(f"{key}: {problem}")

    def __getitem__(self, key: str) -> Any:
        for declared, value in self.values.items():
            if key == declared:
                return value
            if key.startswith(declared + "."):
                for part in key[len(declared) + 1:].split("."):
                    value = value[part]
                return value
        raise KeyError(f"stage '{self.stage}' reads '{key}' but its row in the stage table does not declare it")


def load(path: str | Path = MANIFEST_NAME, memo_dir: Path | None = None) -> LoadedManifest:
    """The validated manifest; the schema (pydantic) is only imported when the text or the schema changed."""
    path = Path(path).absolute()
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise ManifestError(f"{path}: no manifest here; create {MANIFEST_NAME} (see README, 'The manifest')") from None
    key = digest_bytes(str(path).encode() + b"\0" + text + b"\0" + SCHEMA_SOURCE.read_bytes())
    memo = memo_dir / MEMO_NAME if memo_dir else None
    if memo and memo.exists():
        try:
            saved = json.loads(memo.read_text())
            if saved["key"] == key:
                return LoadedManifest(path, saved["data"], {tuple(k): line for k, line in saved["lines"]})
        except (ValueError, KeyError, TypeError):
            pass  # a damaged memo is only a cache miss
    from .manifest import validate
    data, lines = validate(text.decode("utf-8", errors="replace"), path)
    if memo:
        memo.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=memo.parent, prefix=".tmp-")
        with os.fdopen(fd, "w") as handle:
            json.dump({"key": key, "data": data, "lines": [[list(k), line] for k, line in lines.items()]}, handle)
        os.replace(tmp, memo)
    return LoadedManifest(path, data, lines)
