"""Data: IDX files, the MNIST-format datasets, and their preprocessing."""
from .errors import DatasetError
from .idx import read_idx

__all__ = ["DatasetError", "read_idx"]
