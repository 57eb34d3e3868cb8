"""The training layer: options, run folders, data streams, callbacks, the training call and the experiments.

- :mod:`~m2nist_seg.training.config`: :class:`TrainConfig`, the one source of the training options (the CLI's
  options are generated from its fields);
- :mod:`~m2nist_seg.training.runs`: the run folder's bookkeeping (choosing it, its state record, resume,
  trimming, never overwriting), without TensorFlow;
- :mod:`~m2nist_seg.training.streams`: the seeded, resumable streams of training batches;
- :mod:`~m2nist_seg.training.callbacks`: progress, time budget, run state, early stopping, prediction recorder;
- :mod:`~m2nist_seg.training.train`: :func:`train`, data → model → fit → best checkpoint → report;
- :mod:`~m2nist_seg.training.distributed`: the training loop across worker processes;
- :mod:`~m2nist_seg.training.workers`: the worker entry point and the local launcher;
- :mod:`~m2nist_seg.training.experiments`: the controlled comparisons behind the notebooks' claims.

It imports the core, data, model and evaluation layers.
"""
