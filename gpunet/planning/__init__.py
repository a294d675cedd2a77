"""A planned training step: the same maths as the eager layers, with every
buffer allocated once and each dense stage's work fused into a few backend
operations (``gpunet/backend/planned_step.py``), optionally replayed as a graph."""
from .graph import StepGraph, graph_gemms, step_graph
from .stages import DenseStage, dense_stages
from .step import StepPlan, plan_step

__all__ = ["DenseStage", "StepGraph", "StepPlan", "dense_stages", "graph_gemms", "plan_step",
           "step_graph"]
