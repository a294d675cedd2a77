"""The notebook's experiments, as functions the command line and tests share."""
from .fizzbuzz import FizzBuzzResult, run_fizzbuzz
from .xor import XorResult, run_xor

__all__ = ["FizzBuzzResult", "XorResult", "run_fizzbuzz", "run_xor"]
