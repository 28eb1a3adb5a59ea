"""tinyedge: a doit plugin that takes a neural network from a data set to a microcontroller, reproducibly.

A project's dodo.py needs only:  from tinyedge_tasks import DOIT_CONFIG, stage_tasks
"""
__version__ = "0.1.0"

from .pipeline import DOIT_CONFIG, STAGES, stage_tasks  # noqa: E402

__all__ = ["DOIT_CONFIG", "STAGES", "stage_tasks", "__version__"]
