"""A run folder's bookkeeping: which folder a run writes to, its state record, resuming, trimming and never
overwriting a finished run. Plain files and JSON only: no TensorFlow, so every rule is tested without training.

A run writes to ``<output_dir>/<name>/``:

- ``model.keras``, ``history.csv``, ``report.json``: the finished run (see :mod:`m2nist_seg.training.train`);
- while it trains, ``state.json`` (the record of the last finished epoch: its number, its backup, the best
  checkpoint so far, the seconds spent and the options that must match to resume), ``backup/epoch-N.weights.h5``
  and ``.best-epoch-N.keras``.

Every file is written atomically and the record last, so a run killed at any moment resumes from a consistent
epoch: files that the record does not name are left-overs of a killed epoch and are removed
(:func:`remove_unrecorded`), and history rows past the record are trimmed (:func:`trim_history`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Literal

from m2nist_seg.core.atomic import atomic_path
from m2nist_seg.core.errors import M2NISTError

MODEL_FILE = "model.keras"
HISTORY_FILE = "history.csv"
REPORT_FILE = "report.json"
STATE_FILE = "state.json"
BACKUP_DIR = "backup"
FIGURES_DIR = "figures"
BEST_PATTERN = ".best-epoch-*.keras"
# The temporary names atomic_path gives the run's own files while it writes them.
TEMPORARY_FILES = (".model-*.keras", ".history-*.csv", ".report-*.json", ".state-*.json", "..best-epoch-*.keras")


def best_file(epoch: int) -> str:
    """The name of the best checkpoint written after ``epoch`` (1-based)."""
    return f".best-epoch-{epoch}.keras"


def backup_file(epoch: int) -> str:
    """The path, inside the run folder, of the weights backup written after ``epoch`` (1-based)."""
    return f"{BACKUP_DIR}/epoch-{epoch}.weights.h5"


def run_status(run_dir: Path) -> Literal["empty", "interrupted", "finished"]:
    """What a run folder holds: nothing of a run, an interrupted run (a state record) or a finished one."""
    if (run_dir / STATE_FILE).is_file() or (run_dir / BACKUP_DIR).exists():
        return "interrupted"
    if (run_dir / REPORT_FILE).is_file() or (run_dir / MODEL_FILE).is_file():
        return "finished"
    return "empty"


def read_state(run_dir: Path) -> dict | None:
    """The state record of an interrupted run, or None when it has none (it stopped before its first epoch)."""
    path = run_dir / STATE_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        raise M2NISTError(f"{path}: unreadable run state, expected the JSON record of an interrupted run") from None


def write_state(run_dir: Path, state: dict) -> None:
    """Write the record of a finished epoch atomically, then remove what it no longer names."""
    with atomic_path(run_dir / STATE_FILE) as tmp:
        tmp.write_text(json.dumps(state, indent=2) + "\n")
    remove_unrecorded(run_dir, state)


def differing_options(now: dict, state: dict, defaults: dict) -> list[str]:
    """``option: recorded → now`` for each option of ``now`` (a config's resume key) that differs from an
    interrupted run's record ``state``. An option the record lacks (one added since the run was interrupted)
    counts as its value in ``defaults``."""
    recorded = {**defaults, **state.get("config", {})}
    return [f"{k}: {recorded.get(k)!r} → {now[k]!r}" for k in sorted(now) if recorded.get(k) != now[k]]


def choose_run_dir(base: Path, resume_key: dict, defaults: dict, overwrite: bool = False) -> Path:
    """The folder a run writes to; it never holds a finished run unless ``overwrite``.

    ``base`` (``<output_dir>/<name>``) when it is empty, holds an interrupted run with the same ``resume_key``
    (resumed), or ``overwrite`` is set (cleared first); otherwise the first of ``<name>-2``, ``<name>-3``, …
    that is not a finished run. An interrupted run with other options is refused, naming the options that
    differ (:func:`differing_options`).
    """
    if overwrite:
        clear_run(base)
        return base
    candidate, number = base, 1
    while run_status(candidate) == "finished":
        number += 1
        candidate = base.with_name(f"{base.name}-{number}")
    if run_status(candidate) == "interrupted":
        state = read_state(candidate)
        differences = differing_options(resume_key, state, defaults) if state else []
        if differences:
            raise M2NISTError(
                f"{candidate}: an interrupted run with other options ({'; '.join(differences)}), expected the "
                "same config to resume it; pass overwrite=True (--overwrite) to replace it, or another name"
            )
    return candidate


def clear_run(run_dir: Path) -> None:
    """Remove what a run wrote in ``run_dir`` (and nothing else)."""
    for name in (MODEL_FILE, HISTORY_FILE, REPORT_FILE, STATE_FILE):
        (run_dir / name).unlink(missing_ok=True)
    for folder in (BACKUP_DIR, FIGURES_DIR):
        shutil.rmtree(run_dir / folder, ignore_errors=True)
    for path in run_dir.glob(BEST_PATTERN) if run_dir.is_dir() else ():
        path.unlink()


def remove_unrecorded(run_dir: Path, state: dict | None) -> None:
    """Delete backups and best checkpoints that the state record does not name (older ones, or ones written
    by an epoch that was killed before its record), and temporary files of interrupted writes."""
    keep = {state.get("weights"), (state.get("best") or {}).get("file")} if state else set()
    for path in [*run_dir.glob(f"{BACKUP_DIR}/*"), *run_dir.glob(BEST_PATTERN)]:
        if str(path.relative_to(run_dir)) not in keep:
            path.unlink(missing_ok=True)
    for pattern in TEMPORARY_FILES:  # left by atomic_path when a write was killed
        for path in run_dir.glob(pattern):
            path.unlink(missing_ok=True)


def trim_history(path: Path, epochs: int) -> None:
    """Keep the header and the first ``epochs`` rows of a run's history (later rows were written by an epoch
    killed before its record)."""
    if not path.is_file():
        return
    lines = path.read_text().splitlines(keepends=True)
    if len(lines) > epochs + 1:
        with atomic_path(path) as tmp:
            tmp.write_text("".join(lines[: epochs + 1]))


def finish_run(run_dir: Path) -> None:
    """Remove the state record, the backups and the checkpoints of a run whose model and report are written."""
    (run_dir / STATE_FILE).unlink(missing_ok=True)
    shutil.rmtree(run_dir / BACKUP_DIR, ignore_errors=True)
    remove_unrecorded(run_dir, None)


def refuse_inside(run_dir: Path, protected: Path, option: str = "output_dir") -> None:
    """Raise :class:`M2NISTError` when ``run_dir`` is ``protected`` or lies inside it (the shipped model's folder)."""
    protected = protected.resolve()
    if run_dir.resolve() == protected or protected in run_dir.resolve().parents:
        raise M2NISTError(f"{option}: found {run_dir}, expected a folder outside the shipped model's {protected}")
