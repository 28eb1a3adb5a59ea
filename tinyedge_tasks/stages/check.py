"""check: the preflight, in seconds, before hours of training. The untrained model of the manifest, converted
with a few calibration samples, is checked against the project's backend (its operators) and board (model bytes
and arena, with the same messages as codegen). Weights do not change bytes or arena: a trained model of the same
architecture gets the same verdict. `train` runs after it.
"""
from __future__ import annotations

import importlib
import time
from pathlib import Path

from ..artifacts import DATA, DatasetSummary, PreflightVerdict

SAMPLES = 8  # calibration samples of the conversion: ranges do not change the bytes or the arena


def sources(manifest) -> list[Path]:
    """The model's files (as train reads them, but a backbone's weights: the preflight builds without them) and the
    board file."""
    from ..config import boards
    from ..ml import model_spec
    return [*model_spec.files(manifest, weights=False), boards.path_of(manifest)]


def run(ctx) -> None:
    from ..backends import budget_knobs
    from ..config import boards
    from ..ml.keras_util import as_float, deterministic, keras, load_data
    from ..ml.model_spec import build
    from ..tflite.convert import convert
    from ..preprocess import transform_of

    started = time.perf_counter()
    deterministic(ctx.config["project.seed"])
    data = load_data(ctx.inputs[DATA])
    classes = ctx.read(DatasetSummary).classes
    model = build(ctx.config, ctx.root, keras, data["x_train"].shape[1:], len(classes))
    _unzero(model, ctx.config["project.seed"])
    scheme = ctx.config["compression.quantize.scheme"]
    tflite = convert(model, as_float(data["x_train"][:SAMPLES], transform_of(ctx.config["dataset.input"])), scheme)
    backend_name = ctx.config["firmware.backend"]
    where = f"check: the untrained {ctx.config['train.model']} model"
    if not ctx.stage.hooks:
        ctx.log(f"backend {backend_name} has no preflight; only the conversion was checked")
        ctx.write(PreflightVerdict({"backend": backend_name, "model_bytes": len(tflite)}))
        return
    preflight = importlib.import_module(ctx.stage.hooks[0])
    charged, arena = preflight.measure(ctx, model, tflite, data, where)
    board = boards.load(ctx.root / boards.BOARDS_DIR / f"{ctx.config['board']}.yaml")
    ctx.log(f"budget on {board.id} ({board.chip}), measured arena {arena} B:")
    budget = preflight.budget(board, charged, arena, ctx.config["firmware.arena_margin"],
                              budget_knobs(ctx.config, data["x_train"]), on_table=lambda rows: _table(ctx, rows))
    ctx.write(PreflightVerdict({"backend": backend_name, "scheme": scheme, **budget}))
    ctx.log(f"fits {board.id}: arena in {boards.PLACES[budget['arena']['placement']]} "
            f"({time.perf_counter() - started:.1f} s)")


def _unzero(model, seed: int) -> None:
    """Small random values in the all-zero vectors of a fresh model (biases, batch-norm shifts): the converter
    stores identical constants once, so zeros would make the file smaller than the trained model's."""
    import numpy as np
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        weights = layer.get_weights()
        if any(w.ndim == 1 and not w.any() for w in weights):
            layer.set_weights([rng.normal(0, 1e-3, w.shape).astype(w.dtype) if w.ndim == 1 and not w.any() else w
                               for w in weights])


def _table(ctx, rows) -> None:
    """The budget table, printed whether or not it fits (a line charged without a limit of its own has none)."""
    width = max(len(name) for name, *_ in rows)
    ctx.log(f"{'':{width}} {'needed B':>10} {'available B':>12}  verdict")
    for name, needed, available, verdict in rows:
        ctx.log(f"{name:{width}} {needed:>10} {'' if available is None else available:>12}  {verdict}".rstrip())
