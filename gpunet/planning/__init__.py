"""A planned training step: the same maths as the eager layers, with every
buffer allocated once and each dense stage's work fused into a few backend
operations (``gpunet/backend/fused.py``)."""
from .stages import DenseStage, dense_stages
from .step import StepPlan, plan_step

__all__ = ["DenseStage", "StepPlan", "dense_stages", "plan_step"]
