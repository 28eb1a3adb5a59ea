"""The preprocessing as C (src/preprocess.h and .c): the firmware repeats the NumPy reference byte for byte."""
from __future__ import annotations

from pathlib import Path

from ..native.csource import ctype, environment, hex_rows
from . import formula, input_table

TEMPLATES = Path(__file__).resolve().parent / "templates"


def sources(width: int, height: int, channels: int, quant: dict, transform: tuple[float, float]) -> dict[str, str]:
    """src/preprocess.h and .c for a model input, its input transform and quantization {dtype, scale, zero_point}."""
    table = input_table(quant["scale"], quant["zero_point"], quant["dtype"], transform)
    values = {"formula": formula(transform), "width": width, "height": height, "channels": channels,
              "ctype": ctype(quant["dtype"], "input"), "scale": quant["scale"], "zero_point": quant["zero_point"],
              "table_rows": hex_rows(table.tolist(), 16, "{:d}")}
    env = environment(TEMPLATES)
    return {f"src/preprocess.{ext}": env.get_template(f"preprocess.{ext}.j2").render(values) for ext in ("h", "c")}
