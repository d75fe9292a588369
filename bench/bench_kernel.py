"""Benchmark: the matrix kernel under NER: BLIS as selected, BLIS's generic fallback, and
numpy's OpenBLAS, on NER's own product shapes and on raw NER, in one process.

    .venv/bin/python -m bench.bench_kernel [--repeat 2] [--rounds 3]

cython-blis picks its generic kernel on processors it does not know (AMD EPYC family 25
in issue 17). This machine may not be one, so the generic kernel is also run here on
purpose, through BLIS's own API with a context initialised for the ``generic``
sub-configuration (``bli_cntx_init_generic``, ``bli_sgemm_ex``): ``blis-generic`` shows
what such a processor's NER costs and what routing it to numpy buys. It is a benchmark
device only; the product chooses between ``blis`` and ``numpy``
(`consumers.enrich.kernel`).

Prints `uptime`, numpy's BLAS as threadpoolctl reports it (OPENBLAS_CORETYPE and
OPENBLAS_L2_SIZE, when set, pin its kernel: see the report), then GFLOP/s per kernel on
each shape, then raw NER docs per CPU second per kernel (same texts, alternating rounds,
best of each) and whether the entities are identical to BLIS's.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import blis.cy
import blis.py
import numpy
from thinc.api import NumpyOps, set_current_ops
from threadpoolctl import threadpool_limits

from bench.harness import uptime
from consumers.enrich.kernel import OpenBlasOps, best_seconds, blis_arch, numpy_blas
from consumers.enrich.nlp import load_pipeline

ROOT = Path(__file__).resolve().parent.parent

# (m, k, n) of NER's products in en_core_web_sm, logged from NumpyOps.gemm on a batch of
# 64 articles: the maxout window encoder and the parser's precomputed features.
SHAPES = ((9868, 288, 288), (9808, 384, 288), (9808, 96, 64), (9808, 64, 384),
          (500, 288, 288))
BLIS_NO_TRANSPOSE, BLIS_TRANSPOSE = 0, 8  # trans_t in blis.h


class GenericBlis:
    """``x @ y`` (y transposed on request) on BLIS's generic reference kernel."""

    def __init__(self) -> None:
        self.library = ctypes.CDLL(blis.cy.__file__)
        self.context = ctypes.create_string_buffer(1 << 20)  # larger than any cntx_t
        self.library.bli_cntx_init_generic(self.context)
        dim = ctypes.c_int64
        pointer = ctypes.c_void_p
        self.gemm_ex = self.library.bli_sgemm_ex
        self.gemm_ex.restype = None
        self.gemm_ex.argtypes = [ctypes.c_int, ctypes.c_int, dim, dim, dim, pointer, pointer,
                                 dim, dim, pointer, dim, dim, pointer, pointer, dim, dim,
                                 pointer, pointer]

    def gemm(self, x: Any, y: Any, out: Any = None, trans1: bool = False,
             trans2: bool = False) -> Any:
        x = numpy.ascontiguousarray(x, dtype=numpy.float32)
        y = numpy.ascontiguousarray(y, dtype=numpy.float32)
        m, k = (x.shape[1], x.shape[0]) if trans1 else x.shape
        n = y.shape[0] if trans2 else y.shape[1]
        if out is None or not out.flags.c_contiguous:
            out = numpy.empty((m, n), dtype=numpy.float32)
        one, zero = ctypes.c_float(1.0), ctypes.c_float(0.0)
        self.gemm_ex(BLIS_TRANSPOSE if trans1 else BLIS_NO_TRANSPOSE,
                     BLIS_TRANSPOSE if trans2 else BLIS_NO_TRANSPOSE, m, n, k,
                     ctypes.byref(one), x.ctypes.data, x.shape[1], 1, y.ctypes.data,
                     y.shape[1], 1, ctypes.byref(zero), out.ctypes.data, n, 1,
                     self.context, None)
        return out


class GenericBlisOps(NumpyOps):  # type: ignore[misc]
    """thinc's CPU ops with ``gemm`` on BLIS's generic kernel (benchmark only)."""

    name = "blis-generic"
    kernel = GenericBlis()

    def gemm(self, x: Any, y: Any, *, out: Any = None, trans1: bool = False,
             trans2: bool = False) -> Any:
        return self.kernel.gemm(x, y, out=out, trans1=trans1, trans2=trans2)


def shapes_table() -> None:
    generator = numpy.random.default_rng(0)
    generic = GenericBlis()
    print("| m x k x n | BLIS selected | BLIS generic | numpy | max |diff| numpy vs BLIS |")
    print("|---|---|---|---|---|")
    for m, k, n in SHAPES:
        x = generator.standard_normal((m, k), dtype=numpy.float32)
        y = generator.standard_normal((n, k), dtype=numpy.float32)
        flop = 2.0 * m * k * n
        runs: list[Callable[[], object]] = [
            partial(blis.py.gemm, x, y, trans2=True), partial(generic.gemm, x, y, trans2=True),
            partial(numpy.matmul, x, y.T)]
        rates = [flop / best_seconds(run, 5) / 1e9 for run in runs]
        diff = float(numpy.abs(blis.py.gemm(x, y, trans2=True) - x @ y.T).max())
        assert numpy.allclose(generic.gemm(x, y, trans2=True), x @ y.T, rtol=1e-4, atol=1e-3)
        print(f"| {m} x {k} x {n} | " + " | ".join(f"{r:.0f} GFLOP/s" for r in rates)
              + f" | {diff:.1e} |")


def entities(nlp: Any, texts: Sequence[str]) -> list[list[tuple[int, int, str]]]:
    return [[(e.start_char, e.end_char, e.label_) for e in doc.ents] for doc in nlp.pipe(texts)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="copies of the text corpus")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--articles", type=int, default=200,
                        help="full-text articles (bench/fulltext_corpus.py)")
    args = parser.parse_args(argv)
    threadpool_limits(1, user_api="blas")  # as the enrich daemon runs it
    print(uptime())
    print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')!r} "
          f"OPENBLAS_L2_SIZE={os.environ.get('OPENBLAS_L2_SIZE')!r}")
    print(f"BLIS sub-configuration: {blis_arch()}; numpy BLAS: {numpy_blas()}")
    print()
    shapes_table()
    print(uptime())
    print()

    from fulltext_corpus import fulltext_articles

    from consumers.enrich.enrich import document_text

    texts = [document_text(title, content=text).text
             for title, text in fulltext_articles(args.articles)] * args.repeat
    words = sum(len(text.split()) for text in texts)
    pipelines = {}
    for name, ops in (("blis", NumpyOps()), ("blis-generic", GenericBlisOps()),
                      ("numpy", OpenBlasOps())):
        set_current_ops(ops)
        pipelines[name] = load_pipeline()
        list(pipelines[name].pipe(texts[:16]))
    set_current_ops(NumpyOps())
    best = {name: float("inf") for name in pipelines}
    for round_no in range(args.rounds):
        for name, nlp in pipelines.items():
            cpu = time.process_time()
            for _ in nlp.pipe(texts, batch_size=64):
                pass
            cpu = time.process_time() - cpu
            best[name] = min(best[name], cpu)
            print(f"round {round_no + 1} {name:<13} {len(texts) / cpu:6.1f} docs/s per CPU s  "
                  f"({uptime()})", flush=True)
    reference = entities(pipelines["blis"], texts)
    print()
    print(f"{len(texts)} full-text documents, {words:,} words; best of {args.rounds} rounds")
    print("| kernel | docs/s per CPU s | words/s | vs BLIS selected | entities as BLIS |")
    print("|---|---|---|---|---|")
    for name, cpu in best.items():
        same = entities(pipelines[name], texts) == reference
        print(f"| {name} | {len(texts) / cpu:.1f} | {words / cpu:,.0f} | "
              f"{best['blis'] / cpu:.2f}x | {'identical' if same else 'DIFFERENT'} |")
    print(f"numpy vs BLIS generic: {best['blis-generic'] / best['numpy']:.2f}x")
    print(uptime())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
