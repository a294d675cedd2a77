"""The benchmark's PNG plots: training throughput and per-operation bandwidth."""
import sys

import numpy as np
import pytest

from gpunet.bench import figures
from gpunet.bench.figures import bandwidth_figure, throughput_figure
from gpunet.plots import MissingDependency
from helpers.images import assert_png


def train(what="epoch", peer="gpunet", backend="numpy", model="deep", batch_size=128, **fields):
    return {"case": "train", "what": what, "peer": peer, "backend": backend, "model": model,
            "batch_size": batch_size, "median_s": 1.0, "q1_s": 0.9, "q3_s": 1.1, "repeats": 5,
            "samples_per_s": 1e3 * batch_size ** 0.5, "step_memory_bytes": None, "step_memory_measure": None, **fields}


def op(op="tanh_grad", variant="kernel", backend="numpy", size=1000, **fields):
    return {"case": "op", "op": op, "backend": backend, "variant": variant, "size": size,
            "dtype": "float32", "median_s": 1e-3, "q1_s": 9e-4, "q3_s": 1.1e-3, "repeats": 7,
            "bytes": 12 * size, "gb_per_s": 12 * size / 1e9 / 1e-3, **fields}


def training_results(what="epoch"):
    return [train(what, "notebook", "numpy", model, 1) for model in ("wide", "deep")] + [
        train(what, peer, backend, model, batch_size)
        for model in ("wide", "logistic", "deep")
        for peer, backend in (("gpunet", "numpy"), ("torch", "cpu"), ("gpunet", "cupy"))
        for batch_size in (1, 32, 128, 1024)]


def op_results():
    return [op(name, variant, backend, size)
            for name in ("tanh", "tanh_grad", "softmax", "sgd_update")
            for variant in ("kernel", "expression") for backend in ("numpy", "cupy")
            for size in (10 ** 3, 10 ** 5, 10 ** 8)]



@pytest.fixture
def drawn(monkeypatch):
    """The figures written, kept as they are saved."""
    pytest.importorskip("matplotlib")
    saved = []

    def write_png(figure, destination):
        saved.append(figure)
        return original(figure, destination)

    original = figures.write_png
    monkeypatch.setattr(figures, "write_png", write_png)
    return saved


def suptitle(figure):
    return " ".join(text.get_text() for text in figure.texts)


def legends(figure):
    return [[text.get_text() for text in ax.get_legend().get_texts()]
            for ax in figure.axes if ax.get_legend()]


def test_throughput_figure_is_a_png_with_a_panel_per_model(drawn, tmp_path):
    path = tmp_path / "throughput.png"
    assert throughput_figure(training_results(), path) == path
    assert_png(path, min_bytes=10_000)
    [figure] = drawn
    assert [ax.get_title() for ax in figure.axes] == ["logistic", "deep", "wide"]
    assert legends(figure)[1] == ["notebook numpy", "gpunet numpy", "torch cpu", "gpunet cupy"]
    assert figure.axes[0].get_xscale() == figure.axes[0].get_yscale() == "log"
    assert figure.axes[0].get_xlabel() == "batch size"
    assert "per epoch" in suptitle(figure)
    notebook = figure.axes[1].get_lines()[0]
    assert list(notebook.get_xdata()) == [1] and notebook.get_marker() == "D"


def test_throughput_uses_the_records_timed_as_asked(drawn, tmp_path):
    results = training_results("epoch") + [train("step", model="other")]
    throughput_figure(results, tmp_path / "throughput.png", what="step")
    assert [ax.get_title() for ax in drawn[0].axes] == ["other"]
    assert "per step" in suptitle(drawn[0])


def test_throughput_falls_back_to_step_records(drawn, tmp_path):
    path = tmp_path / "throughput.png"
    assert throughput_figure(training_results("step"), path, what="epoch") == path
    assert_png(path, min_bytes=10_000)
    assert "per step" in suptitle(drawn[0])


def test_bandwidth_figure_is_a_png_with_a_panel_per_op(drawn, tmp_path):
    path = tmp_path / "bandwidth.png"
    assert bandwidth_figure(op_results() + training_results(), str(path)) == path
    assert_png(path, min_bytes=10_000)
    [figure] = drawn
    panels = [ax for ax in figure.axes if ax.axison]
    assert [ax.get_title() for ax in panels] == ["tanh", "tanh_grad", "softmax", "sgd_update"]
    assert legends(figure)[0] == ["kernel numpy", "kernel cupy", "expression numpy",
                                  "expression cupy"]
    assert panels[0].get_xscale() == panels[0].get_yscale() == "log"
    assert panels[0].get_xlabel() == "size (elements)" and panels[0].get_ylabel() == "GB/s"


def test_a_series_keeps_its_colour_in_every_panel(drawn, tmp_path):
    results = [op("a", "kernel"), op("b", "expression"), op("b", "kernel")]
    bandwidth_figure(results, tmp_path / "bandwidth.png")
    [kernel_a], [expression_b, kernel_b] = (ax.get_lines() for ax in drawn[0].axes)
    assert kernel_a.get_color() == kernel_b.get_color() != expression_b.get_color()


@pytest.mark.parametrize("results", [
    [],
    [{"case": "summary", "host": "x"}, {"case": "op"}, {"case": "train", "what": "epoch"}],
])
@pytest.mark.parametrize("draw", [throughput_figure, bandwidth_figure])
def test_nothing_to_plot_writes_nothing(tmp_path, draw, results):
    assert draw(results, tmp_path / "figure.png") is None
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("bad", [
    {"samples_per_s": None, "gb_per_s": None},
    {"samples_per_s": "fast", "gb_per_s": "fast"},
    {"samples_per_s": float("nan"), "gb_per_s": float("inf")},
    {"batch_size": 0, "size": -1},
    {"batch_size": True, "size": True},
    {"model": None, "op": None},
    {"peer": 3, "variant": ""},
])
def test_malformed_records_are_skipped(drawn, tmp_path, bad):
    results = [train(**bad), op(**bad), "not a record", None,
               train(model="good"), op("good")]
    assert throughput_figure(results, tmp_path / "throughput.png")
    assert bandwidth_figure(results, tmp_path / "bandwidth.png")
    for figure in drawn:
        assert [ax.get_title() for ax in figure.axes] == ["good"]
        assert len(figure.axes[0].get_lines()) == 1


def test_missing_matplotlib_says_how_to_install_it(monkeypatch, tmp_path):
    for name in ["matplotlib", "matplotlib.figure", "matplotlib.backends",
                 "matplotlib.backends.backend_agg"]:
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(MissingDependency, match=r"pip install 'gpunet\[plots\]'"):
        throughput_figure(training_results(), tmp_path / "throughput.png")
    with pytest.raises(MissingDependency):
        bandwidth_figure(op_results(), tmp_path / "bandwidth.png")
    assert list(tmp_path.iterdir()) == []


def test_missing_parent_directory_is_named(tmp_path):
    with pytest.raises(ValueError, match="directory .*nowhere.* does not exist"):
        bandwidth_figure(op_results(), tmp_path / "nowhere" / "bandwidth.png")


def rings(ax):
    return [line for line in ax.get_lines() if line.get_label() == figures.NOISY_LABEL]


def test_noisy_points_are_ringed_and_the_legend_says_why(drawn, tmp_path):
    results = [train(batch_size=b, noisy=b == 32) for b in (1, 32, 128)] + [
        train(peer="torch", backend="cpu", batch_size=128, noisy=True),
        train(model="wide", batch_size=32, noisy=False)]
    throughput_figure(results, tmp_path / "throughput.png")
    deep, wide = drawn[0].axes
    [ring] = rings(deep)
    assert sorted(zip(ring.get_xdata(), ring.get_ydata())) == [
        (32, 1e3 * 32 ** 0.5), (128, 1e3 * 128 ** 0.5)]
    assert ring.get_linestyle() == "None" and ring.get_markerfacecolor() == "none"
    assert "noisy: spread > 25% of median" in legends(drawn[0])[0]
    assert rings(wide) == [] and "noisy" not in " ".join(legends(drawn[0])[1])


def test_noisy_ops_are_ringed(drawn, tmp_path):
    bandwidth_figure([op(size=10 ** 3), op(size=10 ** 5, noisy=True),
                      op(variant="expression", size=10 ** 5, noisy="yes")],
                     tmp_path / "bandwidth.png")
    [ring] = rings(drawn[0].axes[0])
    assert list(ring.get_xdata()) == [10 ** 5]


@pytest.mark.parametrize("draw, results", [
    (bandwidth_figure, [op(name, size=size) for name in ("sigmoid", "sigmoid_grad", "tanh",
                                                         "tanh_grad", "relu", "relu_grad",
                                                         "softmax_cross_entropy", "matches",
                                                         "sgd_update", "momentum_update",
                                                         "dropout")
                        for size in (10 ** 3, 10 ** 8)]),
    (throughput_figure, training_results()),
])
def test_the_title_clears_every_panel(drawn, tmp_path, draw, results):
    """The figure's title sits at least 3 points above every panel's title
    (tight_layout left it touching the middle one)."""
    draw(results, tmp_path / "figure.png")
    [figure] = drawn
    renderer = figure.canvas.get_renderer()
    [title] = figure.texts
    bottom = title.get_window_extent(renderer).y0
    for ax in figure.axes:
        if ax.axison:
            gap = bottom - ax.title.get_window_extent(renderer).y1
            assert gap * 72 / figure.dpi >= 3, ax.get_title()


def test_each_point_has_a_whisker_from_its_slowest_to_its_fastest_reading(drawn, tmp_path):
    """A rate goes as 1 / time: the whisker spans the rates at max_s and at min_s."""
    from matplotlib.colors import to_rgba
    results = [train(batch_size=b, min_s=0.5, median_s=1.0, max_s=4.0) for b in (1, 32)] + [
        train(peer="notebook", batch_size=1)]  # extrapolated: no readings, no whisker
    throughput_figure(results, tmp_path / "throughput.png")
    [ax] = drawn[0].axes
    [whiskers] = ax.containers
    _, _, (bars,) = whiskers
    y = [1e3, 1e3 * 32 ** 0.5]
    np.testing.assert_allclose(bars.get_segments(), [[[1, y[0] / 4], [1, y[0] * 2]],
                                                     [[32, y[1] / 4], [32, y[1] * 2]]])
    assert bars.get_colors().tolist() == [list(to_rgba(ax.get_lines()[0].get_color()))]
    assert legends(drawn[0]) == [["gpunet numpy", "notebook numpy"]]


def tick_labels(axis):
    """The labels of an axis's ticks in view, major and minor, in order."""
    low, high = axis.get_view_interval()
    ticks = [*zip(axis.get_majorticklocs(), axis.get_majorticklabels()),
             *zip(axis.get_minorticklocs(), axis.get_minorticklabels())]
    return [label.get_text() for at, label in sorted(ticks, key=lambda tick: tick[0])
            if low <= at <= high and label.get_text()]


@pytest.mark.parametrize("draw, results, x, y", [
    (throughput_figure, [train(batch_size=b, samples_per_s=r) for b, r in
                         ((1, 5e3), (32, 1e5), (128, 3e5))],
     ["1", "3", "10", "30", "100"], ["10k", "30k", "100k", "300k"]),
    (bandwidth_figure, [op(size=s, gb_per_s=g) for s, g in ((10 ** 3, 0.4), (10 ** 8, 20.0))],
     ["1k", "10k", "100k", "1M", "10M", "100M"], ["1", "3", "10"]),
    (bandwidth_figure, [op(size=s, gb_per_s=g) for s, g in ((10 ** 3, 1.5), (10 ** 5, 9.0))],
     ["1k", "3k", "10k", "30k", "100k"], ["2", "3", "5"]),
])
def test_log_axes_read_in_plain_numbers(drawn, tmp_path, draw, results, x, y):
    """1, 3, 10, 30, ..., 1k, 10k: each decade, its 3s too where the axis spans
    at most 3 decades, its 2s and 5s where it spans under one; never 3x10^0."""
    draw(results, tmp_path / "figure.png")  # writing the PNG draws the canvas
    [ax] = drawn[0].axes
    assert (tick_labels(ax.xaxis), tick_labels(ax.yaxis)) == (x, y)
