"""Where ``gpunet/planning/graph.py`` imports the graph step's names from, until
it imports them from ``graph_step.py``; nothing else is here."""
from .graph_step import GraphCaptureError, Replay

__all__ = ["GraphCaptureError", "Replay"]
