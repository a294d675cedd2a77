"""What `pip install gpunet[cuda12]` / `[cuda13]` brings: CuPy >= 14 with its ctk
extra (cuBLAS, NVRTC, CUDA headers), without which no kernel compiles; and that
`pip install` puts gpunet, and only gpunet, into site-packages."""
import warnings
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


@pytest.mark.parametrize("major", [12, 13])
def test_cuda_extra_pulls_cupy_14_with_its_toolkit(major):
    extras = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]
    (requirement,) = map(Requirement, extras[f"cuda{major}"])
    assert requirement.name == f"cupy-cuda{major}x"
    assert requirement.extras == {"ctk"}
    assert not requirement.specifier.contains(Version("13.6.0"))
    assert requirement.specifier.contains(Version("14.0.0"))


def test_only_gpunet_and_its_subpackages_are_installed():
    """The packages setuptools would install, read from pyproject.toml as a build
    reads it (no wheel built): gpunet's own, the benchmark harness among them, and
    no top-level name of the checkout's, such as benchmarks/ or tests/."""
    from setuptools.config.pyprojecttoml import apply_configuration
    from setuptools.dist import Distribution

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # [tool.setuptools] in pyproject.toml is "beta"
        packages = apply_configuration(Distribution(), PYPROJECT).packages
    assert {"gpunet", "gpunet.bench", "gpunet.cli", "gpunet.backend"} <= set(packages)
    assert all(name == "gpunet" or name.startswith("gpunet.") for name in packages), packages


def test_the_numpy_backends_c_sources_ship_with_the_backend():
    """gpunet/backend's C (host_operations.c, which includes host_step.c and
    host_gemm.c) is
    compiled where gpunet is installed: a build takes every .c there as package
    data."""
    from setuptools.config.pyprojecttoml import apply_configuration
    from setuptools.dist import Distribution

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = apply_configuration(Distribution(), PYPROJECT).package_data
    backend = PYPROJECT.parent / "gpunet" / "backend"
    shipped = {path.name for pattern in data["gpunet.backend"] for path in backend.glob(pattern)}
    assert shipped == {"host_operations.c", "host_step.c", "host_gemm.c"}


def test_the_license_is_an_spdx_expression_with_its_file():
    """setuptools deprecates a license table (unsupported after 2027-02-18): the
    build reads pyproject.toml without a deprecation warning, and the licence text
    it names ships."""
    from setuptools.config.pyprojecttoml import apply_configuration
    from setuptools.dist import Distribution

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        apply_configuration(Distribution(), PYPROJECT)
    deprecations = [str(w.message) for w in caught if "deprecat" in str(w.message).lower()]
    assert not deprecations, deprecations
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    assert project["license"] == "MIT"
    assert all((PYPROJECT.parent / name).is_file() for name in project["license-files"])
