"""scripts/barrier_mutants.py takes each barrier out of the kernels' text in turn, asks
each of the host's orders whether a test fails, names a barrier no test misses, and
leaves the sources as they were. Here over a stand-in source, the tests stood in for."""
import importlib.util
import re
import subprocess
import sys

import pytest

from helpers.paths import ROOT

SOURCE = '''KERNEL = """
  a();
  __syncthreads();
  b();
  __syncthreads();
"""
'''


def load():
    """scripts/barrier_mutants.py as a module."""
    spec = importlib.util.spec_from_file_location("barrier_mutants",
                                                  ROOT / "scripts" / "barrier_mutants.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def mutants(tmp_path, monkeypatch):
    module = load()
    source = tmp_path / "kernel.py"
    source.write_text(SOURCE)
    monkeypatch.setattr(module, "ROOT", tmp_path)
    monkeypatch.setattr(module, "SOURCES", [source])
    return module, source


def test_each_barrier_is_taken_out_alone_and_put_back(mutants, capsys):
    module, source = mutants
    seen = []

    def caught(order, options):
        seen.append((order, source.read_text().count("__syncthreads();"), options))
        return True
    module.caught = caught
    assert module.main(["-n", "2"]) == 0
    assert seen == [(order, 1, ["-n", "2"]) for _ in range(2) for order in module.ORDERS]
    assert source.read_text() == SOURCE
    assert capsys.readouterr().out.splitlines() == [
        "kernel.py:3: caught in order and last first", "kernel.py:5: caught in order and last first"]


def test_a_barrier_no_order_misses_is_named_and_fails_the_run(mutants, capsys):
    module, source = mutants
    module.caught = lambda order, options: "b();\n  __syncthreads();" in source.read_text() \
        and order == "last first"
    assert module.main([]) == 1
    assert capsys.readouterr().out.splitlines() == ["kernel.py:3: caught last first",
                                                    "kernel.py:5: NOT CAUGHT"]


def test_the_source_is_put_back_when_a_run_fails(mutants):
    module, source = mutants

    def broken(order, options):
        raise KeyboardInterrupt
    module.caught = broken
    with pytest.raises(KeyboardInterrupt):
        module.main([])
    assert source.read_text() == SOURCE


@pytest.mark.parametrize("order", ["in order", "last first"])
def test_each_order_selects_half_the_kernel_tests(order):
    """The order's name selects the tests of conftest.py's host_order of that id."""
    done = subprocess.run([sys.executable, "-m", "pytest", "--co", "-q", "-p", "no:cacheprovider",
                           "-k", load().ORDERS[order], "tests/backend/test_block_kernels_on_host.py"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    selected, total = map(int, re.search(r"(\d+)/(\d+) tests collected", done.stdout).groups())
    assert done.returncode == 0 and 0 < selected < total / 2 + 10
