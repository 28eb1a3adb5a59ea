"""`doit submission` and `doit verify-submission`: a real rebuild from scratch in a fresh folder."""
from __future__ import annotations

import json
import zipfile

import pytest

from conftest import doit, ran


def _rows(stdout: str) -> dict[str, str]:
    """artifact -> identical (yes/NO) from the printed table."""
    rows = {}
    for line in stdout.splitlines():
        parts = line.rsplit(None, 3)
        if len(parts) == 4 and parts[3] in ("yes", "NO"):
            rows[parts[0]] = parts[3]
    return rows


@pytest.mark.bwrap
def test_submission_verifies_and_catches_an_altered_model(project_copy, tmp_path):
    result = doit(project_copy, "submission")
    assert "submission" in ran(result) and "train" not in ran(result)
    made = project_copy / "build/submission/digits-esp32cam.zip"
    first = made.read_bytes()
    doit(project_copy, "submission")
    assert made.read_bytes() == first  # the zip itself is deterministic

    with zipfile.ZipFile(made) as archive:
        names = set(archive.namelist())
        digests = json.loads(archive.read("digests.json"))
        lock = json.loads(archive.read("lock.json"))
    assert {"tinyedge.yaml", "dodo.py", "boards/esp32cam.yaml", "lock.json", "digests.json",
            "artifacts/quantize/model.tflite", "artifacts/report/report.html", "artifacts/report/report.md",
            "artifacts/codegen/firmware/platformio.ini"} <= names
    assert "artifacts/dataset/data.npz" not in names and "dataset/data.npz" in digests["artifacts"]
    assert lock["packages"]["tensorflow"] and lock["python"]

    verified = doit(project_copy, "verify-submission", str(made))
    print(verified.stdout)
    assert "inside a bubblewrap sandbox" in verified.stdout and "rebuilt in" in verified.stdout  # no --trust needed
    rows = _rows(verified.stdout)
    assert set(rows.values()) == {"yes"} and len(rows) == len(digests["artifacts"]) + len(
        [n for n in names if n.startswith("artifacts/")])
    assert "quantize/model.tflite (file in zip)" in rows

    altered = tmp_path / "altered.zip"
    with zipfile.ZipFile(made) as source, zipfile.ZipFile(altered, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "artifacts/quantize/model.tflite":
                data = data[:-1] + bytes([data[-1] ^ 1])  # one bit of the handed-in model
            target.writestr(item, data)
    failed = doit(project_copy, "verify-submission", str(altered), check=False)
    print(failed.stdout, failed.stderr)
    assert failed.returncode != 0
    rows = _rows(failed.stdout)
    assert rows["quantize/model.tflite (file in zip)"] == "NO"
    assert [name for name, same in rows.items() if same == "NO"] == ["quantize/model.tflite (file in zip)"]
    assert "differ from the rebuild: quantize/model.tflite (file in zip)" in failed.stdout + failed.stderr


def test_data_set_travels_by_digest_unless_asked(project_copy):
    doit(project_copy, "submission", "--with-data")
    with zipfile.ZipFile(project_copy / "build/submission/digits-esp32cam.zip") as archive:
        assert "artifacts/dataset/data.npz" in archive.namelist()
        digests = json.loads(archive.read("digests.json"))
        carried = archive.read("artifacts/dataset/data.npz")
    assert digests["data_included"] is True
    assert carried == (project_copy / "build/dataset/data.npz").read_bytes()


def test_verify_rejects_what_is_not_a_submission(project_copy, tmp_path):
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip")
    result = doit(project_copy, "verify-submission", str(junk), check=False)
    assert result.returncode != 0 and "not a zip file" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
