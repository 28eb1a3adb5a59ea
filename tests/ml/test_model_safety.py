"""Issue 14: untrusted model files run no code. Every test feeds a real hostile model and checks that the place it
aims at, outside the test's working folder, was not written (submissions and zips: tests/commands/test_untrusted.py)."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
import tf_keras as keras

from conftest import doit, write_manifest
from tinyedge_tasks.errors import TinyedgeError
from tinyedge_tasks.ml.keras_util import load_model


# --- model files ---------------------------------------------------------------------------------------

def _hostile_model(path: Path, mark: Path, input_shape=(4,), classes=2) -> Path:
    """A model whose Lambda writes `mark` whenever it is built, which loading does."""
    payload = eval(f"lambda t: (__import__('pathlib').Path({str(mark)!r}).write_text('ran'), t)[1]")
    inputs = keras.Input(input_shape)
    hidden = keras.layers.Flatten()(keras.layers.Lambda(payload)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(classes, activation="softmax")(hidden))
    model.save(path) if path.suffix else model.save(path, save_format="tf")
    mark.unlink()  # building it above ran the payload
    return path


@pytest.mark.parametrize("suffix", [".h5", ".keras", ""])
def test_lambda_model_is_refused_and_really_runs_when_trusted(tmp_path, suffix):
    mark = tmp_path / "outside" / "written-by-the-model"
    mark.parent.mkdir()
    path = _hostile_model(tmp_path / f"hostile{suffix}", mark)
    with pytest.raises(TinyedgeError) as refused:
        load_model(path, "train.model")
    message = str(refused.value)
    assert str(path) in message and "(Lambda): a Lambda layer holds Python" in message
    assert "train.trust_model_code: true" in message
    assert not any(mark.parent.iterdir())

    load_model(path, "train.model", trust=True)
    assert mark.read_text() == "ran"  # the check is what stood between the file and its code


def test_builtin_layers_load(tmp_path):
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, activation="relu",
                              kernel_regularizer="l2"), keras.layers.Rescaling(0.5), keras.layers.Flatten(),
                              keras.layers.Dense(3, activation="softmax")])
    for name in ("ok.h5", "ok.keras"):
        model.save(tmp_path / name)
        assert load_model(tmp_path / name, "train.model").output_shape == (None, 3)


def test_custom_class_and_foreign_module_are_refused(tmp_path):
    import h5py
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]).save(tmp_path / "m.h5")
    with h5py.File(tmp_path / "m.h5", "r+") as h5:
        config = json.loads(h5.attrs["model_config"])
        dense = config["config"]["layers"][-1]
        dense["class_name"] = "StudentLayer"
        dense["config"]["kernel_initializer"]["module"] = "student_code"
        h5.attrs["model_config"] = json.dumps(config)
    with pytest.raises(TinyedgeError) as refused:
        load_model(tmp_path / "m.h5", "train.model")
    assert "custom class 'StudentLayer'" in str(refused.value) and "module 'student_code'" in str(refused.value)


def test_keras3_file_gets_one_short_message(tmp_path):
    """A real Keras 3 file (the `keras` package TensorFlow 2.21 installs), not a hand-made zip."""
    import keras as keras3
    assert keras3.__version__.startswith("3.")
    inputs = keras3.Input((32, 32, 1))
    hidden = keras3.layers.Flatten()(keras3.layers.MaxPooling2D()(keras3.layers.Conv2D(8, 3)(inputs)))
    keras3.Model(inputs, keras3.layers.Dense(10)(hidden)).save(tmp_path / "k3.keras")
    with pytest.raises(TinyedgeError) as refused:
        load_model(tmp_path / "k3.keras", "train.model")
    message = str(refused.value)
    assert f"saved by Keras {keras3.__version__}" in message and 'model.save("model.h5")' in message
    assert len(message) < 300 and "\n" not in message

    # Without its metadata.json the file is not recognised and tf_keras' own error quotes the whole
    # configuration on one line (about 4,000 characters here, 88,515 for a real model): it is cut.
    stripped = tmp_path / "no-metadata.keras"
    with zipfile.ZipFile(tmp_path / "k3.keras") as source, zipfile.ZipFile(stripped, "w") as target:
        for name in source.namelist():
            if name != "metadata.json":
                target.writestr(name, source.read(name))
    with pytest.raises(TinyedgeError) as failed:
        load_model(stripped, "train.model", trust=True)
    assert "cannot load" in str(failed.value) and " ... " in str(failed.value) and len(str(failed.value)) < 800


def test_lambda_h5_in_a_project_needs_the_key(project_copy, tmp_path):
    """A real `doit train`: refused by default, and the Lambda really runs once the manifest trusts it."""
    mark = tmp_path / "outside" / "written-by-the-model"
    mark.parent.mkdir()
    _hostile_model(project_copy / "student.h5", mark, input_shape=(32, 32, 1), classes=10)
    write_manifest(project_copy, {"train": {"model": "student.h5", "epochs": 1}})
    refused = doit(project_copy, "train", check=False)
    output = refused.stdout + refused.stderr
    assert refused.returncode != 0 and "Traceback" not in output
    assert "student.h5" in output and "(Lambda): a Lambda layer holds Python" in output
    assert "train.trust_model_code: true" in output
    assert not any(mark.parent.iterdir())

    write_manifest(project_copy, {"train": {"model": "student.h5", "epochs": 1, "trust_model_code": True}})
    doit(project_copy, "train")
    assert mark.read_text() == "ran"
