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
    found = targets.check(measured)
    assert [t.verdict for t in found] == ["pass", "FAIL", "pass", "moonshot", "FAIL", "pass"]
    assert "1,500,000 samples/s" in found[0].what and "in 40 ms (target 60 ms)" in found[0].what
    assert found[1].what.startswith("gpunet graph, deep model, batch 128, on cupy: 3,000,000")
    assert "(target 15 ms)" in found[1].what
    assert found[2].what.endswith(": 3.3x (target 3x)")
    assert found[4].what.startswith("dropout at 1e+07 elements: kernel 0.90x")


def test_each_target_carries_its_figures():
    """What the GPU check's JSON records: measured, limit, unit, met, and whether a
    CuPy run must measure it."""
    found = targets.check({"results": [epoch(1_500_000), *op("sigmoid", 10**6, 1.0, 1.25)]})
    assert [t.as_json() for t in found] == [
        {"verdict": "pass", "what": found[0].what, "measured": 40.0, "limit": 60.0,
         "unit": "ms an epoch, at most", "met": True, "required": True},
        {"verdict": "not measured", "what": "gpunet graph, deep model, batch 128, on cupy (no "
         "such epoch in the run)", "measured": None, "limit": None, "unit": "", "met": None,
         "required": True},
        {"verdict": "not measured", "what": "gpunet graph against PyTorch eager, deep model, "
         "batch 128, on the GPU (both are needed in the run)", "measured": None, "limit": None,
         "unit": "", "met": None, "required": False},
        {"verdict": "pass", "what": "sigmoid at 1e+06 elements: kernel 1.25x the expression's "
         "speed", "measured": 1.25, "limit": 1.0, "unit": "x the expression's speed, at least",
         "met": True, "required": True}]
    assert found[0].line == f"        pass  {found[0].what}"


def test_the_moonshot_is_shown_not_judged():
    """10 ms an epoch and 5x PyTorch eager, both in the same run."""
    def moonshot(graph_rate, torch_rate):
        found = targets.check({"results": [epoch(graph_rate, peer="gpunet graph"),
                                           epoch(torch_rate, backend="cuda", peer="torch")]})
        return next(t for t in found if t.verdict == "moonshot")
    met = moonshot(7_500_000, 1_000_000)
    assert (met.measured, met.limit, met.met) == (8.0, 10.0, True)
    assert met.what == ("gpunet graph: a 8.0 ms epoch and 7.5x PyTorch eager (moonshot 10 ms "
                        "and 5x): met")
    assert moonshot(7_500_000, 2_000_000).met is False  # fast, but only 3.8x
    assert moonshot(5_000_000, 500_000).met is False    # 10x, but 12 ms


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
    lines = [(t.verdict, t.what) for t in targets.check(measured)]
    assert ("no target", "gpunet graph against PyTorch's CUDA graph, deep model, batch 128: "
                         "1.6x") in lines
    assert ("pass", "gpunet graph against PyTorch eager, deep model, batch 128, on the GPU: "
                    "4.0x (target 3x)") in lines


def test_a_graph_epoch_that_fell_back_is_not_a_graphs():
    """A "gpunet graph" epoch whose capture fell back to the planned step
    (its step_path) measures no graph: the graph's target is then not measured."""
    for path, measured in [("graph (cuBLAS)", True), ("planned", False)]:
        results = [epoch(1_500_000), {**epoch(5_000_000, peer="gpunet graph"), "step_path": path}]
        graph = next(t for t in targets.check({"results": results})
                     if t.what.startswith("gpunet graph, deep model"))
        assert (graph.measured is not None) == measured, graph
