"""Model operators -> MicroMutableOpResolver methods of the pinned esp-tflite-micro, from resolver_ops.json.

The rule: an operator runs when the pinned header has an Add<Op>() that registers its BuiltinOperator; that method
is the one to call. The data file lists them all, so nothing here is a hand-kept table that can drift.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from tinyedge_tasks.errors import TinyedgeError

DATA = Path(__file__).resolve().parent / "resolver_ops.json"


@lru_cache(maxsize=1)
def resolver_data() -> dict:
    """The parsed resolver_ops.json: component, version, header, esp_nn_ops and methods."""
    return json.loads(DATA.read_text(encoding="utf-8"))


def builtin_methods() -> dict[str, str]:
    """BuiltinOperator name -> Add method, for every builtin the pinned resolver can register."""
    return {entry["op"]: entry["method"] for entry in resolver_data()["methods"] if "op" in entry}


def resolver_ops(operators: list[dict]) -> list[dict]:
    """Distinct operators of a model ({op, layer} as tflite.model_file.operators gives them) -> sorted [{op, method, esp_nn}].

    An operator the pinned TFLM cannot run stops here, naming it and the layer that uses it."""
    data = resolver_data()
    methods = builtin_methods()
    found, unknown = {}, []
    for entry in operators:
        method = methods.get(entry["op"])
        if method is None:
            unknown.append(f"{entry['op']} (layer '{entry['layer'].split(';')[0]}')")
        else:
            found.setdefault(entry["op"], {"op": entry["op"], "method": method,
                                           "esp_nn": entry["op"] in data["esp_nn_ops"]})
    if unknown:
        raise TinyedgeError(
            f"the model uses operators {data['component']} {data['version']} cannot run: {', '.join(unknown)}; "
            f"replace those layers in train.model with supported ones (see {DATA.name} for the full list)")
    return sorted(found.values(), key=lambda item: item["op"])
