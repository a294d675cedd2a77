"""gpunet.bench.targets: the CuPy speed targets read from a run's results."""
import json

from gpunet.bench import targets


def epoch(rate, backend="cupy", batch_size=128, peer="gpunet"):
    return {"case": "train", "what": "epoch", "peer": peer, "backend": backend,
            "model": "deep", "batch_size": batch_size, "samples_per_s": rate}


def op(name, size, kernel_s, expression_s):
    return [{"case": "op", "op": name, "backend": "cupy", "size": size, "variant": "kernel",
             "median_s": kernel_s},
            {"case": "op", "op": name, "backend": "cupy", "size": size, "variant": "expression",
             "median_s": expression_s}]


def test_each_target_passes_or_fails_on_its_figure():
    measured = {"results": [epoch(1_500_000), epoch(10, backend="numpy"),
                            epoch(3_000_000, peer="gpunet graph"),
                            epoch(900_000, backend="cuda", peer="torch"),
                            *op("sigmoid", 10**6, 1.0, 1.2), *op("dropout", 10**7, 1.0, 0.9),
                            *op("relu", 1000, 2.0, 1.0)]}
    lines = targets.check(measured)
    assert [verdict for verdict, _ in lines] == ["pass", "FAIL", "pass", "FAIL", "pass"]
    assert "1,500,000 samples/s" in lines[0][1] and "in 40 ms (target 60 ms)" in lines[0][1]
    assert lines[1][1].startswith("gpunet graph, deep model, batch 128, on cupy: 3,000,000")
    assert "(target 15 ms)" in lines[1][1]
    assert lines[2][1].endswith(": 3.3x (target 3x)")
    assert lines[3][1].startswith("dropout at 1e+07 elements: kernel 0.90x")


def test_one_launch_expressions_are_shown_not_judged(tmp_path, capsys):
    """tanh and relu are one launch either way: a ratio under 1 is noise, not a miss."""
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"results": [epoch(1_500_000), *op("tanh", 10**6, 1.0, 0.97),
                                            *op("relu", 10**7, 1.0, 0.99)]}))
    assert targets.main([str(path)]) == 0
    out = capsys.readouterr().out
    assert out.count("no target") == 2 and "tanh at 1e+06 elements: kernel 0.97x" in out


def test_a_cpu_run_measures_no_target(tmp_path, capsys):
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"results": [epoch(10, backend="numpy")]}))
    assert targets.main([str(path)]) == 0
    assert capsys.readouterr().out.count("not measured") == 4


def test_slow_epoch_fails_and_bad_files_are_named(tmp_path, capsys):
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"results": [epoch(900_000)]}))
    assert targets.main([str(path)]) == 1
    assert "FAIL" in capsys.readouterr().out
    assert targets.main([str(tmp_path / "missing.json")]) == 2
    assert "cannot read benchmark results" in capsys.readouterr().err
    assert targets.main([]) == 2


def test_pytorch_s_own_graph_is_shown_beside_the_target_not_judged():
    measured = {"results": [epoch(4_000_000, peer="gpunet graph"),
                            epoch(1_000_000, backend="cuda", peer="torch"),
                            epoch(2_500_000, backend="cuda", peer="torch graph")]}
    lines = targets.check(measured)
    assert ("no target", "gpunet graph against PyTorch's CUDA graph, deep model, batch 128: "
                         "1.6x") in lines
    assert ("pass", "gpunet graph against PyTorch eager, deep model, batch 128, on the GPU: "
                    "4.0x (target 3x)") in lines
