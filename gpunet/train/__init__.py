"""Training: a step (``step``: eager, planned or graph), the epoch that loops
over them (``epoch``, with the random-stream rule), ``fit``/``evaluate``
(``fit``), the epoch's metrics and accuracy (``metrics``) and the argument
checks they share (``checks``)."""
from .checks import check_count, check_data, check_finite, model_backend
from .epoch import StepRows, steps, train_epoch
from .fit import EpochStats, evaluate, fit
from .metrics import EpochMetrics, NonFiniteLoss, accuracy, correct
from .step import EagerStep, GraphStep, PlannedStep, Step, choose_steps

__all__ = ["EagerStep", "EpochMetrics", "EpochStats", "GraphStep", "NonFiniteLoss",
           "PlannedStep", "Step", "StepRows", "accuracy", "check_count", "check_data",
           "check_finite", "choose_steps", "correct", "evaluate", "fit", "model_backend",
           "steps", "train_epoch"]
