"""``python -m fastbp``: see ``fastbp.cli``."""

import sys

from .cli import main

sys.exit(main())
