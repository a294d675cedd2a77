"""Data: IDX files, the MNIST-format datasets, and their preprocessing."""
from .datasets import RawDataset, find_dataset, load_raw, search_dirs
from .errors import DatasetError
from .idx import read_idx
from .mnist import load_mnist
from .preprocess import Prepared
from .sources import SOURCES

__all__ = ["DatasetError", "Prepared", "RawDataset", "SOURCES", "find_dataset", "load_mnist",
           "load_raw", "read_idx", "search_dirs"]
