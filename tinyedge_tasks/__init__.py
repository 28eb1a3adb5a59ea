"""tinyedge: a doit plugin that takes a neural network from a data set to a microcontroller, reproducibly.

A project's dodo.py needs only:  from tinyedge_tasks import DOIT_CONFIG, stage_tasks
(stage_tasks() returns the project's DOIT_CONFIG too, with the default tasks of its backend's table.)
"""
from ._version import __version__
from .engine.pipeline import doit_config
from .plugin import stage_tasks

DOIT_CONFIG = doit_config([])

__all__ = ["DOIT_CONFIG", "stage_tasks", "__version__"]
