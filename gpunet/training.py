"""The training loop's old home, for code that imports it from here: it lives in ``gpunet.train``."""
from .train.checks import check_count, check_data, model_backend
from .train.epoch import StepRows, steps, train_epoch
from .train.metrics import accuracy, correct

__all__ = ["StepRows", "accuracy", "check_count", "check_data", "correct", "model_backend",
           "steps", "train_epoch"]
