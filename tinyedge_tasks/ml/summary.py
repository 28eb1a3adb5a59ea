"""What the report shows of a float model, measured by the stage that has it loaded: the report loads no model."""
from __future__ import annotations

import numpy as np

from ..artifacts import ModelSummary
from ..tflite.convert import float_footprint
from .keras_util import as_float
from .layers import weight_rows


def model_summary(model, test_accuracy: float, data: dict) -> ModelSummary:
    return ModelSummary(test_accuracy=test_accuracy,
                        nonzero_weights=sum(int(np.count_nonzero(w)) for w in model.get_weights()),
                        **float_footprint(model, as_float(data["x_test"][:1])), layers=weight_rows(model))
