"""Where the tests find the checkout and the real data sets (which they only read)."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the checkout: tests/helpers/paths.py
README = ROOT / "README.md"
SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist"
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
