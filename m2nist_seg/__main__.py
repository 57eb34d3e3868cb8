"""``python -m m2nist_seg``: see :mod:`m2nist_seg.cli`."""

import sys

from m2nist_seg.cli import main

sys.exit(main())
