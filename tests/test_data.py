"""The data layer: the offline generator follows the M2NIST recipe, loaders validate and round-trip."""

import contextlib
import hashlib
import http.server
import io
import socket
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import real_sample

from m2nist_seg import data
from m2nist_seg.core.errors import M2NISTError
from m2nist_seg.data import splits as splits_module


def save_kaggle(directory: Path, images: np.ndarray, masks: np.ndarray) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    np.save(directory / data.IMAGES_FILE, images)
    np.save(directory / data.MASKS_FILE, masks)
    return directory


# --- the generator follows the published recipe -------------------------------------------------------------


def test_every_image_has_two_or_three_digits(generated_5000):
    layout, _, _ = generated_5000
    digits = (layout.digit >= 0).sum(axis=1)
    assert set(np.unique(digits)) == {2, 3}
    assert (layout.digit[:, :2] >= 0).all()


def test_offsets_stay_in_range_and_third_digit_only_where_it_fits(generated_5000):
    layout, _, _ = generated_5000
    slot = np.arange(data.MAX_DIGITS)
    assert ((layout.col - slot * 28 >= 0) & (layout.col - slot * 28 < 10)).all()
    assert ((layout.row >= 0) & (layout.row < 37)).all()
    third = layout.digit[:, 2] >= 0
    assert (layout.col[third, 2] + 28 <= data.WIDTH).all()
    assert third.any(), "some images should keep a third digit"


def test_digit_pixel_share_matches_real_m2nist(generated_5000):
    _, images, _ = generated_5000
    assert 0.05 <= (images > 0).mean() <= 0.06


def test_masks_equal_ink(generated_5000):
    _, images, labels = generated_5000
    np.testing.assert_array_equal(labels != data.BACKGROUND, images > 0)


def test_canvas_is_pixelwise_maximum_of_placed_digits(generated_5000):
    layout, images, labels = generated_5000
    digits, classes = data.mnist_digits()
    for n in range(0, 5000, 25):
        expected = np.zeros(data.IMAGE_SHAPE, dtype=np.uint8)
        for slot in np.flatnonzero(layout.digit[n] >= 0):
            r, c = layout.row[n, slot], layout.col[n, slot]
            box = expected[r : r + 28, c : c + 28]
            np.maximum(box, digits[layout.digit[n, slot]], out=box)
        np.testing.assert_array_equal(images[n], expected)
        placed = {int(classes[d]) for d in layout.digit[n] if d >= 0}
        assert set(np.unique(labels[n])) - {data.BACKGROUND} <= placed


def test_pools_are_disjoint_and_balanced():
    pools = {name: data.digit_pool(name) for name in ("train", "val", "test")}
    assert not set(pools["train"]) & set(pools["val"])
    assert not set(pools["train"]) & set(pools["test"])
    assert not set(pools["val"]) & set(pools["test"])
    _, classes = data.mnist_digits()
    for name, per_class in (("train", 350), ("val", 50), ("test", 100)):
        np.testing.assert_array_equal(np.bincount(classes[pools[name]], minlength=10), [per_class] * 10)


def test_an_unknown_pool_is_refused():
    with pytest.raises(M2NISTError, match="pool: found 'holdout'"):
        data.digit_pool("holdout")


def test_each_generated_split_draws_only_its_own_pool(tmp_path):
    splits = data.load(n=600, seed=5, cache_dir=tmp_path)
    digits, _ = data.mnist_digits()
    for name in ("train", "val", "test"):
        layout = getattr(splits.layouts, name)
        used = layout.digit[layout.digit >= 0]
        assert np.isin(used, data.digit_pool(name)).all(), name
        others = [pool for pool in ("train", "val", "test") if pool != name]
        assert not np.isin(used, np.concatenate([data.digit_pool(p) for p in others])).any(), name
    val_bytes = {digits[i].tobytes() for i in np.unique(splits.layouts.val.digit[splits.layouts.val.digit >= 0])}
    train_layout = splits.layouts.train
    assert not any(digits[i].tobytes() in val_bytes for i in np.unique(train_layout.digit[train_layout.digit >= 0]))


def test_no_test_pool_digit_in_a_training_image(generated_5000):
    layout, _, _ = generated_5000
    digits, _ = data.mnist_digits()
    used = np.unique(layout.digit[layout.digit >= 0])
    assert np.isin(used, data.digit_pool("train")).all()
    train_bytes = {digits[i].tobytes() for i in used}
    assert not any(digits[i].tobytes() in train_bytes for i in data.digit_pool("test"))


def test_test_split_is_drawn_from_the_test_pool():
    layout = data.sample_layout(300, seed=3, pool="test")
    assert np.isin(layout.digit[layout.digit >= 0], data.digit_pool("test")).all()


def test_generate_returns_kaggle_layout():
    images, masks = data.generate(50, seed=1)
    assert images.shape == (50, 64, 84) and images.dtype == np.uint8
    assert masks.shape == (50, 64, 84, 11) and masks.dtype == np.uint8
    np.testing.assert_array_equal(masks.sum(axis=-1), 1)
    np.testing.assert_array_equal(masks[..., 10] == 0, images > 0)


def test_generation_is_seeded():
    a, b, c = data.generate(20, seed=7), data.generate(20, seed=7), data.generate(20, seed=8)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])


def test_distortion_keeps_shape_dtype_and_mnist_pixel_values():
    digits = data.mnist_digits()[0][::50]
    warped = data.distort_digits(digits, np.random.default_rng(0))
    assert warped.shape == digits.shape and warped.dtype == np.uint8
    for before, after in zip(digits, warped):
        assert set(np.unique(after)) <= set(np.unique(before)) | {0}, "nearest-neighbour sampling adds no values"
        assert 0.7 <= (after > 0).sum() / (before > 0).sum() <= 1.3, "at most ±10 % scaling per side"
    assert (warped != digits).any(axis=(1, 2)).mean() > 0.9


def test_distortion_is_seeded_and_small():
    digits = data.mnist_digits()[0][:100]
    a = data.distort_digits(digits, np.random.default_rng(1))
    np.testing.assert_array_equal(a, data.distort_digits(digits, np.random.default_rng(1)))
    assert not np.array_equal(a, data.distort_digits(digits, np.random.default_rng(2)))
    still_ink = (a > 0) & (digits > 0)
    assert still_ink.sum() / (digits > 0).sum() > 0.5, "a distorted digit mostly overlaps the original"


def test_elastic_displacement_is_smooth_small_and_seeded():
    field = data.elastic_displacement(200, np.random.default_rng(0))
    assert field.shape == (2, 200, 28, 28)
    np.testing.assert_array_equal(field, data.elastic_displacement(200, np.random.default_rng(0)))
    length = np.hypot(*field)
    assert 0.5 < np.median(length) < 3, "pixels move by a pixel or two"
    assert length.max() < 10
    step = np.abs(np.diff(field, axis=-1)).mean()
    assert step < 0.25 * np.abs(field).mean(), "neighbouring pixels move together"


def test_elastic_distortion_warps_the_affine_result():
    digits = data.mnist_digits()[0][::50]
    affine = data.distort_digits(digits, np.random.default_rng(3))
    warped = data.distort_digits(digits, np.random.default_rng(3), elastic=True)
    assert warped.shape == digits.shape and warped.dtype == np.uint8
    for before, after in zip(digits, warped):
        assert set(np.unique(after)) <= set(np.unique(before)) | {0}, "nearest-neighbour sampling adds no values"
    assert (warped != affine).any(axis=(1, 2)).mean() > 0.9
    overlap = ((warped > 0) & (affine > 0)).sum() / (affine > 0).sum()
    assert 0.4 < overlap < 0.95, "strokes move by about a stroke's width"


def test_elastic_without_distortion_is_refused():
    with pytest.raises(ValueError, match="elastic: found True with distort=False"):
        data.generate_labels(2, elastic=True)


@pytest.mark.parametrize("elastic", [False, True])
def test_distorted_generation_keeps_the_recipe(elastic):
    layout = data.sample_layout(300, seed=4)
    plain_images, _ = data.render(layout)
    images, labels = data.generate_labels(300, seed=4, distort=True, elastic=elastic)
    np.testing.assert_array_equal(labels != data.BACKGROUND, images > 0)
    digits, classes = data.mnist_digits()
    for n in range(0, 300, 10):
        placed = {int(classes[d]) for d in layout.digit[n] if d >= 0}
        assert set(np.unique(labels[n])) - {data.BACKGROUND} <= placed
    assert not np.array_equal(images, plain_images)
    np.testing.assert_array_equal(data.generate_labels(300, seed=4)[0], plain_images)


def test_labels_masks_round_trip():
    labels = np.random.default_rng(0).integers(0, 11, size=(3, 64, 84)).astype(np.uint8)
    masks = data.labels_to_masks(labels)
    assert masks.shape == (3, 64, 84, 11) and masks.dtype == np.uint8
    np.testing.assert_array_equal(data.masks_to_labels(masks), labels)


def test_labels_to_masks_rejects_out_of_range_labels():
    with pytest.raises(M2NISTError, match="labels"):
        data.labels_to_masks(np.array([[11]]))


# --- loading real and generated files ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["5_int64", "10_float32"])
def test_load_arrays_round_trips_real_samples(tmp_path, name):
    images, masks = real_sample(name)
    loaded_images, loaded_masks = data.load_arrays(save_kaggle(tmp_path, images, masks))
    assert loaded_images.dtype == np.uint8 and loaded_masks.dtype == np.uint8
    np.testing.assert_array_equal(loaded_images, images)
    np.testing.assert_array_equal(loaded_masks, masks)
    np.testing.assert_array_equal(data.masks_to_labels(loaded_masks) != data.BACKGROUND, loaded_images > 0)


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.float32])
def test_load_arrays_round_trips_generated_data(tmp_path, dtype):
    images, masks = data.generate(30, seed=2)
    loaded_images, loaded_masks = data.load_arrays(save_kaggle(tmp_path, images.astype(dtype), masks.astype(dtype)))
    np.testing.assert_array_equal(loaded_images, images)
    np.testing.assert_array_equal(loaded_masks, masks)


def test_kaggle_source_splits_real_files(tmp_path):
    images, masks = real_sample("10_float32")
    splits = data.load("kaggle", directory=save_kaggle(tmp_path, images, masks), val_fraction=0.2, test_fraction=0.2)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (6, 2, 2)
    assert splits.source == "kaggle"
    together = np.concatenate([splits.train.images, splits.val.images, splits.test.images])
    assert sorted(map(bytes, together)) == sorted(map(bytes, images.astype(np.uint8)))


# --- bad input gets a clear error of the package's own type -----------------------------------------------------


@pytest.fixture
def good_arrays():
    return data.generate(4, seed=0)


def corrupt(images, masks, case):
    images, masks = images.astype(np.float32), masks.astype(np.int64)
    if case == "count":
        return images[:3], masks
    if case == "rank":
        return images[0], masks
    if case == "size":
        return images[:, :, :80], masks
    if case == "mask_size":
        return images, masks[..., :10]
    if case == "too_bright":
        images[0, 0, 0] = 256
    elif case == "negative":
        images[0, 0, 0] = -1
    elif case == "nan":
        images[0, 0, 0] = np.nan
    elif case == "mask_value":
        masks[0, 0, 0, 10] = 2
    elif case == "no_channel":
        masks[1, 5, 7, :] = 0
    return images, masks


BAD_ARRAYS = {
    "count": "4 masks",
    "rank": r"images have shape \(64, 84\)",
    "size": r"images have shape \(4, 64, 80\)",
    "mask_size": r"masks have shape \(4, 64, 84, 10\)",
    "too_bright": r"images: found values in \[0.0, 256.0\], expected pixel values 0–255",
    "negative": r"values in \[-1.0, 255.0\]",
    "nan": "NaN",
    "mask_value": "masks contain the value 2",
    "no_channel": r"image 1 has 0 channels set at pixel \(5, 7\)",
}


@pytest.mark.parametrize("case", sorted(BAD_ARRAYS))
def test_bad_arrays_are_rejected_with_file_and_expectation(tmp_path, good_arrays, case):
    directory = save_kaggle(tmp_path / "bad", *corrupt(*good_arrays, case))
    with pytest.raises(M2NISTError, match=BAD_ARRAYS[case]) as err:
        data.load_arrays(directory)
    assert str(directory) in str(err.value)
    assert "expected" in str(err.value)


def test_missing_directory(tmp_path):
    with pytest.raises(M2NISTError, match="directory not found"):
        data.load_arrays(tmp_path / "nowhere")


def test_missing_file(tmp_path, good_arrays):
    directory = save_kaggle(tmp_path, *good_arrays)
    (directory / data.MASKS_FILE).unlink()
    with pytest.raises(M2NISTError, match="segmented.npy: file not found"):
        data.load_arrays(directory)


def test_truncated_npy(tmp_path, good_arrays):
    directory = save_kaggle(tmp_path, *good_arrays)
    path = directory / data.IMAGES_FILE
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(M2NISTError, match="combined.npy: not a readable .npy file"):
        data.load_arrays(directory)


def test_non_npy_file(tmp_path, good_arrays):
    directory = save_kaggle(tmp_path, *good_arrays)
    (directory / data.MASKS_FILE).write_text("image,mask\n1,2\n")
    with pytest.raises(M2NISTError, match="segmented.npy: not a readable .npy file"):
        data.load_arrays(directory)


def test_pickled_object_array_is_refused(tmp_path, good_arrays):
    directory = save_kaggle(tmp_path, *good_arrays)
    np.save(directory / data.IMAGES_FILE, np.array([{"not": "pixels"}], dtype=object), allow_pickle=True)
    with pytest.raises(M2NISTError, match="combined.npy"):
        data.load_arrays(directory)


def test_unknown_source():
    with pytest.raises(M2NISTError, match="source: found 'mnist', expected one of 'generated', 'kaggle', 'download'"):
        data.load("mnist")


def test_kaggle_source_needs_a_directory():
    with pytest.raises(M2NISTError, match="directory"):
        data.load("kaggle")


def test_errors_are_value_errors():
    assert issubclass(M2NISTError, ValueError)


# --- download, against a zip served on loopback ------------------------------------------------------------------


@pytest.fixture
def zip_server():
    """Serve one in-memory payload on 127.0.0.1; yields (url, state). ``state["truncate"]`` sends only the first
    half of the payload under a Content-Length of the whole, then closes the connection."""
    state = {"payload": b"", "requests": 0, "truncate": False}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            state["requests"] += 1
            payload = state["payload"]
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload[: len(payload) // 2] if state["truncate"] else payload)
            if state["truncate"]:
                self.close_connection = True

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/m2nist.zip", state
    server.shutdown()
    server.server_close()


def make_zip(images, masks) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, array in ((data.IMAGES_FILE, images), (data.MASKS_FILE, masks)):
            npy = io.BytesIO()
            np.save(npy, array)
            zf.writestr(name, npy.getvalue())
    return buffer.getvalue()


def assert_cache_empty(cache_dir: Path) -> None:
    assert not [p for p in cache_dir.rglob("*") if p.is_file()], "nothing may be left in the cache"


def test_download_fetches_extracts_and_caches(tmp_path, zip_server):
    url, state = zip_server
    images, masks = data.generate(12, seed=4)
    state["payload"] = make_zip(images.astype(np.int64), masks.astype(np.int64))
    for _ in range(2):
        got_images, got_masks = data.download(
            cache_dir=tmp_path, url=url, sha256=hashlib.sha256(state["payload"]).hexdigest()
        )
        np.testing.assert_array_equal(got_images, images)
        np.testing.assert_array_equal(got_masks, masks)
    assert state["requests"] == 1, "the second call must come from the cache"
    assert not list(tmp_path.rglob(".*")), "no temporary file may be left behind"


def test_download_source_splits(tmp_path, zip_server):
    url, state = zip_server
    state["payload"] = make_zip(*data.generate(20, seed=5))
    splits = data.load("download", cache_dir=tmp_path, url=url)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (14, 2, 4)


def test_download_of_a_zip_without_the_files(tmp_path, zip_server):
    url, state = zip_server
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("readme.txt", "nothing here")
    state["payload"] = buffer.getvalue()
    with pytest.raises(M2NISTError, match=r"zip lacks \['combined.npy', 'segmented.npy'\]"):
        data.download(cache_dir=tmp_path, url=url)
    assert_cache_empty(tmp_path)


def test_download_of_a_non_zip(tmp_path, zip_server):
    url, state = zip_server
    state["payload"] = b"<html>not found</html>"
    with pytest.raises(M2NISTError, match="not a valid zip file"):
        data.download(cache_dir=tmp_path, url=url)
    assert_cache_empty(tmp_path)


def test_truncated_download_is_an_error_and_leaves_nothing(tmp_path, zip_server):
    url, state = zip_server
    state["payload"], state["truncate"] = make_zip(*data.generate(12, seed=4)), True
    with pytest.raises(M2NISTError, match="download of http://127.0.0.1"):
        data.download(cache_dir=tmp_path, url=url)
    assert_cache_empty(tmp_path)


def test_download_with_the_wrong_digest_is_an_error_and_leaves_nothing(tmp_path, zip_server):
    url, state = zip_server
    expected = hashlib.sha256(make_zip(*data.generate(12, seed=4))).hexdigest()
    state["payload"] = make_zip(*data.generate(12, seed=5))
    with pytest.raises(M2NISTError, match=f"expected {expected}"):
        data.download(cache_dir=tmp_path, url=url, sha256=expected)
    assert_cache_empty(tmp_path)


def test_a_cached_zip_with_the_wrong_digest_is_fetched_again(tmp_path, zip_server):
    url, state = zip_server
    state["payload"] = make_zip(*data.generate(12, seed=4))
    data.download(cache_dir=tmp_path, url=url)
    state["payload"] = make_zip(*data.generate(12, seed=5))
    images, _ = data.download(cache_dir=tmp_path, url=url, sha256=hashlib.sha256(state["payload"]).hexdigest())
    np.testing.assert_array_equal(images, data.generate(12, seed=5)[0])
    assert state["requests"] == 2


def test_download_offline_fails_with_advice(tmp_path):
    with closed_port() as port, pytest.raises(M2NISTError) as err:
        data.download(cache_dir=tmp_path, url=f"http://127.0.0.1:{port}/m2nist.zip", timeout=2)
    message = str(err.value)
    assert "source='kaggle'" in message and "source='generated'" in message
    assert_cache_empty(tmp_path)


def test_a_server_that_never_answers_is_cut_off_by_the_timeout(tmp_path):
    """The server accepts the connection (the kernel completes it) and never sends a byte. ``download`` must
    give up by its own socket timeout; the thread's join is only a guard so that a hang fails the test."""
    outcome = {}

    def fetch(port):
        try:
            data.download(cache_dir=tmp_path, url=f"http://127.0.0.1:{port}/m2nist.zip", timeout=1)
        except M2NISTError as err:
            outcome["error"] = str(err)

    with silent_server() as port:
        worker = threading.Thread(target=fetch, args=(port,), daemon=True)
        worker.start()
        worker.join(60)
        assert not worker.is_alive(), "download hung past its timeout"
    assert "timed out" in outcome["error"]
    assert_cache_empty(tmp_path)


def test_download_timeout_must_be_positive(tmp_path):
    with pytest.raises(M2NISTError, match="timeout: found -1"):
        data.download(cache_dir=tmp_path, timeout=-1)


@contextlib.contextmanager
def closed_port():
    """A loopback port that nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@contextlib.contextmanager
def silent_server():
    """A loopback port that accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


# --- load(): seeded splits and an atomic cache -------------------------------------------------------------------


def test_generated_splits_sizes_and_seed(tmp_path):
    a = data.load(n=200, seed=3, cache_dir=tmp_path)
    assert (len(a.train), len(a.val), len(a.test)) == (140, 20, 40)
    assert a.source == "generated"
    b = data.load(n=200, seed=3, cache_dir=tmp_path)
    np.testing.assert_array_equal(a.train.images, b.train.images)
    c = data.load(n=200, seed=4, cache_dir=tmp_path / "other")
    assert not np.array_equal(a.train.images, c.train.images)


def test_load_returns_the_layouts_that_drew_each_split(tmp_path):
    splits = data.load(n=100, seed=2, val_fraction=0.2, test_fraction=0.3, cache_dir=tmp_path)
    for name in ("train", "val", "test"):
        images, labels = data.render(getattr(splits.layouts, name))
        np.testing.assert_array_equal(getattr(splits, name).images, images)
        np.testing.assert_array_equal(getattr(splits, name).labels, labels)
    assert splits.layouts.val.digit.shape == (20, 3) and splits.layouts.test.digit.shape == (30, 3)


def test_kaggle_splits_have_no_layouts(tmp_path):
    images, masks = data.generate(20, seed=0)
    np.save(tmp_path / data.IMAGES_FILE, images)
    np.save(tmp_path / data.MASKS_FILE, masks)
    assert data.load("kaggle", directory=tmp_path).layouts is None


def test_cache_is_written_atomically_and_reused(tmp_path, monkeypatch):
    data.load(n=100, seed=0, cache_dir=tmp_path)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == [
        "generated-v2-test-n20-seed1.npz",
        "generated-v2-train-n70-seed0.npz",
        "generated-v2-val-n10-seed2.npz",
    ]

    def no_generation(*args, **kwargs):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(splits_module, "render", no_generation)
    data.load(n=100, seed=0, cache_dir=tmp_path)


def test_interrupted_cache_write_leaves_nothing(tmp_path, monkeypatch):
    def broken_savez(file, **arrays):
        file.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(KeyboardInterrupt):
        data.load(n=50, seed=0, cache_dir=tmp_path)
    assert not list(tmp_path.iterdir())


def test_corrupt_cache_is_regenerated(tmp_path, caplog):
    data.load(n=50, seed=0, cache_dir=tmp_path)
    for path in tmp_path.iterdir():
        path.write_bytes(b"garbage")
    splits = data.load(n=50, seed=0, cache_dir=tmp_path)
    assert len(splits.train) == 35
    assert "unreadable" in caplog.text


def test_load_logs_its_source(tmp_path, caplog):
    caplog.set_level("INFO", logger="m2nist_seg.data")
    data.load(n=50, cache_dir=tmp_path)
    assert "source 'generated'" in caplog.text


def test_bad_fractions():
    with pytest.raises(M2NISTError, match="val_fraction"):
        data.load(val_fraction=1.5)
    with pytest.raises(M2NISTError, match="room left"):
        data.load(val_fraction=0.5, test_fraction=0.5)


# --- tf.data pipeline and statistics -----------------------------------------------------------------------------


def test_make_dataset_batches_and_types():
    images, labels = data.generate_labels(10, seed=0)
    batches = list(data.make_dataset(images, labels, batch_size=4))
    assert [b[0].shape[0] for b in batches] == [4, 4, 2]
    x, y = batches[0]
    assert x.shape == (4, 64, 84, 1) and x.dtype.name == "float32"
    assert y.shape == (4, 64, 84) and y.dtype.name == "int32"
    np.testing.assert_array_equal(x.numpy()[..., 0], images[:4])


def test_make_dataset_shuffle_is_seeded():
    images, labels = data.generate_labels(16, seed=0)

    def order(seed):
        return np.concatenate(
            [x.numpy().sum(axis=(1, 2, 3)) for x, _ in data.make_dataset(images, labels, 4, True, seed)]
        )

    np.testing.assert_array_equal(order(1), order(1))
    assert not np.array_equal(order(1), order(2))
    assert sorted(order(1)) == sorted(images.sum(axis=(1, 2)).astype(np.float32))


def test_make_dataset_rejects_mismatched_arrays():
    with pytest.raises(M2NISTError, match="images/labels"):
        data.make_dataset(np.zeros((2, 64, 84)), np.zeros((3, 64, 84)))


def test_statistics_by_hand():
    labels = np.full((2, 4, 5), data.BACKGROUND, dtype=np.uint8)
    labels[0, 0, :2] = 3
    labels[0, 1, 0] = 7
    labels[1, 2, 2] = 3
    stats = data.statistics(labels)
    expected = np.zeros(11)
    expected[3], expected[7], expected[10] = 3 / 40, 1 / 40, 36 / 40
    np.testing.assert_allclose(stats.pixel_share, expected)
    np.testing.assert_array_equal(stats.classes_per_image, [2, 1])
    assert stats.digits_per_image is None


def test_statistics_of_generated_data(generated_5000):
    layout, _, labels = generated_5000
    stats = data.statistics(labels, layout)
    assert 0.94 <= stats.pixel_share[10] <= 0.95
    assert set(np.unique(stats.digits_per_image)) == {2, 3}
    assert (stats.classes_per_image <= stats.digits_per_image).all()


def test_real_sample_statistics():
    images, masks = real_sample("10_float32")
    stats = data.statistics(data.masks_to_labels(masks))
    assert 0.94 <= stats.pixel_share[10] <= 0.95


def test_overlapping_digits_the_brighter_ink_owns_a_shared_pixel_and_ties_go_to_the_earlier_slot():
    digits, classes = data.mnist_digits()
    first = int(np.flatnonzero(classes == 0)[0])
    second = int(np.flatnonzero(classes == 1)[0])
    layout = data.Layout(digit=np.array([[first, second, -1]]), row=np.array([[5, 6, 0]]), col=np.array([[10, 14, 56]]))
    images, labels = data.render(layout)

    a = np.zeros((64, 84), dtype=int)
    b = np.zeros((64, 84), dtype=int)
    a[5:33, 10:38] = digits[first]
    b[6:34, 14:42] = digits[second]
    shared = (a > 0) & (b > 0)
    assert shared.sum() > 10 and (shared & (a == b)).any(), "the digits must overlap, with a tie somewhere"
    np.testing.assert_array_equal(images[0], np.maximum(a, b))
    assert (labels[0][shared & (b > a)] == 1).all()
    assert (labels[0][shared & (a >= b)] == 0).all(), "a tie goes to the earlier slot"
    assert (labels[0][(a > 0) & (b == 0)] == 0).all() and (labels[0][(b > 0) & (a == 0)] == 1).all()
    assert (labels[0][(a == 0) & (b == 0)] == data.BACKGROUND).all()
