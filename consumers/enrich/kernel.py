"""The matrix kernel under spaCy's NER: BLIS (thinc's default) or numpy's OpenBLAS.

NER spends most of its time in single-precision matrix products (``Ops.gemm``), which
thinc sends to cython-blis. cython-blis picks a kernel per processor family at run time
and falls back to its slowest, portable one ("generic") on a family it does not know:
AMD EPYC family 25 (Zen 3/4) ran there at 33 GFLOP/s against 91 for OpenBLAS, and routing
the products through numpy made NER 35% faster with identical entities (issue 17). On
an Intel Xeon with AVX-512 BLIS picks its AVX2 ("haswell") kernel while numpy's OpenBLAS
picks SkylakeX: measured here 109 against 157 GFLOP/s on NER's shapes, NER itself a few
per cent faster (see ``bench/bench_kernel.py``).

`select_kernel` decides once per process, before the model loads:

- ``blis``: thinc's default ops, unchanged.
- ``numpy``: `OpenBlasOps`, whose ``gemm`` is numpy's ``matmul`` (OpenBLAS, limited to
  one thread: enrichment runs one process per core).
- ``auto``: numpy when BLIS runs its generic kernel, or when a short timing of NER's
  largest product shows numpy at least ``AUTO_MARGIN`` faster; in both cases only when
  numpy's product agrees with BLIS's within float32 rounding (an OpenBLAS build that
  computes wrong results on a processor, as some older ones did, keeps BLIS).

`load_with_kernel` loads a pipeline under the chosen ops (thinc models take their ops
from `thinc.api.get_current_ops` when they are built). The per-transition products of
spaCy's parser loop go through thinc's C-level ``CBlas`` table, which stays BLIS: only
compiled code can change it.
"""

from __future__ import annotations

import ctypes
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, Literal, TypeVar

import numpy
from thinc.api import NumpyOps, get_current_ops, set_current_ops
from thinc.config import registry
from threadpoolctl import threadpool_info, threadpool_limits

log = logging.getLogger(__name__)

KernelSetting = Literal["auto", "blis", "numpy"]
KernelName = Literal["blis", "numpy"]
GENERIC = "generic"
AUTO_MARGIN = 1.10  # numpy must be this much faster to be chosen over a native BLIS kernel
# NER's largest product: a batch's tokens (~2,000 here) x the 288-wide window of the
# maxout encoder, against its 288 x 288 weights (shapes logged from en_core_web_sm).
PROBE_SHAPE = (2048, 288, 288)
PROBE_ROUNDS = 9
T = TypeVar("T")


@registry.ops("OpenBlasOps")
class OpenBlasOps(NumpyOps):  # type: ignore[misc]  # thinc's classes are untyped
    """thinc's CPU ops with every ``gemm`` computed by numpy (its OpenBLAS)."""

    name = "openblas"

    def __init__(self, device_type: str = "cpu", device_id: int = -1, **_: Any) -> None:
        super().__init__(device_type, device_id, use_blis=False)

    def gemm(self, x: Any, y: Any, out: Any = None, trans1: bool = False,
             trans2: bool = False) -> Any:
        """``x @ y`` (either transposed first), into ``out`` when given, float32 only,
        the contract of thinc's `NumpyOps.gemm`."""
        if x.ndim != 2 or y.ndim != 2:
            raise ValueError(f"gemm needs 2-dimensional arrays, got {x.ndim} and {y.ndim}")
        if x.dtype != numpy.float32 or y.dtype != numpy.float32:
            raise ValueError(f"gemm needs float32 arrays, got {x.dtype} and {y.dtype}")
        a = x.T if trans1 else x
        b = y.T if trans2 else y
        if out is None:
            return numpy.matmul(a, b)
        return numpy.matmul(a, b, out=out)


@dataclass(frozen=True)
class KernelChoice:
    """What was chosen and why, with what was measured (for the start-up log line)."""

    kernel: KernelName
    setting: KernelSetting
    reason: str
    blis_arch: str | None
    blas: str  # numpy's BLAS: library, version and the kernel it picked
    blis_gflops: float | None = None
    numpy_gflops: float | None = None

    def describe(self) -> str:
        return f"{self.kernel} ({self.reason})"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def blis_arch() -> str | None:
    """The sub-configuration (kernel set) cython-blis selected on this processor, e.g.
    ``haswell``, ``zen2`` or ``generic``; None when BLIS cannot be asked (its symbols
    are not exported by that build)."""
    try:
        import blis.cy

        library = ctypes.CDLL(blis.cy.__file__)
        library.bli_arch_query_id.restype = ctypes.c_int
        library.bli_arch_string.restype = ctypes.c_char_p
        library.bli_arch_string.argtypes = [ctypes.c_int]
        name = library.bli_arch_string(library.bli_arch_query_id())
    except (ImportError, OSError, AttributeError):
        return None
    return name.decode() if isinstance(name, bytes) else None


def numpy_blas() -> str:
    """numpy's BLAS as ``library version (kernel), N threads`` from threadpoolctl."""
    for info in threadpool_info():
        if info.get("user_api") == "blas":
            return (f"{info.get('internal_api')} {info.get('version')} "
                    f"({info.get('architecture', 'unknown kernel')}), "
                    f"{info.get('num_threads')} thread(s)")
    return "unknown"


def decide(setting: KernelSetting, arch: str | None, blis_gflops: float | None,
           numpy_gflops: float | None, agree: bool) -> tuple[KernelName, str]:
    """The kernel for ``setting`` given what was measured, and the reason in words."""
    if setting != "auto":
        return setting, f"forced by the setting ({setting})"
    if not agree:
        return "blis", "numpy's product differs from BLIS's beyond float32 rounding"
    if arch == GENERIC:
        return "numpy", "BLIS runs its generic fallback kernel on this processor"
    if blis_gflops is None or numpy_gflops is None:
        return "blis", "not measured"
    if numpy_gflops >= AUTO_MARGIN * blis_gflops:
        return "numpy", (f"numpy {numpy_gflops:.0f} GFLOP/s against BLIS '{arch}' "
                         f"{blis_gflops:.0f} GFLOP/s")
    return "blis", (f"BLIS '{arch}' {blis_gflops:.0f} GFLOP/s, numpy {numpy_gflops:.0f} "
                    "GFLOP/s: not enough faster")


def best_seconds(run: Callable[[], object], rounds: int) -> float:
    """The fastest wall-clock time of ``rounds`` runs of ``run`` (other load only ever
    slows a run down). The kernel probe and bench/bench_kernel.py time with it."""
    best = float("inf")
    for _ in range(rounds):
        began = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - began)
    return best


def measure(shape: tuple[int, int, int] = PROBE_SHAPE, rounds: int = PROBE_ROUNDS
            ) -> tuple[float, float, bool]:
    """(BLIS GFLOP/s, numpy GFLOP/s, agree) on one product of ``shape`` (m, k, n), each
    the best of ``rounds`` taken alternately; about 50 ms. ``agree``: the two results are
    equal within float32 rounding of a k-term sum (relative to the largest term)."""
    import blis.py

    m, k, n = shape
    generator = numpy.random.default_rng(17)
    x = generator.standard_normal((m, k), dtype=numpy.float32)
    y = generator.standard_normal((n, k), dtype=numpy.float32)
    by_blis = blis.py.gemm(x, y, trans2=True)
    by_numpy = numpy.matmul(x, y.T)
    scale = float(numpy.abs(x).max() * numpy.abs(y).max() * k)
    agree = bool(numpy.abs(by_blis - by_numpy).max() <= 1e-5 * scale)
    # Alternating, best of each: on a busy machine both get the same chances of a quiet
    # moment (measured one after the other, a burst of other load decided the choice).
    blis_s = numpy_s = float("inf")
    for _ in range(rounds):
        blis_s = min(blis_s, best_seconds(lambda: blis.py.gemm(x, y, trans2=True), 1))
        numpy_s = min(numpy_s, best_seconds(lambda: numpy.matmul(x, y.T), 1))
    flop = 2.0 * m * k * n
    return flop / blis_s / 1e9, flop / numpy_s / 1e9, agree


def select_kernel(setting: KernelSetting = "auto") -> KernelChoice:
    """Decide the kernel for this process (see the module docstring) and log it.

    numpy's BLAS is limited to one thread here whatever is chosen: enrichment is one
    process per core, and OpenBLAS threads would only fight the other process for it.
    """
    threadpool_limits(1, user_api="blas")
    arch = blis_arch()
    blis_gflops = numpy_gflops = None
    agree = True
    if setting == "auto":
        blis_gflops, numpy_gflops, agree = measure()
    kernel, reason = decide(setting, arch, blis_gflops, numpy_gflops, agree)
    choice = KernelChoice(kernel=kernel, setting=setting, reason=reason, blis_arch=arch,
                          blas=numpy_blas(),
                          blis_gflops=None if blis_gflops is None else round(blis_gflops, 1),
                          numpy_gflops=None if numpy_gflops is None else round(numpy_gflops, 1))
    log.info("matrix kernel selected", extra={"kernel": kernel, "setting": setting,
                                              "reason": reason, "blis_arch": arch,
                                              "numpy_blas": choice.blas})
    return choice


@contextmanager
def kernel_ops(kernel: KernelName) -> Iterator[None]:
    """Within the block, thinc builds models with the ops of ``kernel``."""
    previous = get_current_ops()
    set_current_ops(OpenBlasOps() if kernel == "numpy" else NumpyOps())
    try:
        yield
    finally:
        set_current_ops(previous)


def load_with_kernel(load: Callable[[], T], kernel: KernelName) -> T:
    """``load()`` (a spaCy pipeline) with its models built on the ops of ``kernel``."""
    with kernel_ops(kernel):
        return load()


def kernel_in_use(nlp: Any) -> KernelName:
    """Which kernel the NER model of a loaded pipeline computes with."""
    return "numpy" if isinstance(nlp.get_pipe("ner").model.ops, OpenBlasOps) else "blis"
