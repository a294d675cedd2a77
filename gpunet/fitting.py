"""``fit`` and ``evaluate``'s old home, for code that imports them from here: ``gpunet.train.fit``."""
from .train.fit import EpochStats, evaluate, fit

__all__ = ["EpochStats", "evaluate", "fit"]
