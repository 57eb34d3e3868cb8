"""The core layer: what every other layer may use, with no TensorFlow and no other layer of the package.

- :mod:`~m2nist_seg.core.errors`: :class:`M2NISTError`, the one error type for bad input;
- :mod:`~m2nist_seg.core.settings`: the run-wide switches (``M2NIST_QUICK`` …) and the project's folders;
- :mod:`~m2nist_seg.core.atomic`: atomic file writes.
"""
