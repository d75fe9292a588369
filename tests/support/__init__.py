"""What the tests and the benchmarks share to drive real parts on 127.0.0.1.

- `tests.support.ports`: free TCP ports (one, or a block of consecutive ones), from outside
  the kernel's ephemeral range and claimed per process, so nothing takes them meanwhile.
- `tests.support.waits`: waiting for an event with a bound, never for a fixed time.

Also `daemons` (DaemonProcess; finding and killing every process a `newswatch run`
started), `feed_server` (FeedServer, FeedServerProcess), `webhook`, `smtp` and `postgres`
(a fresh schema on the test server). Pytest fixtures built on these live in the
``conftest.py`` files; the benchmarks (``bench/``, run as ``python -m bench.<name>`` from
the repository root) import these modules directly.
"""
