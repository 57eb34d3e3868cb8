"""Shared fixtures: quiet TensorFlow, a private cache directory and the real M2NIST samples when present."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# The teacher's edition of the notebooks runs under nbval in this process's environment: with strict checks,
# an exercise solution that fails its check fails the run instead of printing a hint.
os.environ.setdefault("M2NIST_STRICT", "1")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from m2nist_seg import data  # noqa: E402

# A training run small enough for a unit test: a few seconds on two cores.
TINY = {
    "n_images": 120,
    "epochs": 2,
    "batch_size": 16,
    "widths": (8, 8, 16, 16, 16),
    "convs_per_block": (1, 1, 1, 1, 1),
    "decoder_width": 16,
    "verbose": False,
}

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "shared" / "m2nist-sample"


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    """Every test caches generated data in one session-wide temporary folder, never in the user's home."""
    monkeypatch.setenv("M2NIST_CACHE", str(tmp_path_factory.getbasetemp() / "m2nist-cache"))


@pytest.fixture(scope="session")
def generated_5000():
    """5,000 generated training-pool images with their layout, images and label maps."""
    layout = data.sample_layout(5000, seed=0, pool="train")
    images, labels = data.render(layout)
    return layout, images, labels


def real_sample(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The real M2NIST sample ``name`` ("5_int64" or "10_float32"), skipping the test when it is absent."""
    images_file = SAMPLE_DIR / f"combined_{name}.npy"
    if not images_file.is_file():
        pytest.skip(f"real M2NIST samples not found in {SAMPLE_DIR}")
    masks_name = {"5_int64": "segmented_5_int64", "10_float32": "segmented_10_int32"}[name]
    return np.load(images_file), np.load(SAMPLE_DIR / f"{masks_name}.npy")
