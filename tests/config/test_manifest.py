"""The manifest: safe loading, typed validation, errors with file:line, key path and a way out."""
from __future__ import annotations

import json

import pytest

from conftest import REPO
from tinyedge_tasks.commands import schema as cli
from tinyedge_tasks.errors import ManifestError
from tinyedge_tasks.config.manifest_loader import ConfigSlice, load

BAD_MANIFESTS = [
    # (what, manifest text, line the error names, words the message must hold)
    ("typo in a key", "train:\n  epocs: 5\n", 2, ["train.epocs", "did you mean 'epochs'"]),
    ("typo in a section", "trian:\n  epochs: 5\n", 1, ["trian", "did you mean 'train'"]),
    ("wrong type", "train:\n  model: tiny_cnn\n  epochs: ten\n", 3, ["train.epochs", "integer", '"ten"']),
    ("out of range", "dataset:\n  split: {val: 0.7}\n", 2, ["dataset.split.val", "less than 0.5", "0.7"]),
    ("bad choice", "dataset:\n  input:\n    channels: 2\n", 3, ["dataset.input.channels", "1 (grayscale) or 3 (RGB)"]),
    ("section not a mapping", "train: 5\n", 1, ["train", "expected a mapping", "5"]),
    ("python object tag", "train: !!python/object/apply:os.system ['touch PWNED']\n", 1,
     ["python/object/apply:os.system", "plain data only"]),
    ("not yaml", "train:\n  epochs: [1, 2\n", 3, ["not valid YAML"]),
    ("not a mapping at all", "- train\n- dataset\n", 1, ["expected a mapping of sections"]),
    ("key given twice", "project:\n  seed: 1\n  seed: 2\n", 3, ["project.seed", "given twice (also on line 2)"]),
]


@pytest.mark.parametrize("what,text,line,words", BAD_MANIFESTS, ids=[case[0] for case in BAD_MANIFESTS])
def test_bad_manifest_is_named_precisely(tmp_path, monkeypatch, what, text, line, words):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "tinyedge.yaml"
    path.write_text(text)
    with pytest.raises(ManifestError) as caught:
        load(path)
    message = str(caught.value)
    assert f"{path}:{line}:" in message, message
    for word in words:
        assert word in message, message
    assert not (tmp_path / "PWNED").exists()


def test_missing_manifest_says_what_to_create(tmp_path):
    with pytest.raises(ManifestError, match="no manifest here; create tinyedge.yaml"):
        load(tmp_path / "tinyedge.yaml")


def test_defaults_fill_an_empty_manifest(tmp_path):
    path = tmp_path / "tinyedge.yaml"
    path.write_text("")
    manifest = load(path)
    assert manifest.get("train.model") == "tiny_cnn"
    assert manifest.get("compression.prune") is None
    assert manifest.get("dataset.input") == {"width": 32, "height": 32, "channels": 1, "transform": "unit",
                                             "scale": None, "offset": 0.0}


def test_a_stage_cannot_read_a_key_it_did_not_declare():
    piece = ConfigSlice({"train": {"epochs": 3}, "project.seed": 1}, "train")
    assert piece["train.epochs"] == 3 and piece["project.seed"] == 1
    with pytest.raises(KeyError, match="stage 'train' reads 'dataset.source' but"):
        piece["dataset.source"]


def test_checked_in_json_schema_matches_the_schema():
    """Editors complete and check tinyedge.yaml against this file; `tinyedge schema --write` refreshes it."""
    assert cli.SCHEMA_FILE.read_text() == cli.schema_text()
    schema = json.loads(cli.SCHEMA_FILE.read_text())
    assert schema["additionalProperties"] is False
    assert "epochs" in schema["$defs"]["Train"]["properties"]


def test_example_manifest_points_editors_at_the_schema():
    example = REPO / "tinyedge.yaml"
    first_line = example.read_text().splitlines()[0]
    assert first_line == "# yaml-language-server: $schema=tinyedge_tasks/schema/tinyedge.schema.json"
    load(example)


def test_every_board_file_of_the_repository_loads():
    """A board file added or merged with an old key would fail only the projects that name it."""
    from tinyedge_tasks.config import boards
    paths = sorted((REPO / "boards").glob("*.yaml"))
    assert len(paths) >= 4 and all(boards.load(path).flash.runtime for path in paths)
