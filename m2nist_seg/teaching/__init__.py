"""The teaching layer: what the notebooks' learners and teachers use.

- :mod:`~m2nist_seg.teaching.checks`: one check per exercise, split by notebook over a shared feedback module;
- :mod:`~m2nist_seg.teaching.exercises`: the reference solutions and the fallbacks while an exercise is unfinished;
- :mod:`~m2nist_seg.teaching.classroom`: builds and checks the student edition;
- :mod:`~m2nist_seg.teaching.explore`: the interactive explorer of notebook 06.

It may import every layer below it; only the command line (:mod:`m2nist_seg.cli`) sits above it.
"""
