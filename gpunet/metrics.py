"""The epoch metrics' old home, for code that imports them from here: ``gpunet.train.metrics``."""
from .train.metrics import EpochMetrics, NonFiniteLoss

__all__ = ["EpochMetrics", "NonFiniteLoss"]
