"""``python -m newswatch.cli``: the console script, as the daemons' supervisor starts it."""

import sys

from newswatch.cli import main

sys.exit(main())
