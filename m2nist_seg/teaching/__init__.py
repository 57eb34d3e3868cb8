"""The teaching layer: what the notebooks' learners and teachers use.

- :mod:`~m2nist_seg.teaching.checks`: one check per exercise, split by notebook over a shared feedback module;
- :mod:`~m2nist_seg.teaching.references`: the reference solutions of the exercises;
- :mod:`~m2nist_seg.teaching.exercises`: the notebooks' fallbacks to them while an exercise is unfinished;
- :mod:`~m2nist_seg.teaching.classroom`: builds and checks the student edition;
- :mod:`~m2nist_seg.teaching.explore`: the interactive explorer of notebook 06.

It may import every layer below it (the checks and references import no training code); only the command line
(:mod:`m2nist_seg.cli`) sits above it.
"""
