"""``python -m lnl_core`` is the ``lnl`` command."""

import sys

from .cli import main

sys.exit(main())
