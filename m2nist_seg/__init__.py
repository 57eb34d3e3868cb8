"""m2nist_seg: semantic segmentation of handwritten digits (M2NIST) with an FCN-8.

The package holds the logic that the tutorial notebooks import, in one folder per layer (lowest first; a
module imports only its own layer or lower ones: see the README's "Architecture"):

- :mod:`m2nist_seg.core`: the error type, the run-wide switches, atomic writes, checked option values;
- :mod:`m2nist_seg.data`: M2NIST arrays, the offline generator, the splits, the shared validators;
- :mod:`m2nist_seg.model`: the CNN encoder with its FCN-8/16/32 decoder, and the losses;
- :mod:`m2nist_seg.evaluation`: metrics, predictions (Keras or ONNX), reports, error analysis;
- :mod:`m2nist_seg.training`, :mod:`m2nist_seg.deploy`, :mod:`m2nist_seg.viz`: training runs, the ONNX
  export, the figures;
- :mod:`m2nist_seg.teaching`: the exercise checks, references, the student edition, the explorer;
- :mod:`m2nist_seg.cli`: the command line.

Importing the package imports TensorFlow with its C++ start-up chatter (CUDA probing on a machine without a
GPU, and the like) kept out of the output, and TensorFlow's Python logger set to errors only, so that
notebook cells show only what they mean to show. Python-level errors still surface as usual.
"""

import contextlib
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# oneDNN kernels train this model about twice as fast on a laptop CPU; set TF_ENABLE_ONEDNN_OPTS=0 to opt out.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


@contextlib.contextmanager
def _native_stderr_silenced():
    """Point file descriptor 2 at /dev/null for the duration (C++ libraries write there directly)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


with _native_stderr_silenced():
    import tensorflow

# TensorFlow's Python-level advice (e.g. on retracing when several models are compared) is not for learners.
tensorflow.get_logger().setLevel("ERROR")

# The package's custom Keras objects (losses, the streaming metric) are registered on import, so that
# keras.models.load_model reads any model this package saved.
from m2nist_seg.core.errors import M2NISTError  # noqa: E402
from m2nist_seg.evaluation import metrics  # noqa: E402, F401
from m2nist_seg.model import losses  # noqa: E402, F401

__all__ = ["M2NISTError"]
__version__ = "0.1.0"
