"""``python -m bench.run_all``: see `bench.run_all`."""

import sys

from bench.run_all.runner import main

sys.exit(main())
