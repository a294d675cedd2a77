"""``gpunet train`` on several processes, through the real console script:
``--nproc``, a joined ``mpiexec`` launch, and each way a launch can fail."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

import gpunet
from helpers.cli import COMMAND, fails, gpunet_cli
from helpers.mpi import MPIEXEC, ONE_THREAD, mpiexec

pytest.importorskip("mpi4py.MPI", reason="needs mpi4py with an MPI library: pip install "
                    "'gpunet[mpi]'")
pytestmark = pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec: pip install 'gpunet[mpi]'")
SMALL = ["--dataset", "fashion-mnist", "--train-subset", "1000", "--test-subset", "300",
         "--batch-size", "50", "--epochs", "2", "--backend", "numpy", "--quiet"]
def history(path: Path) -> list[tuple[float, ...]]:
    saved = json.loads(path.read_text())
    return [(epoch["loss"], epoch["accuracy"], epoch["test_loss"], epoch["test_accuracy"])
            for epoch in saved["history"]] + [(saved["test_accuracy"],)]


def close(a: list[tuple[float, ...]], b: list[tuple[float, ...]], rtol: float) -> bool:
    return all(x == pytest.approx(y, rel=rtol) for row_a, row_b in zip(a, b)
               for x, y in zip(row_a, row_b)) and len(a) == len(b)


@pytest.fixture(scope="module")
def alone(fashion_dir, tmp_path_factory) -> dict[str, Path]:
    """One process's ``gpunet train SMALL`` (two epochs), run once for the tests that
    compare several ranks with it: its metrics ("metrics") and checkpoint ("ckpt").
    Read only."""
    folder = tmp_path_factory.mktemp("alone")
    paths = {"metrics": folder / "alone.json", "ckpt": folder / "alone.ckpt"}
    done = gpunet_cli("train", *SMALL, "--metrics", str(paths["metrics"]),
                      "--save", str(paths["ckpt"]), env=ONE_THREAD)
    assert done.returncode == 0, done.stderr
    return paths


def test_nproc_2_trains_as_one_process_and_rank_0_alone_writes(fashion_dir, alone, tmp_path):
    shared = tmp_path / "shared.json"
    done = gpunet_cli("train", *SMALL, "--nproc", "2", "--metrics", str(shared),
                      "--save", str(tmp_path / "run.ckpt"), env=ONE_THREAD)
    assert done.returncode == 0, done.stderr
    assert close(history(shared), history(alone["metrics"]), 1e-5)
    assert done.stdout.count("test accuracy:") == 1 and done.stdout.count("epoch 2:") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.ckpt", "shared.json"]
    assert gpunet_cli("eval", str(tmp_path / "run.ckpt"), "--backend", "numpy",
                      "--quiet").returncode == 0


def test_processes_started_by_mpiexec_join_as_ranks(fashion_dir, alone, tmp_path):
    metrics = tmp_path / "joined.json"
    done = mpiexec("-n", "3", *COMMAND, "train", *SMALL, "--metrics", str(metrics))
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("test accuracy:") == 1
    assert close(history(metrics), history(alone["metrics"]), 1e-5)


@pytest.mark.parametrize("extra, message", [
    (["--train-subset", "2", "--nproc", "3"],
     "--nproc 3: 3 ranks need at least 3 training samples, got 2"),
    (["--batch-size", "1", "--nproc", "2"],
     "--nproc 2: batch size 1 is smaller than the 2 ranks"),
])
def test_more_ranks_than_rows_is_one_line(fashion_dir, extra, message):
    done = gpunet_cli("train", *SMALL, *extra)
    fails(done, 2, message)
    assert len(done.stderr.strip().splitlines()) == 1  # nor MPICH's own "Abort(2) on node"


def test_nproc_0_is_refused():
    fails(gpunet_cli("train", "--nproc", "0"), 2, "argument --nproc: must be at least 1, got 0")


def test_nproc_without_mpi4py_is_one_line(tmp_path):
    fake = tmp_path / "mpi4py"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('No module named mpi4py')\n")
    done = gpunet_cli("train", "--nproc", "2", env={"PYTHONPATH": str(tmp_path)})
    fails(done, 2, "--nproc 2 needs mpi4py and an MPI library (No module named mpi4py): "
                   "pip install 'gpunet[mpi]'")
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_launch_of_another_mpi_is_named(fashion_dir):
    """Each process of a foreign mpiexec is a world of one: its variables say 2."""
    fails(gpunet_cli("train", *SMALL, env={"PMI_SIZE": "2"}), 2,
          "started as one of 2 ranks (PMI_SIZE=2), but MPI sees 1: that mpiexec belongs to "
          "another MPI than mpi4py's")


def test_nproc_must_match_the_launch(fashion_dir):
    done = mpiexec("-n", "2", *COMMAND, "train", *SMALL, "--nproc", "3")
    fails(done, 2, "--nproc 3, but the launch started 2 ranks")
    assert done.stderr.count("gpunet: error:") == 1


def test_a_bad_data_file_on_one_rank_ends_the_run(fashion_dir, tmp_path):
    """Rank 1 reads a corrupt copy: every rank ends within 10 s, exit 1, the reason named."""
    for name in os.listdir(fashion_dir):
        (tmp_path / name).symlink_to(fashion_dir / name)
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(b"not a label file")
    start = time.monotonic()
    done = mpiexec("-n", "1", *COMMAND, "train", *SMALL, ":",
                   "-n", "1", *COMMAND, "train", *SMALL, "--data-dir", str(tmp_path), timeout=60)
    assert time.monotonic() - start < 10
    fails(done, 1, f"rank 1 of 2: gpunet: error: {tmp_path / 'train-labels-idx1-ubyte.gz'}:")
    assert "Traceback" not in done.stderr


def test_a_non_finite_loss_stops_every_rank_at_once(fashion_dir, tmp_path):
    """Every rank sees the reduced loss: they stop together, exit 3, said once, as one process."""
    diverging = [*SMALL, "--model", "wide", "--lr", "1e30", "--save", str(tmp_path / "x.ckpt")]
    alone = gpunet_cli("train", *diverging)
    done = gpunet_cli("train", *diverging, "--nproc", "2")
    fails(done, 3, "the loss became non-finite in epoch 1 at step ")
    assert done.stderr.strip().splitlines()[-1] == alone.stderr.strip().splitlines()[-1]
    assert done.stderr.count("gpunet: error:") == 1 and not (tmp_path / "x.ckpt").exists()


def test_graph_replay_is_refused_with_several_ranks(fashion_dir):
    done = gpunet_cli("train", *SMALL, "--nproc", "2", "--graph", "on")
    fails(done, 2, "--graph on replays one process's step; with 2 ranks use --graph auto or off")
    assert done.stderr.count("gpunet: error:") == 1


def test_a_run_on_two_ranks_resumes_as_one_process_would(fashion_dir, alone, tmp_path):
    """Rank 0 writes the checkpoint, every rank reads it to go on, and the result is one
    process's (``alone``: SMALL, whose --epochs is 2, in one process)."""
    one_epoch = [*SMALL[:SMALL.index("--epochs")], *SMALL[SMALL.index("--epochs") + 2:]]
    ckpt = tmp_path / "run.ckpt"
    assert gpunet_cli("train", *one_epoch, "--epochs", "1", "--save", str(ckpt),
                      "--nproc", "2").returncode == 0
    done = gpunet_cli("train", *one_epoch, "--epochs", "2", "--resume", str(ckpt),
                      "--save", str(ckpt), "--nproc", "2")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("resuming") == 1
    backend = gpunet.get_backend("numpy")
    shared, single = (gpunet.load_checkpoint(path, backend) for path in (ckpt, alone["ckpt"]))
    assert shared.epoch == single.epoch == 2
    for got, expected in zip(shared.model.params(), single.model.params()):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
