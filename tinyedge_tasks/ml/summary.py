"""What the report shows of a float model, measured by the stage that has it loaded: the report loads no model."""
from __future__ import annotations

import numpy as np

from ..artifacts import ModelSummary
from ..tflite.convert import float_footprint
from ..preprocess import UNIT
from .keras_util import as_float
from .layers import weight_rows


def model_summary(model, test_accuracy: float, data: dict) -> ModelSummary:
    """The footprint is measured on one sample; its values do not change it, so any input transform does."""
    return ModelSummary(test_accuracy=test_accuracy,
                        nonzero_weights=sum(int(np.count_nonzero(w)) for w in model.get_weights()),
                        **float_footprint(model, as_float(data["x_test"][:1], UNIT)), layers=weight_rows(model))
