"""The host runners of the kernels' text (helpers/kernel_source.py for kernels.py's
rows, helpers/block_kernel_source.py for the block kernels) leave a kernel what a GPU
leaves it: shared memory no thread of the block wrote is undefined (NaN here, in
every block); the order of a grid's blocks, of a block's threads between barriers,
or of a row's elements, is not the kernel's to rely on (last first, built with
-DHOST_REVERSED, as conftest.py's ``host_order`` builds them for every other run);
a barrier some of a block's threads do not reach fails the launch, as do a launch
beyond CUDA's limits and overlapping ``__restrict__`` arrays, one written; and an
array CuPy allocates holds whatever was there (helpers/cupy_on_host.py's stand-in:
NaN, -1). Each is checked with a kernel made to show it.
"""
from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from gpunet.backend.block_kernels import BlockKernel
from gpunet.backend.kernels import KernelSpec
from helpers.block_kernel_source import build_host_launch, failure, host_source
from helpers.cupy_on_host import undefined
from helpers.kernel_source import host_build, render

if shutil.which("g++") is None:
    pytest.skip("g++ is not on PATH, so no kernel can be compiled for the host "
                "(apt-get install g++)", allow_module_level=True)

# Thread 0 of each block writes seen[0] (and, in block 0 only, seen[1]), then reads both.
SHARED_READ = BlockKernel("gpunet_shared_read", "T* __restrict__ out", """\
  __shared__ T seen[2];
  if (threadIdx.x == 0) {
    seen[0] = T(blockIdx.x);
    if (blockIdx.x == 0) seen[1] = T(7);
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    out[2 * blockIdx.x] = seen[0];
    out[2 * blockIdx.x + 1] = seen[1];
  }""")
# The odd threads end before the barrier the even ones reach.
ENDING = BlockKernel("gpunet_ending", "T* __restrict__ out", """\
  if (threadIdx.x % 2) return;
  __syncthreads();
  out[threadIdx.x] = T(1);""")
# The odd threads reach one barrier, the even ones another.
PARTING = BlockKernel("gpunet_parting", "T* __restrict__ out", """\
  if (threadIdx.x % 2) __syncthreads(); else __syncthreads();
  out[threadIdx.x] = T(1);""")
# Each block writes its index to out[0]: the last to run is left there.
LAST_BLOCK = BlockKernel("gpunet_last_block", "T* __restrict__ out",
                         "  if (threadIdx.x == 0) out[0] = T(blockIdx.x);")
# Each thread writes its index to out[0]: the last to run is left there.
LAST_THREAD = BlockKernel("gpunet_last_thread", "T* __restrict__ out",
                          "  out[0] = T(threadIdx.x);")
# Each element writes its x to out[0]: the last to run is left there.
LAST_ELEMENT = KernelSpec("gpunet_last_element", "T x", "raw T out", "out[0] = x")


@pytest.fixture(autouse=True)
def own_flags(monkeypatch) -> None:
    """Each test's builds take the flags it gives, not scripts/host_sanitize.sh's."""
    monkeypatch.delenv("GPUNET_HOST_CXXFLAGS", raising=False)


def built(folder: Path, source: str, *flags: str) -> ctypes.CDLL:
    """``source`` built for the host with ``host_build``'s flags and ``flags``."""
    path, library = folder / "kernels.cpp", folder / "kernels.so"
    path.write_text(source)
    command = host_build(path, library, *flags)
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, f"g++ fails:\n{done.stderr}"
    return ctypes.CDLL(str(library))


def run_blocks(library: ctypes.CDLL, kernel: BlockKernel, blocks: int, out: np.ndarray) -> None:
    """``kernel`` (float) on ``blocks`` blocks of 4 threads, its one parameter ``out``."""
    function = getattr(library, f"host_{kernel.name}_float")
    function.argtypes = [ctypes.c_uint] * 5 + [ctypes.c_void_p]
    function(blocks, 1, 4, 1, 1, out.ctypes.data)


def test_shared_memory_no_thread_of_the_block_wrote_reads_nan_in_every_block(tmp_path,
                                                                            host_order):
    library = built(tmp_path, host_source(extra=(SHARED_READ,)), *host_order)
    out = np.zeros(4, np.float32)
    run_blocks(library, SHARED_READ, 2, out)
    np.testing.assert_array_equal(out, [0, 7, 1, np.nan])  # not block 0's 7, nor 0


@pytest.mark.parametrize("kernel, flags, said", [
    (ENDING, (), "block (0, 0): thread 1 reached its end where another reached a barrier"),
    (ENDING, ("-DHOST_REVERSED",),
     "block (1, 0): thread 2 reached a barrier where another reached its end"),
    (PARTING, (), "block (0, 0): thread 1 reached a barrier where another reached another "
                  "barrier")], ids=["its end", "its end, reversed", "another barrier"])
def test_a_barrier_some_threads_of_a_block_do_not_reach_fails_the_launch(tmp_path, kernel,
                                                                          flags, said):
    library = built(tmp_path, host_source(extra=(kernel,)), *flags)
    run_blocks(library, kernel, 2, np.zeros(4, np.float32))
    assert failure(library) == said


@pytest.mark.parametrize("kernel, blocks, last", [(LAST_BLOCK, 3, 2), (LAST_THREAD, 1, 3)],
                         ids=["a grid's blocks", "a block's threads"])
def test_blocks_and_threads_run_last_first_when_reversed(tmp_path, kernel, blocks, last,
                                                         host_order):
    library = built(tmp_path, host_source(extra=(kernel,)), *host_order)
    out = np.full(1, -1, np.float32)
    run_blocks(library, kernel, blocks, out)
    assert out[0] == (0 if host_order else last)


def test_a_rows_elements_run_last_first_when_reversed(tmp_path, host_order):
    library = built(tmp_path, render(LAST_ELEMENT, {"T": "float"}, "host"), *host_order)
    x, out = np.arange(5, dtype=np.float32), np.full(1, -1, np.float32)
    function = library.gpunet_last_element
    function.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_ssize_t]
    function(x.ctypes.data, out.ctypes.data, len(x))
    assert out[0] == (0 if host_order else 4)


def test_the_host_builds_take_the_flags_in_gpunet_host_cxxflags(monkeypatch, tmp_path):
    monkeypatch.setenv("GPUNET_HOST_CXXFLAGS", "-DHOST_REVERSED -g")
    command = host_build(tmp_path / "a.cpp", tmp_path / "a.so", "-O2")
    assert command[-6:] == ["-O2", "-DHOST_REVERSED", "-g", str(tmp_path / "a.cpp"), "-o",
                            str(tmp_path / "a.so")]


@pytest.mark.parametrize("dtype, value", [(np.float32, np.nan), (np.float64, np.nan),
                                          (np.int64, -1), (np.uint64, 2 ** 64 - 1)])
@pytest.mark.parametrize("order", ["C", "F"])
def test_the_stand_in_cupy_empty_holds_nan_or_all_ones_bits(dtype, value, order):
    np.testing.assert_array_equal(undefined((2, 3), dtype, order), np.full((2, 3), value, dtype))


@pytest.mark.parametrize("grid, block, said", [
    ((1, 65536), (32,), "a grid of 1 x 65536 blocks"),
    ((1,), (1025,), "1025 x 1 x 1 threads in a block"),
    ((1,), (1, 1, 65), "1 x 1 x 65 threads in a block")])
def test_a_launch_beyond_cudas_limits_is_refused(tmp_path, grid, block, said):
    launch = build_host_launch(tmp_path)
    data, state = np.zeros((4, 3), np.float32), np.zeros(3, np.uint64)
    with pytest.raises(AssertionError, match=f"^read_ahead: {said}$"):
        launch("read_ahead", np.float32, grid, block, (data, np.int64(3), data, np.int64(3),
                                                        np.int64(4), np.int64(2), state))


def test_a_launch_writing_through_a_restrict_pointer_what_another_reads_is_refused(tmp_path):
    launch = build_host_launch(tmp_path)
    z, dz, db = np.ones((4, 3), np.float32), np.zeros((4, 3), np.float32), np.zeros(3, np.float32)
    shape = (np.int64(4), np.int64(3))
    launch("dense_backward_tanh", np.float32, (1,), (256,), (z, z, *shape, dz, db))  # reads alike
    with pytest.raises(AssertionError, match="^dense_backward_tanh: outputs and dz overlap, "
                                             "written through a __restrict__ pointer$"):
        launch("dense_backward_tanh", np.float32, (1,), (256,), (z, z, *shape, z[1:], db))
