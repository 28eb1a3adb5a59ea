"""tinyedge: a doit plugin that takes a neural network from a data set to a microcontroller, reproducibly.

A project's dodo.py needs only:  from tinyedge_tasks import DOIT_CONFIG, stage_tasks
(stage_tasks() returns the project's DOIT_CONFIG too, with the default tasks of its backend's table.)
"""
__version__ = "0.1.0"

from .engine.pipeline import doit_config  # noqa: E402
from .plugin import stage_tasks  # noqa: E402

DOIT_CONFIG = doit_config([])

__all__ = ["DOIT_CONFIG", "stage_tasks", "__version__"]
