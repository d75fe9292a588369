"""The full-text bench's CPU arithmetic and busy spans (bench/fulltext_timeline.py)."""

from __future__ import annotations

import pytest

from bench.fulltext_timeline import CpuSampler, budget


def test_budget_splits_ner_from_the_rest_and_says_what_the_ratio_allows() -> None:
    # 800 articles, NER 50 ms each (40 CPU s), 20 CPU s of everything else on 2 cores.
    figures = budget(800, {"enrich-0": 24.0, "enrich-1": 24.0, "producer": 4.0,
                           "broker": 8.0}, raw_cpu_per_doc=0.05, cores=2, target_rate=40)
    assert figures["cpu_ms_per_article"] == 75.0
    assert figures["target_cpu_ms_per_article"] == 50.0
    assert figures["ner_cpu_ms_per_article"] == 50.0
    assert figures["non_ner_cpu_s"] == 20.0
    assert figures["non_ner_cpu_ms_per_article"] == 25.0
    assert figures["ratio_allowed"] == pytest.approx(40 / 60, abs=1e-3)
    assert figures["rate_ceiling_no_overhead"] == 40.0


def test_budget_without_a_raw_run_gives_the_totals_only() -> None:
    figures = budget(100, {"enrich-0": 5.0}, raw_cpu_per_doc=None, cores=2, target_rate=40)
    assert figures == {"cpu_ms_per_article": 50.0, "target_cpu_ms_per_article": 50.0}


def test_busy_span_is_from_the_first_to_the_last_interval_at_half_a_core() -> None:
    sampler = CpuSampler(every_s=1.0)
    # enrich-0 works from t=101 to t=104 (a core each second), idles at t=104-106.
    cpu = [0.0, 0.1, 1.1, 2.1, 3.1, 3.15, 3.2]
    sampler.samples = [(100.0 + i, {"enrich-0": c}) for i, c in enumerate(cpu)]
    assert sampler.busy_span("enrich-0", since=100.0) == (1.0, 4.0)
    assert sampler.busy_span("enrich-1", since=100.0) is None
    assert sampler.cpu_at("enrich-0", 103.5) == 2.1


def test_a_raw_run_slowed_by_other_load_is_flagged() -> None:
    from bench.bench_fulltext import raw_disturbed

    # 2 processes at 18 docs per CPU s do 36 docs/s on two whole cores.
    assert raw_disturbed({"processes": 2, "docs_per_s": 8.8, "docs_per_cpu_s": 18.1})
    assert not raw_disturbed({"processes": 2, "docs_per_s": 36.8, "docs_per_cpu_s": 19.6})
