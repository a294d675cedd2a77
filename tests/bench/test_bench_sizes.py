"""gpunet bench's sizes: written as the help writes them (1e3), bounded, and a size that
does not fit in memory is one line, not a MemoryError traceback."""
import os

import pytest

from gpunet.cli import main
from gpunet.cli.commands import build_parser


def test_sizes_are_read_as_the_help_writes_them():
    args = build_parser().parse_args(["bench", "--op-sizes", "1e3", "1e8", "--batch-sizes", "1",
                                      "1e3", "--epoch-samples", "6e4"])
    assert (args.op_sizes, args.batch_sizes, args.epoch_samples) == ([1000, 10 ** 8],
                                                                      [1, 1000], 60000)


@pytest.mark.parametrize("option, value, most", [("--op-sizes", "1e12", "1,000,000,000"),
                                                 ("--batch-sizes", "1e11", "1,000,000"),
                                                 ("--epoch-samples", "1e11", "1,000,000")])
def test_sizes_beyond_the_bound_are_refused(capsys, option, value, most):
    with pytest.raises(SystemExit) as exit:
        main(["bench", option, value])
    assert exit.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"gpunet bench: error: argument {option}: must be at most {most}, got {value}")


def test_running_out_of_memory_is_one_line(tmp_path, capsys, monkeypatch):
    from gpunet.bench import harness

    def too_big(config):
        raise MemoryError
    monkeypatch.setattr(harness, "run", too_big)
    assert main(["bench", "--quick", "--op-sizes", "1e9", "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == (
        "gpunet: error: out of memory: the sizes asked for (--op-sizes, --batch-sizes, "
        "--epoch-samples) do not fit on this machine\n")
    assert not (tmp_path / "out").exists()


def test_a_results_file_that_cannot_be_replaced_stops_the_run_before_it_starts(tmp_path,
                                                                                capsys,
                                                                                monkeypatch):
    from gpunet.bench import harness

    def measured(config):
        raise AssertionError("the benchmark ran")
    monkeypatch.setattr(harness, "run", measured)
    os.mkfifo(tmp_path / "results.json")
    assert main(["bench", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        f"gpunet: error: --out {tmp_path}: cannot write {str(tmp_path / 'results.json')!r}: "
        "it is a FIFO, not a regular file\n")
