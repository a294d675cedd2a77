"""Pictures: the sample-image grid, the training curves, and the metrics file."""
import json
import math
import sys

import numpy as np
import pytest

from gpunet import plots
from gpunet.plots import (MissingDependency, load_metrics, save_image_grid,
                          save_training_curves)
from helpers.images import PNG_SIGNATURE, assert_png

SIGNATURES = {".png": PNG_SIGNATURE, ".jpg": b"\xff\xd8\xff", ".jpeg": b"\xff\xd8\xff",
              ".svg": b"<?xml", ".pdf": b"%PDF-"}


def epochs(n):
    return [{"epoch": e, "loss": 1.0 / e, "accuracy": 0.8 + 0.05 * e, "test_loss": 1.2 / e,
             "test_accuracy": 0.75 + 0.05 * e, "seconds": 1.0, "samples_per_second": 1e4}
            for e in range(1, n + 1)]


def metrics(n=3):
    return {"dataset": "mnist", "model": "deep", "history": epochs(n), "test_accuracy": 0.9}


def samples(n=100, shape=(28, 28), dtype=np.uint8):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, *shape)).astype(dtype)
    return images, rng.integers(0, 10, n)


@pytest.fixture
def matplotlib():
    return pytest.importorskip("matplotlib")


def test_image_grid_is_a_png(matplotlib, tmp_path):
    path = tmp_path / "grid.png"
    assert save_image_grid(*samples(), path) == path
    assert_png(path, min_bytes=20_000)


def test_flat_float_images_are_drawn_square(matplotlib, tmp_path):
    images, labels = samples(n=6, shape=(784,), dtype=np.float32)
    assert_png(save_image_grid(images / 255, labels, tmp_path / "grid.png", rows=2, cols=3))


def test_image_grid_with_class_names_and_fewer_images_than_cells(matplotlib, tmp_path):
    images, labels = samples(n=7)
    names = [f"class {i}" for i in range(10)]
    path = save_image_grid(images, labels, str(tmp_path / "grid.png"), rows=3, cols=4,
                           class_names=names)
    assert_png(path)


@pytest.mark.parametrize("n", [1, 3])
def test_training_curves_are_a_png(matplotlib, tmp_path, n):
    path = tmp_path / "curves.png"
    assert save_training_curves(metrics(n), path) == path
    assert_png(path, min_bytes=10_000)


def test_training_curves_without_test_accuracy_or_title(matplotlib, tmp_path):
    history = [dict(entry, test_accuracy=None) for entry in epochs(2)]
    assert_png(save_training_curves({"history": history}, tmp_path / "curves.png"))


def test_an_existing_png_is_replaced(matplotlib, tmp_path):
    path = tmp_path / "curves.png"
    path.write_bytes(b"old")
    save_training_curves(metrics(), path)
    assert_png(path)


def test_missing_matplotlib_says_how_to_install_it(monkeypatch, tmp_path):
    for name in ["matplotlib", "matplotlib.figure", "matplotlib.backends",
                 "matplotlib.backends.backend_agg"]:
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(MissingDependency, match=r"pip install 'gpunet\[plots\]'"):
        save_training_curves(metrics(), tmp_path / "curves.png")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("images, labels, options, problem", [
    (np.zeros((5, 28, 28)), np.zeros(4, int), {}, r"labels must have shape \(5,\).*\(4,\)"),
    (np.zeros((5, 30)), np.zeros(5, int), {}, r"square number of pixels.*\(5, 30\)"),
    (np.zeros((0, 28, 28)), np.zeros(0, int), {}, r"non-empty.*\(0, 28, 28\)"),
    (np.zeros(28), np.zeros(1, int), {}, r"\(N, H, W\).*\(28,\)"),
    (np.zeros((5, 28, 28)), np.zeros(5, int), {"rows": 0}, "rows must be a positive integer"),
    (np.zeros((5, 28, 28)), np.zeros(5, int), {"cols": 2.5}, "cols must be a positive integer"),
    (np.zeros((5, 28, 28)), np.full(5, 3), {"class_names": ["a", "b"]},
     r"labels must be integers in \[0, 2\)"),
])
def test_bad_grid_input_is_named(tmp_path, images, labels, options, problem):
    with pytest.raises(ValueError, match=problem):
        save_image_grid(images, labels, tmp_path / "grid.png", **options)


@pytest.mark.parametrize("bad, problem", [
    ([], "must be a JSON object"),
    ({"dataset": "mnist"}, "non-empty 'history' list"),
    ({"history": []}, "non-empty 'history' list"),
    ({"history": [{"epoch": 1, "accuracy": 0.5}]}, "entry 0 needs numbers 'epoch' and 'loss'"),
    ({"history": [{"epoch": "one", "loss": 0.5}]}, "entry 0 needs numbers 'epoch' and 'loss'"),
    ({"history": [{"epoch": 1, "loss": True}]}, "entry 0 needs numbers 'epoch' and 'loss'"),
])
def test_bad_metrics_are_named(tmp_path, bad, problem):
    with pytest.raises(ValueError, match=problem):
        save_training_curves(bad, tmp_path / "curves.png")
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(ValueError, match=f"metrics.json.*{problem}"):
        load_metrics(path)


def test_missing_parent_directory_is_named(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(ValueError, match="directory .*nowhere.* does not exist"):
        save_training_curves(metrics(), missing / "curves.png")
    with pytest.raises(ValueError, match="directory .*nowhere.* does not exist"):
        save_image_grid(*samples(), missing / "grid.png")


def test_load_metrics_reads_the_file(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(metrics()))
    assert load_metrics(path) == metrics()


def test_missing_metrics_file_is_named(tmp_path):
    with pytest.raises(ValueError, match="cannot read metrics file .*absent.json"):
        load_metrics(tmp_path / "absent.json")


@pytest.mark.parametrize("contents, problem", [
    (b"{not json", "not JSON (Expecting property name enclosed in double quotes at line 1 "
                   "column 2)"),
    (b"\x89PNG", "not JSON (byte 0x89 at offset 0 is not UTF-8)"),
    (b"[" * 100_000, "JSON nested too deeply to read"),
    (b"[1]", "metrics must be a JSON object, got list"),
])
def test_a_file_that_is_not_a_metrics_file_says_why(tmp_path, contents, problem):
    path = tmp_path / "metrics.json"
    path.write_bytes(contents)
    with pytest.raises(ValueError) as raised:
        load_metrics(path)
    assert str(raised.value) == f"{path} is not a metrics file: {problem}"


@pytest.fixture
def drawn(matplotlib, monkeypatch):
    """The figures the plots module writes, kept to be looked at."""
    figures = []
    real_write = plots.write_picture

    def write(figure, destination, format=None):
        figures.append(figure)
        return real_write(figure, destination, format)

    monkeypatch.setattr(plots, "write_picture", write)
    return figures


def curves(figure):
    """{axis label: {line label: (epochs, values)}} of a training-curves figure."""
    return {ax.get_ylabel(): {line.get_label(): (list(line.get_xdata()), list(line.get_ydata()))
                              for line in ax.lines}
            for ax in figure.axes}


def test_training_curves_show_the_test_loss_beside_the_loss(drawn, tmp_path):
    save_training_curves(metrics(3), tmp_path / "curves.png")
    drawn_curves = curves(drawn[0])
    assert drawn_curves["loss"] == {"training loss": ([1, 2, 3], [1.0, 0.5, 1 / 3]),
                                    "test loss": ([1, 2, 3], [1.2, 1.2 / 2, 1.2 / 3])}
    assert set(drawn_curves["accuracy"]) == {"training accuracy", "test accuracy"}
    assert [text.get_text() for text in drawn[0].axes[0].get_legend().get_texts()] == \
        ["training loss", "test loss"]


def test_values_that_cannot_be_placed_are_left_out(drawn, tmp_path):
    """A diverged test loss (inf, NaN, an integer beyond any float) or a missing one."""
    history = epochs(4)
    for entry, bad in zip(history, [math.inf, math.nan, 10 ** 400, None]):
        entry["test_loss"] = bad
    history[3]["test_loss"] = 0.3
    save_training_curves({"history": history}, tmp_path / "curves.png")
    assert curves(drawn[0])["loss"]["test loss"] == ([4], [0.3])


def test_a_loss_near_the_float_limit_is_left_out_not_a_failure(drawn, tmp_path):
    """Beyond plots.PLACEABLE matplotlib's axis arithmetic overflows."""
    history = epochs(3)
    history[0]["loss"], history[1]["test_loss"] = 1e308, 1.7e308
    assert_png(save_training_curves({"history": history}, tmp_path / "curves.png"))
    drawn_curves = curves(drawn[0])["loss"]
    assert drawn_curves["training loss"][0] == [2, 3] and drawn_curves["test loss"][0] == [1, 3]


@pytest.mark.parametrize("first_loss, scale", [(1e249, "log"), (1.0, "linear")])
def test_losses_spanning_decades_get_a_log_axis(drawn, tmp_path, first_loss, scale):
    history = epochs(3)
    history[0]["loss"] = first_loss
    save_training_curves({"history": history}, tmp_path / "curves.png")
    assert drawn[0].axes[0].get_yscale() == scale


def test_a_zero_loss_keeps_a_linear_axis(drawn, tmp_path):
    history = epochs(3)
    history[0]["loss"], history[1]["loss"] = 1e249, 0.0
    assert_png(save_training_curves({"history": history}, tmp_path / "curves.png"))
    assert drawn[0].axes[0].get_yscale() == "linear"


@pytest.mark.parametrize("suffix", list(SIGNATURES))
def test_the_suffix_names_the_format(matplotlib, tmp_path, suffix):
    for path in (save_image_grid(*samples(n=4), tmp_path / f"grid{suffix}", rows=2, cols=2),
                 save_training_curves(metrics(), tmp_path / f"curves{suffix.upper()}")):
        assert path.read_bytes().startswith(SIGNATURES[suffix])


@pytest.mark.parametrize("name", ["grid.gif", "grid", "grid.png.txt"])
def test_an_unknown_suffix_is_refused_before_drawing(tmp_path, name):
    message = (f"cannot write a picture to '{tmp_path / name}': the name must end in "
               ".png, .jpg, .jpeg, .svg, .pdf")
    for draw in (lambda: save_image_grid(*samples(), tmp_path / name),
                 lambda: save_training_curves(metrics(), tmp_path / name)):
        with pytest.raises(ValueError) as error:
            draw()
        assert str(error.value) == message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("n", [1, 2])
def test_a_short_run_has_whole_epoch_ticks(drawn, tmp_path, n):
    save_training_curves(metrics(n), tmp_path / "curves.png")
    for ax in drawn[0].axes:
        low, high = ax.get_xlim()
        assert [tick for tick in ax.get_xticks() if low <= tick <= high] == list(range(1, n + 1))


@pytest.mark.parametrize("first_loss, labels", [
    (2000.0, ["1", "10", "100", "1000"]),
    (1e6, [f"$\\mathdefault{{10^{{{k}}}}}$" for k in range(0, 7)]),
])
def test_a_log_loss_axis_reads_as_plain_numbers_where_they_are_short(drawn, tmp_path,
                                                                   first_loss, labels):
    history = epochs(3)
    history[0]["loss"] = first_loss
    save_training_curves({"history": history}, tmp_path / "curves.png")
    ax = drawn[0].axes[0]
    low, high = ax.get_ylim()
    assert ax.get_yscale() == "log"
    assert [label.get_text() for label in ax.get_yticklabels()
            if low <= label.get_position()[1] <= high] == labels
    assert not any(label.get_text() for label in ax.get_yticklabels(minor=True))


def test_a_picture_named_only_by_its_suffix_is_that_format(matplotlib, tmp_path):
    path = save_training_curves(metrics(), tmp_path / ".png")
    assert path.read_bytes().startswith(PNG_SIGNATURE)
    assert plots.picture_format("x/.PDF") == "pdf"
    with pytest.raises(ValueError, match="the name must end in"):
        plots.picture_format("png")


@pytest.mark.parametrize("special, problem", [
    ("fifo", "a FIFO, not a regular file"),
    ("/dev/zero", "a character device, not a regular file"),
    ("loop", "cannot read it \\(a symlink loop\\)")])
def test_a_metrics_file_that_is_not_a_regular_file_is_never_read(tmp_path, special, problem):
    import os
    os.mkfifo(tmp_path / "fifo")  # reading it would wait for a writer forever
    (tmp_path / "loop").symlink_to("loop")
    path = special if special.startswith("/") else tmp_path / special
    with pytest.raises(ValueError, match=f"^cannot read metrics file {path}: {problem}$"):
        load_metrics(path)


def test_a_metrics_file_is_read_up_to_a_limit(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(metrics()))
    monkeypatch.setattr(plots, "MAX_METRICS", path.stat().st_size)
    assert load_metrics(path) == metrics()
    monkeypatch.setattr(plots, "MAX_METRICS", path.stat().st_size - 1)
    with pytest.raises(ValueError, match=f"^{path} is not a metrics file: more than "):
        load_metrics(path)
