"""The backend seam: choosing a backend, and the operations every backend provides."""
import re

import numpy as np
import pytest

import gpunet
from gpunet.backend import BackendUnavailable, cuda_status, explain_auto
from helpers.arrays import host
from helpers.random_reference import device_key, uniform

FLOATS = [np.float32, np.float64]


def test_names_and_default(monkeypatch):
    assert gpunet.get_backend("numpy").name == "numpy"
    assert gpunet.get_backend(" NumPy ") is gpunet.get_backend("numpy")
    monkeypatch.setenv("GPUNET_BACKEND", "numpy")
    assert gpunet.get_backend().name == "numpy"
    monkeypatch.delenv("GPUNET_BACKEND")
    assert gpunet.get_backend() is gpunet.get_backend("auto")


def test_unknown_backend_lists_valid_names(monkeypatch):
    with pytest.raises(ValueError, match="^unknown backend 'tpu'; valid backends: numpy, cupy, auto$"):
        gpunet.get_backend("tpu")
    with pytest.raises(ValueError, match="^unknown backend 3; valid backends"):
        gpunet.get_backend(3)
    monkeypatch.setenv("GPUNET_BACKEND", "metal")
    with pytest.raises(ValueError, match=r"^unknown \$GPUNET_BACKEND 'metal'; valid backends"):
        gpunet.get_backend()


def test_auto_takes_cupy_where_cuda_is_usable(monkeypatch):
    import gpunet.backend as backends
    on_the_gpu = object()
    monkeypatch.setattr(backends, "_cuda_status", backends.CudaStatus(True, "usable"))
    monkeypatch.setattr(backends, "_instances", {"cupy": on_the_gpu})
    assert gpunet.get_backend("auto") is on_the_gpu


def test_unseeded_backends_draw_from_fresh_entropy(monkeypatch, numpy_backend):
    from gpunet import seeding
    monkeypatch.setattr(seeding, "_seed", None)
    monkeypatch.setattr(seeding, "_epoch", None)
    draws = []
    for _ in range(2):
        numpy_backend.reseed()
        draws.append(numpy_backend.random_bits(4).tolist())
    assert draws[0] != draws[1]


def test_auto_explains_its_choice():
    line = explain_auto()
    assert "\n" not in line
    assert line.startswith("auto -> cupy" if cuda_status().usable else "auto -> numpy")
    assert gpunet.get_backend("auto").name == ("cupy" if cuda_status().usable else "numpy")


def test_cupy_without_device_says_why():
    if cuda_status().usable:
        pytest.skip("a CUDA device is usable here")
    with pytest.raises(BackendUnavailable, match="'cupy' backend is unavailable: .+"):
        gpunet.get_backend("cupy")


def test_asarray_dtypes(backend):
    assert backend.asarray([1, 2]).dtype == np.float32
    assert backend.asarray(np.arange(3)).dtype == np.float32
    assert backend.asarray(np.ones(2, np.float64)).dtype == np.float64
    assert backend.asarray(np.ones(2, np.float64), np.float32).dtype == np.float32
    x = backend.asarray(np.ones(3, np.float32))
    assert backend.asarray(x) is x
    np.testing.assert_array_equal(backend.to_numpy(backend.asarray([[1, 2]])), [[1, 2]])


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("op", ["sigmoid", "tanh", "relu"])
def test_activations_keep_dtype_and_shape(backend, op, dtype):
    for shape in [(0,), (5,), (3, 4)]:
        x = backend.asarray(np.random.default_rng(0).standard_normal(shape), dtype)
        y = getattr(backend, op)(x)
        gx = getattr(backend, op + "_grad")(y, backend.asarray(np.ones(shape), dtype))
        assert y.dtype == gx.dtype == dtype and y.shape == gx.shape == shape


@pytest.mark.parametrize("dtype", FLOATS)
def test_activations_stay_finite_and_exact_at_extremes(backend, dtype):
    x = backend.asarray([-1e4, -100.0, -20.0, 0.0, 20.0, 100.0, 1e4], dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        sig = host(backend, backend.sigmoid(x))
        tanh = host(backend, backend.tanh(x))
    assert np.all(np.isfinite(sig)) and np.all(np.isfinite(tanh))
    reference = 1 / (1 + np.exp(-np.array([-20.0, 0.0, 20.0])))
    np.testing.assert_allclose(sig[[2, 3, 4]], reference, rtol=1e-6)
    np.testing.assert_array_equal(sig[[0, 6]], [0, 1])
    np.testing.assert_array_equal(tanh[[0, 1, 5, 6]], [-1, -1, 1, 1])


def test_activation_values_and_gradients_from_outputs(backend):
    xs = np.array([-2.0, -0.5, 0.0, 0.5, 3.0])
    x = backend.asarray(xs, np.float64)
    gy = backend.asarray([1.0, 2.0, 3.0, 4.0, 5.0], np.float64)
    s = 1 / (1 + np.exp(-xs))
    cases = {"sigmoid": (s, s * (1 - s)), "tanh": (np.tanh(xs), 1 - np.tanh(xs) ** 2),
             "relu": (np.maximum(xs, 0), (xs > 0).astype(float))}
    for op, (value, slope) in cases.items():
        y = getattr(backend, op)(x)
        np.testing.assert_allclose(host(backend, y), value, rtol=1e-12)
        np.testing.assert_allclose(host(backend, getattr(backend, op + "_grad")(y, gy)),
                                   slope * host(backend, gy), rtol=1e-12)


def test_updates_are_in_place_and_keep_float32(backend):
    param = backend.asarray([1.0, 2.0])
    grad = backend.asarray([0.5, -1.0])
    velocity = backend.zeros_like(param)
    backend.sgd_update(param, grad, 0.1)
    np.testing.assert_allclose(host(backend, param), [0.95, 2.1], rtol=1e-6)
    backend.momentum_update(param, velocity, grad, 0.1, 0.9)
    np.testing.assert_allclose(host(backend, velocity), [0.05, -0.1], rtol=1e-6)
    np.testing.assert_allclose(host(backend, param), [0.945, 2.11], rtol=1e-6)
    assert param.dtype == velocity.dtype == np.float32


def test_matches_compares_first_largest_entries(backend):
    """argmax's rules on both sides: the first of tied entries, a NaN counting as largest."""
    p = backend.asarray([[1, 3, 3], [2, 0, 0], [np.nan, 5, 9], [0, 9, np.nan], [4, 4, 4]])
    t = backend.asarray([[0, 1, 1], [0, 0, 1], [1, 0, 0], [0, 0, 1], [1, 0, 0]], np.float64)
    np.testing.assert_array_equal(host(backend, backend.matches(p, t)),
                                  [True, False, True, True, True])
    out = backend.xp.zeros(7, dtype=bool)
    assert backend.matches(p, t, out=out[1:6]) is not None
    np.testing.assert_array_equal(host(backend, out), [False, True, False, True, True, True, False])
    assert bool(backend.matches(p[0], t[0])) and backend.matches(p[0], t[0]).shape == ()


@pytest.mark.parametrize("dtype", FLOATS)
def test_softmax_cross_entropy_per_row(backend, dtype):
    z = backend.asarray([[0.0, np.log(3.0)], [5.0, 5.0], [7.0, -1e3]], dtype)
    a = backend.asarray([[0.0, 1.0], [0.5, 0.5], [1.0, 0.0]], dtype)
    losses, grad = backend.softmax_cross_entropy(z, a, 0.5)
    assert losses.dtype == grad.dtype == dtype and losses.shape == (3,)
    np.testing.assert_allclose(host(backend, losses), [np.log(4 / 3), np.log(2), 0], atol=1e-6)
    np.testing.assert_allclose(host(backend, grad), [[0.125, -0.125], [0, 0], [0, 0]], atol=1e-6)
    single, _ = backend.softmax_cross_entropy(backend.asarray([2.0], dtype),
                                              backend.asarray([1.0], dtype), 1.0)
    assert float(single) == 0


@pytest.mark.parametrize("target", [np.int64, np.int32, np.bool_, np.float64])
def test_row_operations_take_targets_of_any_dtype(backend, numpy_backend, target):
    """Integer, bool or float64 targets against float32 logits: the loss and its
    gradient in the logits' dtype, and the matches, as for float32 targets."""
    rng = np.random.default_rng(0)
    zh = rng.uniform(-5, 5, (6, 4)).astype(np.float32)
    ah = np.eye(4)[rng.integers(0, 4, 6)]
    z, a = backend.asarray(zh), backend.xp.asarray(ah.astype(target))
    losses, grad = backend.softmax_cross_entropy(z, a, 0.5)
    expected = numpy_backend.softmax_cross_entropy(zh, ah.astype(np.float32), 0.5)
    assert losses.dtype == grad.dtype == np.float32
    np.testing.assert_allclose(host(backend, losses), expected[0], rtol=1e-5)
    np.testing.assert_allclose(host(backend, grad), expected[1], rtol=1e-5, atol=1e-7)
    for p, t in ((z, a), (a, z)):
        np.testing.assert_array_equal(host(backend, backend.matches(p, t)),
                                      zh.argmax(axis=1) == ah.argmax(axis=1))


@pytest.mark.parametrize("first, second", [(np.float32, np.float64), (np.float64, np.float32)])
def test_mixed_float_dtypes_as_numpy_promotes_them(backend, first, second):
    """Gradients in NumPy's promotion of y and gy; updates in the parameter's dtype."""
    rng = np.random.default_rng(1)
    yh, gh = rng.uniform(-1, 1, 5).astype(first), rng.uniform(-1, 1, 5).astype(second)
    y, g = backend.asarray(yh.copy()), backend.asarray(gh)  # y is updated in place
    y64 = yh.astype(np.float64)
    for op, slope in (("sigmoid_grad", y64 * (1 - y64)), ("tanh_grad", 1 - y64 * y64),
                      ("relu_grad", y64 > 0)):
        gx = getattr(backend, op)(y, g)
        assert gx.dtype == np.float64
        np.testing.assert_allclose(host(backend, gx), gh * slope, rtol=1e-6)
    velocity = backend.zeros_like(y)
    backend.sgd_update(y, g, 0.5)
    backend.momentum_update(y, velocity, g, 0.5, 0.5)
    assert y.dtype == velocity.dtype == first
    np.testing.assert_allclose(host(backend, velocity), 0.5 * gh, rtol=1e-6)
    np.testing.assert_allclose(host(backend, y), yh - 0.5 * gh - 0.25 * gh, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("logits", [np.int64, np.bool_])
def test_softmax_cross_entropy_needs_float_logits(backend, logits):
    z = backend.xp.zeros((2, 3), logits)
    with pytest.raises(TypeError, match=f"needs float32 or float64 logits, got {np.dtype(logits)}"):
        backend.softmax_cross_entropy(z, backend.xp.zeros((2, 3)), 1.0)


@pytest.mark.parametrize("shapes", [((3, 0), (3, 0)), ((2, 3), (2, 4)), ((2, 2, 2), (2, 2, 2))])
def test_row_operations_name_bad_shapes(backend, shapes):
    p, t = (backend.xp.zeros(shape, np.float32) for shape in shapes)
    for operation in (lambda: backend.matches(p, t), lambda: backend.softmax_cross_entropy(p, t, 1)):
        with pytest.raises(ValueError, match=rf"got shapes {re.escape(str(shapes[0]))}"):
            operation()


def test_random_bits_are_splitmix64_of_the_counters(backend):
    """Reference values: SplitMix64 seeded with 0 gives 0xE220A8397B1DCDAF,
    0x6E789E6AA1B965F4, ... (Vigna's splitmix64.c); key 0 from counter 1 is that stream."""
    backend.restart(0, 1)
    bits = host(backend, backend.random_bits(2))
    assert bits.dtype == np.uint64 and backend.drawn == 3
    assert bits.tolist() == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4]


def test_uniform_draws_are_the_same_in_both_dtypes_and_in_range(backend):
    draws = {}
    for dtype in FLOATS:
        backend.restart(99)
        draws[dtype] = host(backend, backend.uniform((400, 250), dtype))
        assert draws[dtype].dtype == dtype and draws[dtype].shape == (400, 250)
    np.testing.assert_array_equal(draws[np.float32], draws[np.float64])
    u = draws[np.float64]
    assert 0 <= u.min() and u.max() < 1 and np.all(u * 2 ** 24 == np.round(u * 2 ** 24))
    assert abs(u.mean() - 0.5) < 5 * np.sqrt(1 / 12 / u.size)
    assert abs(np.corrcoef(u.ravel()[:-1], u.ravel()[1:])[0, 1]) < 5 / np.sqrt(u.size)


def test_uniform_draws_are_the_top_24_bits_of_full_splitmix64(numpy_backend):
    """uniform skips SplitMix64's last round, which leaves the top 33 bits alone:
    its draws are those of random_bits, the whole generator, over 2^20 counters."""
    for key in (0, 2 ** 64 - 1, 0x9E3779B97F4A7C15):
        numpy_backend.restart(key, 5)
        bits = numpy_backend.random_bits(1 << 20)
        numpy_backend.restart(key, 5)
        draws = numpy_backend.uniform((1 << 20,), np.float64)
        np.testing.assert_array_equal(draws, (bits >> np.uint64(40)) * 2.0 ** -24)


def test_small_draws_from_the_block_equal_direct_ones(backend):
    """uniform serves small requests from a block computed ahead: the values
    depend only on key and counter, however they are requested."""
    backend.restart(7)
    pieces = [host(backend, backend.uniform((n,), np.float64)) for n in (3, 1, 65_530, 9, 70_000, 4)]
    backend.restart(7)
    whole = host(backend, backend.uniform((135_547,), np.float64))
    np.testing.assert_array_equal(np.concatenate(pieces), whole)
    np.testing.assert_array_equal(whole[:5], uniform(7, 0, 5))  # README's SplitMix64
    backend.restart(8, 3)
    other = host(backend, backend.uniform((2,), np.float64))
    np.testing.assert_array_equal(other, uniform(8, 3, 2))
    assert other.tolist() != whole[3:5].tolist()


def test_dropout_element_i_takes_draw_i_and_advances_the_stream(backend):
    gpunet.seed(3)
    u = host(backend, backend.uniform((6, 5), np.float32))
    gpunet.seed(3)
    x = backend.asarray(np.arange(30).reshape(6, 5))
    y, mask = backend.dropout(x, 0.4, 2.0)
    np.testing.assert_array_equal(host(backend, mask), np.where(u >= np.float32(0.4), 2, 0))
    np.testing.assert_array_equal(host(backend, y), np.arange(30).reshape(6, 5) * host(backend, mask))
    assert backend.drawn == 30
    following = np.where(uniform(device_key(3), 30, 30).astype(np.float32) >= np.float32(0.4), 2, 0)
    np.testing.assert_array_equal(host(backend, backend.dropout(x, 0.4, 2.0)[1]),
                                  following.reshape(6, 5))  # counters 30..59, not 0..29 again
    assert not np.array_equal(following.reshape(6, 5), host(backend, mask))


def test_seed_repeats_random_draws(backend):
    gpunet.seed(5)
    first = host(backend, backend.permutation(50)), host(backend, backend.dropout(
        backend.asarray(np.ones(100)), 0.5, 1)[1])
    gpunet.seed(5)
    second = host(backend, backend.permutation(50)), host(backend, backend.dropout(
        backend.asarray(np.ones(100)), 0.5, 1)[1])
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert sorted(first[0].tolist()) == list(range(50))


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True])
def test_seed_rejects_bad_values(bad):
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        gpunet.seed(bad)


def test_backend_of(numpy_backend):
    assert gpunet.backend_of(np.zeros(2)) is numpy_backend
    assert gpunet.backend_of([1.0]) is gpunet.get_backend()


def test_backend_of_a_list_is_the_default_and_of_any_ndarray_numpy(monkeypatch, numpy_backend):
    """With $GPUNET_BACKEND naming another backend: lists and scalars go to it, NumPy
    arrays (subclasses too) stay on NumPy."""
    import gpunet.backend as backends

    class Subclass(np.ndarray):
        pass

    elsewhere = object()
    monkeypatch.setattr(backends, "_instances", {**backends._instances, "cupy": elsewhere})
    monkeypatch.setenv("GPUNET_BACKEND", "cupy")
    assert gpunet.backend_of([1.0]) is elsewhere and gpunet.backend_of(2.0) is elsewhere
    assert gpunet.backend_of(np.zeros(2).view(Subclass)) is numpy_backend


def test_a_backend_owns_the_arrays_of_its_type(monkeypatch):
    """backend_of finds a backend by its array type, not by falling back on NumPy's."""
    import gpunet.backend as backends

    class Tagged(np.ndarray):
        pass

    class TaggedBackend(gpunet.backend.NumpyBackend):
        name, array_type = "tagged", Tagged

    monkeypatch.setattr(backends, "_instances", {})
    monkeypatch.setattr(backends, "_by_array_type", {})
    tagged = TaggedBackend()
    backends._register(tagged)
    assert gpunet.backend_of(np.zeros(2).view(Tagged)) is tagged


def test_explain_auto_names_the_backend_it_picks(monkeypatch):
    import gpunet.backend as backends
    for usable, picked in ((True, "cupy"), (False, "numpy")):
        monkeypatch.setattr(backends, "_cuda_status", backends.CudaStatus(usable, "the reason"))
        assert explain_auto() == f"auto -> {picked}: the reason"


def test_a_backend_is_made_once_and_owns_its_arrays(monkeypatch):
    """From an empty registry: one NumPy backend, found again by name and by its arrays,
    and restarted from gpunet's seed like every backend."""
    import gpunet.backend as backends
    from gpunet import seeding
    monkeypatch.setattr(backends, "_instances", {})
    monkeypatch.setattr(backends, "_by_array_type", {})
    made = gpunet.get_backend("numpy")
    assert type(made).__name__ == "NumpyBackend"
    assert gpunet.get_backend("numpy") is made and gpunet.backend_of(np.ones(2)) is made
    made.take_counters(5)
    gpunet.seed(11)
    assert (made.key, made.drawn) == (seeding.stream_seed(seeding.DEVICE_STREAM), 0)


def test_uniform_draws_from_a_restarted_stream(numpy_backend):
    from helpers import random_reference
    """Served from the block of draws computed ahead, they are the counters' own draws."""
    for start in (100, 70_000):  # a block that starts past counter 0, within and past one block
        numpy_backend.restart(5, start)
        first = numpy_backend.uniform((3,), np.float32)
        second = numpy_backend.uniform((4,), np.float32)
        np.testing.assert_array_equal(np.concatenate([first, second]),
                                      random_reference.uniform(5, start, 7))


def test_cuda_is_probed_once(monkeypatch):
    import gpunet.backend as backends
    calls = []
    monkeypatch.setattr(backends, "_cuda_status", None)
    monkeypatch.setattr(backends, "probe_cuda",
                        lambda: calls.append(1) or backends.CudaStatus(False, "probed"))
    assert backends.cuda_status().reason == backends.cuda_status().reason == "probed"
    assert calls == [1]


@pytest.mark.parametrize("scale", [0.5, 1.0, 2.0])
def test_softmax_cross_entropy_gradient_is_scaled(backend, scale):
    z = np.array([[0.0, np.log(3.0)]])
    losses, grad = backend.softmax_cross_entropy(backend.asarray(z, np.float64),
                                                 backend.asarray([[1.0, 0.0]], np.float64), scale)
    np.testing.assert_allclose(host(backend, grad), [[-0.75 * scale, 0.75 * scale]], rtol=1e-12)
    np.testing.assert_allclose(host(backend, losses), [np.log(4.0)], rtol=1e-12)
