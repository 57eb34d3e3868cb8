"""Command line: ``python -m m2nist_seg {generate,train,evaluate,predict,export,run,classroom} --help``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

from m2nist_seg import data
from m2nist_seg.core.atomic import atomic_path
from m2nist_seg.core.errors import M2NISTError
from m2nist_seg.core.options import NON_NEGATIVE_INT, POSITIVE_INT, argument_type
from m2nist_seg.core.settings import SHIPPED_MODEL
from m2nist_seg.teaching import classroom
from m2nist_seg.training.config import add_options, from_args


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line naming the option, then exit status 2 (no usage dump).

    Options must be spelled in full: an abbreviation could silently mean another option (``--time-budget``
    once took minutes; ``--time-budget-s`` takes seconds).
    """

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


positive_int = argument_type(int, POSITIVE_INT)
non_negative_int = argument_type(int, NON_NEGATIVE_INT)


def _refuse_overwrite(path: Path, option: str, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise M2NISTError(f"{option}: {path} already exists, expected a new path (or pass --overwrite to replace it)")


def _make_folder(path: Path, option: str) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise M2NISTError(
            f"{option}: cannot create the folder {path} ({err.strerror}), expected a writable path"
        ) from None


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array)


def cmd_generate(args) -> None:
    out = Path(args.out)
    targets = [out / data.IMAGES_FILE, out / data.MASKS_FILE]
    for target in targets:
        _refuse_overwrite(target, "--out", args.overwrite)
    _make_folder(out, "--out")
    images, masks = data.generate(args.n, seed=args.seed, pool=args.pool)
    _save_npy(targets[0], images)
    _save_npy(targets[1], masks)
    print(f"wrote {len(images)} images to {targets[0]} and their masks to {targets[1]}")


def _write_run_figures(report: dict, run_dir: Path, model, split) -> None:
    import pandas as pd

    from m2nist_seg.evaluation import evaluate, metrics
    from m2nist_seg.viz import plots

    figures = run_dir / "figures"
    plots.save_figure(
        plots.plot_per_class(report["per_class"], "Per-class IoU and Dice (test split)"), figures / "per_class.png"
    )
    plots.save_figure(plots.plot_confusion(np.array(report["confusion_matrix"])), figures / "confusion.png")
    predicted = evaluate.predict(model, split.images[:6])
    iou, _ = metrics.per_image_scores(split.labels[:6], predicted)
    plots.save_figure(plots.plot_gallery(split.images[:6], split.labels[:6], predicted, iou), figures / "gallery.png")
    history = run_dir / "history.csv"
    if history.is_file():
        plots.save_figure(plots.plot_history(pd.read_csv(history)), figures / "history.png")
    print(f"figures in {figures}")


def cmd_train(args) -> None:
    from m2nist_seg.evaluation import evaluate
    from m2nist_seg.training import runs, train

    config = from_args(args)
    _make_folder(Path(config.output_dir), "--output-dir")
    report = train.train(config)
    run_dir = Path(config.output_dir) / report["training"]["run"]
    print(evaluate.format_report(report))
    model = evaluate.load_model(run_dir / runs.MODEL_FILE)
    split = data.load(config.source, directory=config.data_dir, n=config.n_images, seed=config.seed).test
    _write_run_figures(report, run_dir, model, split)
    print(f"model, history and report in {run_dir}")


def _model(path: str):
    """A ``.keras`` model, or the path of an exported ``.onnx`` graph, which ``evaluate.predict`` loads (and
    checks) once and runs with ONNX Runtime."""
    from m2nist_seg.evaluation import evaluate

    return path if Path(path).suffix == ".onnx" else evaluate.load_model(path)


def cmd_export(args) -> None:
    from m2nist_seg.deploy import export

    shipped = export.export_shipped(args.model, overwrite=args.overwrite)
    for name, path, parity in (
        ("float32", shipped.float32, shipped.float_parity),
        ("int8", shipped.int8, shipped.int8_parity),
    ):
        verdict = f"written to {path}" if path else "not written: its mean digit IoU drops by more than 0.005"
        print(
            f"{name}: {parity['equal_pixels']:.3%} of the test pixels equal to Keras, mean digit IoU change "
            f"{parity['iou_change']:+.4f}; {verdict}"
        )


def cmd_evaluate(args) -> None:
    from m2nist_seg.evaluation import evaluate

    if args.out:
        _refuse_overwrite(Path(args.out), "--out", args.overwrite)
    model = _model(args.model)
    splits = data.load(args.source, directory=args.data_dir, seed=args.seed)
    report = evaluate.evaluate(model, getattr(splits, args.split))
    print(evaluate.format_report(report))
    if args.out:
        print(f"report written to {evaluate.save_report(report, args.out)}")


def _read_input(path: Path) -> np.ndarray:
    if path.suffix == ".npy":
        images = data.to_uint8_images(data.read_npy(path), name=str(path))
        return images[None] if images.ndim == 2 else images
    if path.suffix == ".png":
        if not path.is_file():
            raise M2NISTError(f"{path}: file not found, expected a .png image")
        import matplotlib.image

        pixels = matplotlib.image.imread(path)
        if pixels.ndim == 3:
            pixels = pixels[..., :3].mean(axis=-1)
        scale = 255.0 if pixels.dtype.kind == "f" else 1.0
        return np.clip(np.round(pixels * scale), 0, 255).astype(np.uint8)[None]
    raise M2NISTError(f"{path}: found suffix {path.suffix!r}, expected .npy or .png")


def cmd_predict(args) -> None:
    from m2nist_seg.evaluation import evaluate
    from m2nist_seg.viz import plots

    _refuse_overwrite(Path(args.out), "--out", args.overwrite)
    images = _read_input(Path(args.input))
    model = _model(args.model)
    labels = evaluate.predict(model, images, ink_gated=args.ink_gated)
    shown = min(len(images), 8)
    fig = plots.plot_predictions(images[:shown], labels[:shown])
    print(f"coloured masks of {shown} image(s) written to {plots.save_figure(fig, args.out)}")


def cmd_run(args) -> None:
    logging.getLogger("m2nist_seg").setLevel(logging.INFO)
    cmd_train(args)


def cmd_classroom_build(args) -> None:
    source, out = Path(args.source), Path(args.out)
    written = classroom.build(source, out)
    for path in written:
        print(f"wrote {path}")
    print(f"{len(written)} student notebook(s) in {out}: solutions stubbed, outputs cleared")


def cmd_classroom_nbgrader(args) -> None:
    written = classroom.nbgrader_course(Path(args.directory), Path(args.source), overwrite=args.overwrite)
    for path in written:
        print(f"wrote {path}")
    print(
        f"nbgrader course in {args.directory}: cd there, then `nbgrader generate_assignment {classroom.ASSIGNMENT}` "
        "(the teacher's guide, classroom/README.md, walks through hand-out, collection, autograding and feedback)"
    )


def cmd_classroom_check(args) -> None:
    source, out = Path(args.source), Path(args.out)
    stale = classroom.check_build(source, out)
    if stale:
        orphans = [name for name in stale if not (source / name).is_file()]
        delete = f", and delete {', '.join(orphans)} (no notebook of that name in {source})" if orphans else ""
        raise M2NISTError(
            f"{out}: stale student edition ({', '.join(stale)}), expected a fresh build of {source}; "
            f"rebuild it with `python -m m2nist_seg classroom build`{delete}"
        )
    print(f"{out} is up to date with {source}")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m m2nist_seg", description=__doc__.split(":")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    gen = commands.add_parser("generate", help="write generated M2NIST in Kaggle's layout")
    gen.add_argument("--n", type=positive_int, default=5000, help="number of images (default: %(default)s)")
    gen.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default: %(default)s)")
    gen.add_argument("--pool", choices=data.POOLS, default="train", help="digit pool (default: %(default)s)")
    gen.add_argument("--out", default="data/generated", help="output folder (default: %(default)s)")
    gen.add_argument("--overwrite", action="store_true", help="replace the files of an earlier generate in --out")
    gen.set_defaults(func=cmd_generate)

    tr = commands.add_parser("train", help="train a model and evaluate its best checkpoint")
    add_options(tr)
    tr.set_defaults(func=cmd_train)

    ev = commands.add_parser("evaluate", help="evaluate a model on a data split")
    ev.add_argument(
        "--model",
        default=str(SHIPPED_MODEL),
        help="a .keras model or an exported .onnx graph (default: the shipped one)",
    )
    ev.add_argument("--source", choices=data.SOURCES, default="generated", help="data source (default: %(default)s)")
    ev.add_argument("--data-dir", help="folder with Kaggle's files (--source kaggle)")
    ev.add_argument("--split", choices=("train", "val", "test"), default="test", help="split (default: %(default)s)")
    ev.add_argument("--seed", type=non_negative_int, default=0, help="split seed (default: %(default)s)")
    ev.add_argument("--out", help="write the report as JSON here")
    ev.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    ev.set_defaults(func=cmd_evaluate)

    pr = commands.add_parser("predict", help="predict masks for an .npy or .png input and draw them")
    pr.add_argument("input", help="an .npy of images (N, 64, 84) or (64, 84), or a 64×84 PNG")
    pr.add_argument(
        "--model",
        default=str(SHIPPED_MODEL),
        help="a .keras model or an exported .onnx graph (default: the shipped one)",
    )
    pr.add_argument("--out", default="prediction.png", help="output PNG (default: %(default)s)")
    pr.add_argument("--ink-gated", action="store_true", help="label ink-free pixels background")
    pr.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    pr.set_defaults(func=cmd_predict)

    ex = commands.add_parser("export", help="export a .keras model to ONNX, float32 and int8, checked for parity")
    ex.add_argument("--model", default=str(SHIPPED_MODEL), help="the .keras model (default: the shipped one)")
    ex.add_argument("--overwrite", action="store_true", help="replace existing .onnx files beside it")
    ex.set_defaults(func=cmd_export)

    run = commands.add_parser("run", help="the main job: train and evaluate with the defaults, print the report")
    add_options(run)
    run.set_defaults(func=cmd_run)

    room = commands.add_parser("classroom", help="build or check the student edition of the notebooks")
    actions = room.add_subparsers(dest="action", required=True)
    for action, func, help_text in (
        ("build", cmd_classroom_build, "write the student edition: solutions stubbed, outputs cleared"),
        ("check", cmd_classroom_check, "exit non-zero when the student edition differs from a fresh build"),
    ):
        sub = actions.add_parser(action, help=help_text)
        sub.add_argument("--source", default=str(classroom.SOURCE_DIR), help="teacher's edition (default: %(default)s)")
        sub.add_argument("--out", default=str(classroom.TARGET_DIR), help="student edition (default: %(default)s)")
        sub.set_defaults(func=func)
    course = actions.add_parser("nbgrader", help="write an nbgrader course folder: nbgrader_config.py and source/")
    course.add_argument("directory", help="the course folder to write (nbgrader's course root)")
    course.add_argument("--source", default=str(classroom.SOURCE_DIR), help="teacher's edition (default: %(default)s)")
    course.add_argument("--overwrite", action="store_true", help="replace files of an earlier course folder")
    course.set_defaults(func=cmd_classroom_nbgrader)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(format="%(message)s", level=logging.WARNING)
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except M2NISTError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"error: {err.filename or 'a file'}: {err.strerror or err}", file=sys.stderr)
        return 2
    return 0
