"""The example project's dodo: the tinyedge plugin makes every task from tinyedge.yaml."""
from tinyedge_tasks import DOIT_CONFIG, stage_tasks

globals().update(stage_tasks())
