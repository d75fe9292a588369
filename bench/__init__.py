"""Benchmarks: scripts that measure a figure and print it beside its target.

Run them as modules from the repository root, e.g. ``.venv/bin/python -m bench.run_all``
or ``.venv/bin/python -m bench.bench_producer``: the root is then on ``sys.path`` and the
benchmarks import the project, ``tests.support`` (ports, waits, daemons, feed server,
webhook receiver) and `bench.harness` like any other module, with no path edits.
"""
