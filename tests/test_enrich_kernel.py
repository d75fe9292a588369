"""The matrix kernel under NER: the choice, its log line, and identical output both ways."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy
import pytest
from thinc.api import NumpyOps

from consumers.enrich.enrich import Enricher
from consumers.enrich.kernel import (
    GENERIC,
    OpenBlasOps,
    blis_arch,
    decide,
    kernel_in_use,
    kernel_ops,
    measure,
    numpy_blas,
    select_kernel,
)
from consumers.enrich.nlp import load_pipeline
from consumers.enrich.topics import DEFAULT_TOPICS_PATH
from newswatch.cli import main
from newswatch.cli.enrich import enricher_from, read_items
from newswatch.settings import Settings
from schemas.topics_file import load_topics

LABELLED = Path(__file__).parent / "data" / "labelled"
BLIS_ARCHS = {"skx", "knl", "knc", "haswell", "sandybridge", "penryn", "zen", "zen2", "zen3",
              "zen4", "excavator", "steamroller", "piledriver", "bulldozer", "thunderx2",
              "cortexa57", "cortexa53", "cortexa15", "cortexa9", "firestorm", "power9",
              "power10", "power7", "bgq", GENERIC}


@pytest.mark.parametrize(("setting", "arch", "blis", "numpy_", "agree", "expected"), [
    ("blis", GENERIC, 30.0, 90.0, True, "blis"),  # forced wins over everything
    ("numpy", "haswell", 200.0, 90.0, True, "numpy"),
    ("auto", GENERIC, None, None, True, "numpy"),  # the generic fallback: numpy at once
    ("auto", GENERIC, 33.0, 91.0, False, "blis"),  # unless numpy computes something else
    ("auto", "haswell", 109.0, 157.0, True, "numpy"),
    ("auto", "zen2", 100.0, 105.0, True, "blis"),  # within the margin: keep the default
    ("auto", "skx", 150.0, 140.0, True, "blis"),
    ("auto", None, None, None, True, "blis"),  # nothing known: the default
])
def test_decide(setting: str, arch: str | None, blis: float | None, numpy_: float | None,
                agree: bool, expected: str) -> None:
    kernel, reason = decide(setting, arch, blis, numpy_, agree)  # type: ignore[arg-type]
    assert kernel == expected
    assert reason


def test_blis_reports_its_sub_configuration() -> None:
    assert blis_arch() in BLIS_ARCHS


def test_numpy_blas_is_described_and_limited_to_one_thread() -> None:
    select_kernel("blis")
    described = numpy_blas()
    assert "1 thread(s)" in described
    assert described != "unknown"


def test_measure_agrees_and_is_positive() -> None:
    blis_gflops, numpy_gflops, agree = measure((256, 64, 64), rounds=2)
    assert agree
    assert blis_gflops > 0
    assert numpy_gflops > 0


@pytest.mark.parametrize(("trans1", "trans2"), [(False, False), (True, False), (False, True),
                                                (True, True)])
def test_openblas_gemm_equals_blis_gemm(trans1: bool, trans2: bool) -> None:
    generator = numpy.random.default_rng(1)
    x = generator.standard_normal((53, 53), dtype=numpy.float32)  # square: any transpose fits
    y = generator.standard_normal((53, 53), dtype=numpy.float32)
    expected = NumpyOps().gemm(x, y, trans1=trans1, trans2=trans2)
    ops = OpenBlasOps()
    got = ops.gemm(x, y, trans1=trans1, trans2=trans2)
    numpy.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)
    out = numpy.zeros_like(expected)
    assert ops.gemm(x, y, out=out, trans1=trans1, trans2=trans2) is out
    numpy.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-4)


def test_openblas_gemm_refuses_what_numpy_ops_refuses() -> None:
    ops = OpenBlasOps()
    with pytest.raises(ValueError, match="float32"):
        ops.gemm(numpy.ones((2, 2)), numpy.ones((2, 2)))
    with pytest.raises(ValueError, match="2-dimensional"):
        ops.gemm(numpy.ones(2, dtype=numpy.float32), numpy.ones((2, 2), dtype=numpy.float32))


@pytest.fixture(scope="module")
def corpus() -> list[tuple[str, str]]:
    # The two sets the test was written on (107 articles): a glob of the folder grew it to
    # every labelled file (1,166 items, ~45 s more), the same code path ten times over.
    items = []
    for path in (LABELLED / "articles.jsonl", LABELLED / "extra.jsonl"):
        with path.open(encoding="utf-8") as lines:
            items += [(item.title, item.text) for item in read_items(lines, str(path))]
    return items


def test_entities_and_topic_hits_identical_both_ways(corpus: list[tuple[str, str]]) -> None:
    """The fixed corpus (both labelled sets, 107 real articles) through a pipeline built on
    each kernel: every entity, count, topic hit, score and evidence span the same."""
    from consumers.enrich.enrich import document_text

    topics = load_topics(DEFAULT_TOPICS_PATH)
    results = {}
    for kernel in ("blis", "numpy"):
        with kernel_ops(kernel):  # type: ignore[arg-type]
            nlp = load_pipeline()
        assert kernel_in_use(nlp) == kernel
        enricher = Enricher(nlp, topics)
        results[kernel] = enricher.analyse_many(
            document_text(title, content=text) for title, text in corpus)
    assert len(results["blis"]) == len(corpus)
    assert sum(len(a.entities) for a in results["blis"]) > 500  # the corpus is not trivial
    assert sum(len(a.hits) for a in results["blis"]) > 40
    for by_blis, by_numpy in zip(results["blis"], results["numpy"], strict=True):
        assert by_numpy.entities == by_blis.entities
        assert by_numpy.hits == by_blis.hits
        assert by_numpy.scores == by_blis.scores


def test_enricher_from_settings_uses_the_forced_kernel_and_logs_it(
        caplog: pytest.LogCaptureFixture) -> None:
    args = argparse.Namespace(topics=None, model=None, relevance=None, rules_only=False)
    with caplog.at_level(logging.INFO, logger="consumers.enrich.kernel"):
        enricher = enricher_from(args, Settings(enrich_kernel="numpy"))
    assert isinstance(enricher.nlp.get_pipe("ner").model.ops, OpenBlasOps)
    record = next(r for r in caplog.records if r.getMessage() == "matrix kernel selected")
    assert record.__dict__["kernel"] == "numpy"
    assert record.__dict__["setting"] == "numpy"
    assert record.__dict__["blis_arch"] == blis_arch()


@pytest.mark.parametrize("setting", ["blis", "numpy", "auto"])
def test_print_config_shows_the_kernel(setting: str, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("NEWSWATCH_ENRICH_KERNEL", setting)
    assert main(["--print-config"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["enrich_kernel"] == setting
    selected = printed["enrich_kernel_selected"]
    assert selected["setting"] == setting
    assert selected["kernel"] in ("blis", "numpy")
    if setting != "auto":
        assert selected["kernel"] == setting
    else:
        assert selected["blis_gflops"] > 0
        assert selected["numpy_gflops"] > 0
    assert selected["blis_arch"] == blis_arch()


def test_an_invalid_kernel_setting_is_refused(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("NEWSWATCH_ENRICH_KERNEL", "mkl")
    assert main(["--print-config"]) == 2
    assert "NEWSWATCH_ENRICH_KERNEL" in capsys.readouterr().err
