"""The public M2NIST zip: download it once into the cache, verified, then read its arrays."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from m2nist_seg.core.atomic import atomic_path
from m2nist_seg.core.errors import M2NISTError
from m2nist_seg.data.arrays import IMAGES_FILE, MASKS_FILE, default_cache_dir, load_arrays

M2NIST_URL = "https://storage.googleapis.com/tensorflow-1-public/tensorflow-3-temp/m2nist.zip"
# The zip's SHA-256 is not recorded: its host cannot be reached from where this package is built, so no copy
# of the file could be hashed. Pass ``sha256=`` to check a download against a digest you trust.
M2NIST_SHA256: str | None = None
WANTED = (IMAGES_FILE, MASKS_FILE)


def sha256_of(path: str | os.PathLike) -> str:
    """The SHA-256 hex digest of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def archive_path(cache_dir: str | os.PathLike, url: str) -> Path:
    """Where the zip from ``url`` is cached: one file per URL."""
    return Path(cache_dir) / ("m2nist_" + hashlib.sha1(url.encode()).hexdigest()[:10] + ".zip")


def _fetch(url: str, target: Path, sha256: str | None, timeout: float) -> None:
    """Download ``url`` into a temporary folder beside ``target``, check it, then rename it to ``target``.

    Any failure (no network, a server that stops answering for ``timeout`` seconds, a truncated or wrong body,
    a digest other than ``sha256``) raises :class:`M2NISTError` and leaves nothing in the cache.
    """
    import keras

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".download-"))
    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        try:
            fetched = keras.utils.get_file(fname=target.name, origin=url, cache_dir=str(staging), cache_subdir=".")
            fetched = Path(fetched)
        except Exception as err:
            raise M2NISTError(
                f"download of {url} failed ({err}). Without a network, either place Kaggle's {IMAGES_FILE} and "
                f"{MASKS_FILE} in a directory and use load(source='kaggle', directory=...), "
                "or use the offline generator: load(source='generated')"
            ) from None
        if sha256 is not None and sha256_of(fetched) != sha256.lower():
            raise M2NISTError(
                f"download of {url}: SHA-256 {sha256_of(fetched)}, expected {sha256.lower()} "
                "(a corrupt or different file; nothing was kept, try again)"
            )
        problem = _zip_problem(fetched)
        if problem:
            raise M2NISTError(f"download of {url}: {problem} (nothing was kept, try again)")
        shutil.rmtree(target.with_suffix(""), ignore_errors=True)  # arrays extracted from an earlier download
        os.replace(fetched, target)
    finally:
        socket.setdefaulttimeout(previous_timeout)
        shutil.rmtree(staging, ignore_errors=True)


def _zip_problem(path: Path) -> str | None:
    """What is wrong with a downloaded zip (truncated, corrupt, or without M2NIST's two files), or None."""
    try:
        with zipfile.ZipFile(path) as zf:
            broken = zf.testzip()
            names = {Path(name).name for name in zf.namelist()}
    except zipfile.BadZipFile:
        return "not a valid zip file (truncated or of another format)"
    if broken is not None:
        return f"{broken} in the zip is corrupt"
    missing = sorted(set(WANTED) - names)
    return f"the zip lacks {missing}, expected {' and '.join(WANTED)}" if missing else None


def download(
    cache_dir: str | os.PathLike | None = None,
    url: str = M2NIST_URL,
    sha256: str | None = M2NIST_SHA256,
    timeout: float = 10.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Fetch the public M2NIST zip once (cached in ``cache_dir``) and load its arrays.

    Returns validated ``(images, masks)`` as :func:`~m2nist_seg.data.arrays.load_arrays` does. With ``sha256``,
    the download must have that digest. Without a network it fails within ``timeout`` seconds with an
    :class:`M2NISTError` that says how to get the data another way.
    """
    if timeout <= 0:
        raise M2NISTError(f"timeout: found {timeout!r}, expected a positive number of seconds")
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    archive = archive_path(cache_dir, url)
    if archive.is_file() and sha256 is not None and sha256_of(archive) != sha256.lower():
        archive.unlink()
    if not archive.is_file():
        _fetch(url, archive, sha256, timeout)
    return _extract_and_load(archive)


def _extract_and_load(archive: Path) -> tuple[np.ndarray, np.ndarray]:
    target = archive.with_suffix("")
    if not all((target / name).is_file() for name in WANTED):
        try:
            with zipfile.ZipFile(archive) as zf:
                members = {Path(name).name: name for name in zf.namelist()}
                missing = set(WANTED) - members.keys()
                if missing:
                    raise M2NISTError(f"{archive}: zip lacks {sorted(missing)}, expected {' and '.join(WANTED)}")
                for name in WANTED:
                    with atomic_path(target / name) as tmp:
                        tmp.write_bytes(zf.read(members[name]))
        except zipfile.BadZipFile:
            archive.unlink()
            raise M2NISTError(f"{archive}: not a valid zip file (removed it; download again)") from None
    return load_arrays(target)
