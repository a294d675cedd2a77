"""Datasets: the registry, the downloader (against a server on 127.0.0.1), lookup and loading."""
from __future__ import annotations

import gzip
import io
import os
import re
import shutil
import socket
import threading
import urllib.request
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest

from gpunet.data import DatasetError, find_dataset, load_mnist, load_raw, read_idx, search_dirs
from gpunet.data.datasets import cache_dir
from gpunet.data.download import download_file
from gpunet.data.sources import FILE_NAMES, SOURCES, get_source
from helpers.datasets import Fake, make_fake, md5, put
from helpers.idx import deadline, gz, gzip_bomb, peak_memory
from helpers.paths import DEBIAN_FASHION as FASHION_SYSTEM, SHARED_MNIST

PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch) -> Path:
    """A fresh home and cache, no $GPUNET_DATA, and no proxy between us and 127.0.0.1."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("GPUNET_DATA", raising=False)
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    return tmp_path / "cache" / "gpunet" / "mnist"


@pytest.fixture
def fake(monkeypatch) -> Fake:
    return make_fake(monkeypatch)


@dataclass
class Server:
    url: str
    routes: dict[str, bytes] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)

    def mirror(self, name: str, files: dict[str, bytes]) -> str:
        """Serve ``files`` under /<name>/; the mirror's base URL."""
        self.routes.update({f"/{name}/{file}": data for file, data in files.items()})
        return f"{self.url}/{name}/"


@pytest.fixture
def server():
    """A real HTTP server on 127.0.0.1, serving Server.routes and logging each request."""
    routes, requests = {}, []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            body = routes.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01})
    thread.start()
    try:
        yield Server(f"http://127.0.0.1:{httpd.server_address[1]}", routes, requests)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def refused_url() -> str:
    """A URL on 127.0.0.1 where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def corrupted(files: dict[str, bytes]) -> dict[str, bytes]:
    return {name: data[:-1] + bytes([data[-1] ^ 1]) for name, data in files.items()}


# The registry


def test_registry_files_and_mirror_order():
    mnist, fashion = get_source("mnist"), get_source("fashion-mnist")
    assert mnist.mirrors[0] == "https://ossci-datasets.s3.amazonaws.com/mnist/"
    for source in (mnist, fashion):
        assert [f.name for f in source.files] == list(FILE_NAMES.values())
        assert all(len(f.md5) == 32 for f in source.files)
    assert fashion.system_dirs == (FASHION_SYSTEM,)
    assert fashion.install_hint == "apt-get install dataset-fashion-mnist"
    assert [f.kind for f in mnist.files] == ["images", "labels", "images", "labels"]


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(DatasetError, match="'kmnist'; known datasets: mnist, fashion-mnist"):
        load_raw("kmnist")


# The downloader


def test_download_good_file(fake, server, tmp_path):
    name = FILE_NAMES["test_labels"]
    mirror = server.mirror("good", fake.gz)
    path = download_file(name, [mirror], md5(fake.gz[name]), tmp_path, progress=False)
    assert path == tmp_path / name and path.read_bytes() == fake.gz[name]
    assert sorted(os.listdir(tmp_path)) == [name]


def test_corrupt_file_then_the_next_mirror(fake, server, tmp_path):
    name = FILE_NAMES["train_images"]
    mirrors = [server.mirror("bad", corrupted(fake.gz)), server.mirror("good", fake.gz)]
    path = download_file(name, mirrors, md5(fake.gz[name]), tmp_path, progress=False)
    assert path.read_bytes() == fake.gz[name]
    assert server.requests == [f"/bad/{name}", f"/good/{name}"]
    assert sorted(os.listdir(tmp_path)) == [name]


def test_all_mirrors_bad_gives_a_clear_error_and_leaves_nothing(fake, server, tmp_path):
    name = FILE_NAMES["train_labels"]
    mirrors = [server.mirror("bad", corrupted(fake.gz)), server.mirror("empty", {}), refused_url()]
    with pytest.raises(DatasetError) as info:
        download_file(name, mirrors, md5(fake.gz[name]), tmp_path, progress=False)
    bad, good = md5(corrupted(fake.gz)[name]), md5(fake.gz[name])
    host, refused = urlsplit(server.url).netloc, urlsplit(mirrors[2]).netloc
    assert str(info.value) == (f"cannot download {name}: every mirror failed: "
                               f"{host} (MD5 {bad}, expected {good}); {host} (HTTP 404 Not Found); "
                               f"{refused} (Connection refused)")
    assert os.listdir(tmp_path) == []


def test_mirrors_that_fail_alike_are_named_once_with_their_reason(tmp_path):
    """No network: one short reason for all the hosts, not a URL and an urlopen error each."""
    mirrors = [refused_url(), refused_url()]
    with pytest.raises(DatasetError) as info:
        download_file("x.gz", mirrors, md5(b""), tmp_path, progress=False)
    hosts = ", ".join(urlsplit(mirror).netloc for mirror in mirrors)
    assert str(info.value) == ("cannot download x.gz: every mirror failed: "
                               f"{hosts} (Connection refused)")


def test_interrupted_download_leaves_nothing(monkeypatch, tmp_path):
    class Interrupted(io.BytesIO):
        headers: dict[str, str] = {}

        def read(self, size=-1):
            if self.tell():
                raise KeyboardInterrupt
            return super().read(size)

    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: Interrupted(b"partial"))
    with pytest.raises(KeyboardInterrupt):
        download_file("x.gz", ["http://127.0.0.1/"], md5(b"partial"), tmp_path, progress=False)
    assert os.listdir(tmp_path) == []


def test_download_progress_bar(fake, server, tmp_path, capsys):
    name = FILE_NAMES["test_images"]
    download_file(name, [server.mirror("good", fake.gz)], md5(fake.gz[name]), tmp_path)
    err = capsys.readouterr().err
    assert name in err and "100%" in err


# Lookup


def test_search_order(fake, monkeypatch, tmp_path, isolated):
    fake.register(monkeypatch, system_dirs=(tmp_path / "system",))
    assert search_dirs("mnist") == [isolated, tmp_path / "system"]
    monkeypatch.setenv("GPUNET_DATA", str(tmp_path / "env"))
    assert search_dirs("mnist") == [tmp_path / "env", tmp_path / "env" / "mnist"]
    given = tmp_path / "given"
    given.mkdir()
    assert search_dirs("mnist", given) == [given, given / "mnist"]


def test_first_complete_location_wins(fake, monkeypatch, tmp_path, isolated):
    fake.register(monkeypatch, system_dirs=(tmp_path / "system",))
    given = put(tmp_path / "given", dict(list(fake.gz.items())[:3]))
    put(given / "mnist", fake.gz)
    assert load_raw("mnist", given, download=False).directory == given / "mnist"
    for place in (put(isolated, fake.gz), put(tmp_path / "system", fake.gz)):
        assert find_dataset("mnist") == place
        shutil.rmtree(place)
    assert find_dataset("mnist") is None


@pytest.mark.parametrize("via", ["data_dir", "GPUNET_DATA"])
def test_a_given_directory_is_the_only_place_looked_in(fake, server, monkeypatch, tmp_path,
                                                       isolated, via):
    fake.register(monkeypatch, mirrors=(server.mirror("good", fake.gz),),
                  system_dirs=(put(tmp_path / "system", fake.gz),))
    put(isolated, fake.gz)
    name = FILE_NAMES["test_labels"]
    given = put(tmp_path / "root" / "mnist", {n: d for n, d in fake.gz.items() if n != name})
    data_dir = given if via == "data_dir" else None
    monkeypatch.setenv("GPUNET_DATA", str(tmp_path / "root"))
    with pytest.raises(DatasetError) as info:
        load_raw("mnist", data_dir, download=False)
    assert str(info.value) == (f"mnist: {name} missing from {given} and not downloaded "
                               "(downloading is off); no other place is looked in when a data "
                               "directory is given")
    assert load_raw("mnist", data_dir, progress=False).directory == given
    assert server.requests == [f"/good/{name}"] and sorted(os.listdir(given)) == sorted(fake.gz)


def test_dataset_directly_in_gpunet_data(fake, monkeypatch, tmp_path):
    monkeypatch.setenv("GPUNET_DATA", str(put(tmp_path / "env" / "mnist", fake.gz)))
    assert find_dataset("mnist") == tmp_path / "env" / "mnist"


def test_cache_defaults_to_home(monkeypatch, tmp_path):
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir("mnist") == tmp_path / "home" / ".cache" / "gpunet" / "mnist"


def test_missing_data_dir(tmp_path):
    with pytest.raises(DatasetError, match=f"data directory {tmp_path / 'nope'} does not exist"):
        load_raw("mnist", tmp_path / "nope")


@pytest.mark.parametrize("via", ["data_dir", "GPUNET_DATA"])
def test_a_data_directory_that_is_a_file(fake, monkeypatch, tmp_path, isolated, via):
    put(isolated, fake.gz)
    (tmp_path / "file").write_text("a file, not a directory")
    monkeypatch.setenv("GPUNET_DATA", str(tmp_path / "file"))
    label = "data directory" if via == "data_dir" else "$GPUNET_DATA"
    with pytest.raises(DatasetError, match=f"^{re.escape(label)} {tmp_path / 'file'} is a file, "
                                           "not a directory$"):
        load_raw("mnist", tmp_path / "file" if via == "data_dir" else None)


# Loading and checking local files


def test_load_gz_files(fake, tmp_path):
    data = load_raw("mnist", put(tmp_path / "d", fake.gz), download=False)
    assert data.name == "mnist" and data.directory == tmp_path / "d"
    for role, array in fake.arrays.items():
        np.testing.assert_array_equal(getattr(data, role), array)
        assert getattr(data, role).dtype == np.uint8
    assert data.train_images.shape == (6, 28, 28) and data.test_labels.shape == (4,)


def test_uncompressed_and_recompressed_files_match_the_raw_checksum(fake, tmp_path):
    files = {name.removesuffix(".gz"): data for name, data in list(fake.raw.items())[:2]}
    files |= {name: gzip.compress(fake.raw[name], mtime=1) for name in list(fake.raw)[2:]}
    data = load_raw("mnist", put(tmp_path / "d", files), download=False)
    np.testing.assert_array_equal(data.train_labels, fake.arrays["train_labels"])


def kaggle(name: str) -> str:
    """The name Kaggle's MNIST copy gives the uncompressed file published as ``name``."""
    return name.removesuffix(".gz").replace("-idx", ".idx")


def test_kaggles_uncompressed_copies_are_read_by_their_dotted_names(fake, tmp_path):
    files = {kaggle(name): data for name, data in fake.raw.items()}
    assert sorted(files) == ["t10k-images.idx3-ubyte", "t10k-labels.idx1-ubyte",
                             "train-images.idx3-ubyte", "train-labels.idx1-ubyte"]
    directory = put(tmp_path / "d", files)
    assert find_dataset("mnist", directory) == directory
    data = load_raw("mnist", directory, download=False)
    for role, array in fake.arrays.items():
        np.testing.assert_array_equal(getattr(data, role), array)


def test_a_kaggle_copy_must_match_the_uncompressed_checksum(fake, tmp_path):
    name = FILE_NAMES["test_images"]
    files = {kaggle(name): data for name, data in fake.raw.items()}
    files |= corrupted({kaggle(name): fake.raw[name]})
    with pytest.raises(DatasetError) as info:
        load_raw("mnist", put(tmp_path / "d", files), download=False)
    assert str(info.value).startswith(f"{tmp_path / 'd' / kaggle(name)}: checksum mismatch")


def test_every_uncompressed_checksum_is_known():
    """So that uncompressed and recompressed copies (Kaggle's, Debian's) are accepted."""
    for source in SOURCES.values():
        assert all(len(file.raw_md5 or "") == 32 for file in source.files), source.name


@pytest.mark.parametrize("make, what", [(os.mkfifo, "a FIFO"), (os.mkdir, "a directory")])
def test_a_data_file_that_is_not_a_regular_file(fake, tmp_path, make, what):
    name = FILE_NAMES["train_labels"]
    directory = put(tmp_path / "d", fake.gz)
    (directory / name).unlink()
    make(directory / name)
    with deadline(5), pytest.raises(DatasetError) as info:
        load_raw("mnist", directory, download=False)
    assert str(info.value) == f"{directory / name}: {what}, not a regular file"


def test_gzip_bomb_in_the_data_dir_stops_at_the_format_limit(fake, tmp_path):
    directory = put(tmp_path / "d", fake.gz)
    path = gzip_bomb(directory / FILE_NAMES["test_images"])
    with pytest.raises(DatasetError) as info:
        load_raw("mnist", directory, download=False)
    assert str(info.value) == (f"{path}: too large: more than 47040016 bytes uncompressed, "
                               "the most 60000 MNIST images take")
    assert peak_memory(load_raw, "mnist", directory) < 4 << 20


@pytest.mark.parametrize("raw_known", [True, False])
def test_corrupt_local_file_is_never_used(fake, monkeypatch, tmp_path, raw_known):
    name = FILE_NAMES["test_images"]
    bad = gz(corrupted({name: fake.raw[name]})[name])
    if not raw_known:
        files = tuple(replace(f, raw_md5=None) for f in fake.source.files)
        fake.register(monkeypatch, files=files)
    put(tmp_path / "d", fake.gz | {name: bad})
    with pytest.raises(DatasetError) as info:
        load_raw("mnist", tmp_path / "d", download=False)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'd' / name}: checksum mismatch, MD5 {md5(bad)}")
    assert f"expected {md5(fake.gz[name])}" in message and "delete it" in message
    assert (f"uncompressed {md5(fake.raw[name])}" in message) == raw_known


def test_recompressed_file_needs_a_known_raw_checksum(fake, monkeypatch, tmp_path):
    fake.register(monkeypatch, files=tuple(replace(f, raw_md5=None) for f in fake.source.files))
    put(tmp_path / "d", {name: gzip.compress(data, mtime=1) for name, data in fake.raw.items()})
    with pytest.raises(DatasetError, match="checksum mismatch"):
        load_raw("mnist", tmp_path / "d", download=False)


def test_image_and_label_counts_must_agree(monkeypatch, tmp_path):
    fake = make_fake(monkeypatch, train=6, train_labels=5)
    with pytest.raises(DatasetError, match="6 train images but 5 train labels"):
        load_raw("mnist", put(tmp_path / "d", fake.gz), download=False)


# Downloading a dataset


def test_download_into_the_cache(fake, server, monkeypatch, isolated):
    fake.register(monkeypatch, mirrors=(server.mirror("bad", corrupted(fake.gz)),
                                        server.mirror("good", fake.gz)))
    data = load_raw("mnist", progress=False)
    assert data.directory == isolated and sorted(os.listdir(isolated)) == sorted(fake.gz)
    np.testing.assert_array_equal(data.train_images, fake.arrays["train_images"])
    assert load_raw("mnist", download=False).directory == isolated


def test_download_into_gpunet_data(fake, server, monkeypatch, tmp_path):
    monkeypatch.setenv("GPUNET_DATA", str(tmp_path / "env"))
    fake.register(monkeypatch, mirrors=(server.mirror("good", fake.gz),))
    assert load_raw("mnist", progress=False).directory == tmp_path / "env" / "mnist"


def test_download_only_the_missing_files_into_data_dir(fake, server, monkeypatch, tmp_path):
    present = dict(list(fake.gz.items())[:2])
    fake.register(monkeypatch, mirrors=(server.mirror("good", fake.gz),))
    data = load_raw("mnist", put(tmp_path / "d", present), progress=False)
    assert data.directory == tmp_path / "d"
    assert server.requests == [f"/good/{name}" for name in list(fake.gz)[2:]]


def test_no_fallback_to_the_cache_when_the_given_directory_fails(fake, server, monkeypatch,
                                                                 tmp_path, isolated):
    (tmp_path / "file").write_text("a file, not a directory")
    monkeypatch.setenv("GPUNET_DATA", str(tmp_path / "file" / "data"))
    fake.register(monkeypatch, mirrors=(server.mirror("good", fake.gz),))
    with pytest.raises(DatasetError) as info:
        load_raw("mnist", progress=False)
    target = tmp_path / "file" / "data" / "mnist"
    assert str(info.value).startswith(f"mnist: {', '.join(fake.gz)} missing from {target} and "
                                      f"not downloaded (cannot create {target} (Not a directory))")
    assert not isolated.exists() and server.requests == []


def test_failed_download_into_a_given_directory_names_it(fake, server, monkeypatch, tmp_path):
    mirror = server.mirror("bad", corrupted(fake.gz))
    fake.register(monkeypatch, mirrors=(mirror,))
    given = put(tmp_path / "d", {})
    with pytest.raises(DatasetError) as info:
        load_raw("mnist", given, progress=False)
    message = str(info.value)
    assert message.startswith(f"mnist: {', '.join(fake.gz)} missing from {given} and not "
                              f"downloaded (cannot download {FILE_NAMES['train_images']}: ")
    assert message.endswith("no other place is looked in when a data directory is given")
    assert os.listdir(given) == []


def test_failed_download_says_where_it_looked_and_leaves_no_folder(fake, server, monkeypatch,
                                                                   tmp_path, isolated):
    """The cache folders the failed download created ($XDG_CACHE_HOME/gpunet/mnist and
    the two above it) are removed again; the mirror's reason is named in a few words."""
    mirror = server.mirror("bad", corrupted(fake.gz))
    fake.register(monkeypatch, mirrors=(mirror,))
    with pytest.raises(DatasetError) as info:
        load_raw("mnist", progress=False)
    message = str(info.value)
    assert message.startswith(f"mnist not found: it needs {', '.join(fake.gz)} (or the same "
                              f"without .gz); looked in {isolated} (no such directory); "
                              f"not downloaded (cannot download {FILE_NAMES['train_images']}: "
                              f"every mirror failed: {urlsplit(mirror).netloc} (MD5 ")
    assert message.endswith(f"put them in {isolated}, pass data_dir= or set GPUNET_DATA")
    assert not (tmp_path / "cache").exists()


def test_a_failed_download_keeps_the_folders_it_did_not_create_or_filled(fake, server,
                                                                       monkeypatch, isolated):
    """The cache root existed: kept. A file downloaded before the failure: kept, with
    its folder, so the next run fetches only the rest."""
    isolated.parent.mkdir(parents=True)
    first, second = FILE_NAMES["train_images"], FILE_NAMES["train_labels"]
    fake.register(monkeypatch, mirrors=(server.mirror("some", {first: fake.gz[first]}),))
    with pytest.raises(DatasetError, match=f"cannot download {second}"):
        load_raw("mnist", progress=False)
    assert os.listdir(isolated) == [first]
    (isolated / first).unlink()
    isolated.rmdir()
    fake.register(monkeypatch, mirrors=(server.mirror("none", {}),))
    with pytest.raises(DatasetError, match=f"cannot download {first}"):
        load_raw("mnist", progress=False)
    assert os.listdir(isolated.parent) == []


def test_an_interrupted_download_leaves_no_folder(fake, monkeypatch, tmp_path, isolated):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("gpunet.data.datasets.download_file", interrupted)
    with pytest.raises(KeyboardInterrupt):
        load_raw("mnist", progress=False)
    assert not (tmp_path / "cache").exists()


def test_offline_error_names_the_missing_files_of_each_place_and_the_fix(monkeypatch, tmp_path):
    system = put(tmp_path / "system", {FILE_NAMES["test_labels"]: b"labels"})
    monkeypatch.setitem(SOURCES, "fashion-mnist",
                        replace(SOURCES["fashion-mnist"], system_dirs=(system,)))
    with pytest.raises(DatasetError) as info:
        load_raw("fashion-mnist", download=False)
    cache = tmp_path / "cache" / "gpunet" / "fashion-mnist"
    assert str(info.value) == (
        f"fashion-mnist not found: it needs {', '.join(FILE_NAMES.values())} (or the same "
        f"without .gz); looked in {cache} (no such directory), {system} (missing "
        f"{', '.join(list(FILE_NAMES.values())[:3])}); not downloaded (downloading is off); "
        f"put them in {cache}, pass data_dir= or set GPUNET_DATA, or apt-get install "
        "dataset-fashion-mnist")
    put(cache, {})
    with pytest.raises(DatasetError, match=f"looked in {cache} \\(none of them\\)"):
        load_raw("fashion-mnist", download=False)
    assert sorted(os.listdir(tmp_path)) == ["cache", "system"]


# Loading only the splits a command needs


@pytest.mark.parametrize("split", ["train", "test"])
def test_one_split_needs_only_its_two_files(fake, tmp_path, split):
    other = "test" if split == "train" else "train"
    directory = put(tmp_path / "d", {name: data for name, data in fake.gz.items()
                                     if name in (FILE_NAMES[f"{split}_images"],
                                                 FILE_NAMES[f"{split}_labels"])})
    data = load_raw("mnist", directory, splits=(split,), download=False)
    np.testing.assert_array_equal(getattr(data, f"{split}_images"), fake.arrays[f"{split}_images"])
    np.testing.assert_array_equal(getattr(data, f"{split}_labels"), fake.arrays[f"{split}_labels"])
    assert getattr(data, f"{other}_images") is None and getattr(data, f"{other}_labels") is None
    assert find_dataset("mnist", directory, (split,)) == directory
    assert find_dataset("mnist", directory) is None
    with pytest.raises(DatasetError, match=f"{FILE_NAMES[f'{other}_images']}, "
                                           f"{FILE_NAMES[f'{other}_labels']} missing from"):
        load_raw("mnist", directory, download=False)


def test_only_the_missing_files_of_the_split_are_downloaded(fake, server, monkeypatch, isolated):
    fake.register(monkeypatch, mirrors=(server.mirror("good", fake.gz),))
    data = load_raw("mnist", splits=("test",), progress=False)
    assert data.directory == isolated and data.train_images is None
    assert server.requests == [f"/good/{FILE_NAMES['test_images']}",
                               f"/good/{FILE_NAMES['test_labels']}"]


def test_the_offline_error_names_only_the_files_of_the_split(fake, isolated):
    with pytest.raises(DatasetError) as info:
        load_raw("mnist", splits=("test",), download=False)
    assert str(info.value).startswith(
        f"mnist not found: it needs {FILE_NAMES['test_images']}, {FILE_NAMES['test_labels']} "
        f"(or the same without .gz); looked in {isolated} (no such directory)")


def test_the_not_found_error_names_the_callers_way_to_give_a_directory(fake, isolated):
    """data_dir= from Python (load_raw, load_mnist); the command line passes its --data-dir."""
    calls = [(lambda: load_raw("mnist", download=False), "data_dir="),
             (lambda: load_mnist("mnist", download=False), "data_dir="),
             (lambda: load_raw("mnist", download=False, dir_option="--data-dir"), "--data-dir")]
    for call, option in calls:
        with pytest.raises(DatasetError) as info:
            call()
        assert str(info.value).endswith(f", pass {option} or set GPUNET_DATA")
        assert ("--data-dir" in str(info.value)) == (option == "--data-dir")


@pytest.mark.parametrize("splits", [(), ("validation",)])
def test_unknown_splits_are_refused(splits):
    with pytest.raises(ValueError, match="splits must be some of train, test"):
        load_raw("mnist", splits=splits)


# Real data


def test_real_mnist_test_digits():
    if not SHARED_MNIST.is_dir():
        pytest.skip(f"no real MNIST copy at {SHARED_MNIST}")
    images = read_idx(SHARED_MNIST / "t10k-images-idx3-ubyte.gz", kind="images")
    labels = read_idx(SHARED_MNIST / "t10k-labels-idx1-ubyte.gz", kind="labels")
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,)
    published = {"t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
                 "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"}
    for name, checksum in published.items():
        assert md5((SHARED_MNIST / name).read_bytes()) == checksum
    for file in get_source("mnist").files:
        path = SHARED_MNIST / file.name
        if path.exists():
            data = path.read_bytes()
            assert md5(data) == file.md5 and md5(gzip.decompress(data)) == file.raw_md5


def test_real_fashion_mnist_from_debian():
    if not FASHION_SYSTEM.is_dir():
        pytest.skip(f"{FASHION_SYSTEM} is absent (apt-get install dataset-fashion-mnist)")
    data = load_raw("fashion-mnist", download=False)
    assert data.directory == FASHION_SYSTEM
    assert data.train_images.shape == (60000, 28, 28) and data.train_labels.shape == (60000,)
    assert data.test_images.shape == (10000, 28, 28) and data.test_labels.shape == (10000,)
    assert np.bincount(data.test_labels).tolist() == [1000] * 10


def test_an_oversized_file_is_refused_before_it_is_all_read(fake, tmp_path):
    """The checksum's first pass reads the file as stored: at most what the most
    images take, compressed or not; a far larger file stops there."""
    directory = put(tmp_path / "d", fake.gz)
    path = directory / FILE_NAMES["test_images"]
    with open(path, "r+b") as file:
        file.truncate(200 << 20)  # sparse: 200 MiB that take no disk
    limit = 47040016 + 47040016 // 1000 + 4096
    with deadline(20), pytest.raises(DatasetError) as info:
        load_raw("mnist", directory, download=False)
    assert str(info.value) == (f"{path}: too large: more than {limit} bytes as stored, "
                               "compressed or not, the most 60000 MNIST images take")


def test_a_data_file_that_is_a_symlink_loop_is_named_not_skipped(tmp_path, fashion_dir):
    (tmp_path / "t10k-images-idx3-ubyte.gz").symlink_to(fashion_dir / "t10k-images-idx3-ubyte.gz")
    (tmp_path / "t10k-labels-idx1-ubyte.gz").symlink_to("t10k-labels-idx1-ubyte.gz")
    with pytest.raises(DatasetError) as error:
        load_raw("fashion-mnist", tmp_path, splits=("test",), download=False, progress=False)
    assert str(error.value) == (f"{tmp_path / 't10k-labels-idx1-ubyte.gz'}: cannot read it "
                                "(a symlink loop)")
