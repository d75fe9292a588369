"""What the tests and the benchmarks share to drive real parts on 127.0.0.1.

- `tests.support.ports`: free TCP ports (one, or a block of consecutive ones).
- `tests.support.waits`: waiting for an event with a bound, never for a fixed time.

Pytest fixtures built on these live in the ``conftest.py`` files; benchmarks (``bench/``)
import these modules directly, with the repository root on ``sys.path``.
"""
