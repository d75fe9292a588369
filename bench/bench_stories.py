"""Benchmark: articles placed in stories per second by the clusterer, with 10,000,
50,000 and 100,000 open stories, and the peak memory of each run, for two shapes of
article: bare headlines, and headlines with a summary.

Each level runs in a child process of its own (so its peak RSS is its own): it opens the
stories by `StoryClusterer.restore` (what a restart does), then times `place` on a
stream of articles, half of them joining open stories (a story's name and half its
headline words, in new wording) and half starting new ones, on one core. Headlines are
built from the English word-frequency table (the 20,000 commonest words after the first
500), so posting lists are as long as a real vocabulary makes them; with
``--text-words N`` each article also has a summary of N such words, as feed items do
(every article of an open story then keeps a MinHash signature and ~40 words). Those
summary words are all moderately rare, and spread evenly over the vocabulary: harder
than real summaries, whose words are mostly common. Nothing is written: this measures
the clusterer, which is the stage's CPU.

It also checks the answers at scale: how many of the joining articles went to their own
story, and how many new events joined some story, since candidate retrieval must not
trade correctness for speed.

    .venv/bin/python -m bench.bench_stories [--levels 10000 50000 100000] [--stream 3000]
                                            [--text-words 0 30]

Targets (issue 11): >= 1,000 articles/s with 50,000 open stories, < 500 MB. The rate is
printed per wall second and per CPU second of the child (pinned to one core): on a
shared machine the wall figure understates what one core does.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.harness import uptime

ROOT = Path(__file__).resolve().parents[1]

TARGET_RATE = 1000.0
TARGET_MB = 500.0
T0 = datetime(2026, 7, 1, tzinfo=UTC)


def _vocabulary() -> list[str]:
    from wordfreq import top_n_list

    return [w for w in top_n_list("en", 20_500)[500:] if w.isalpha()]


def _headline(rng: random.Random, vocabulary: list[str], words: int = 8) -> list[str]:
    return rng.sample(vocabulary, words)


def run_level(open_stories: int, stream: int, text_words: int = 30, seed: int = 11,
              exhaustive: bool = False) -> dict[str, float]:
    from consumers.stories.cluster import ClusterConfig, StoryClusterer, StoryInput

    rng = random.Random(seed)
    vocabulary = _vocabulary()
    config = ClusterConfig()
    if exhaustive:  # every word indexed and looked up, every story found scored
        config = replace(config, index_words=10**6, query_words=10**6,
                         posting_cap=10**9, candidates=10**9)
    clusterer = StoryClusterer(config)
    story_words: list[list[str]] = []
    began = time.perf_counter()
    for n in range(open_stories):
        words = _headline(rng, vocabulary)
        story_words.append(words)
        # A unique name per story, as events have (a place, a person, a product).
        title = " ".join([*words, f"zx{n}q"])
        text = " ".join(_headline(rng, vocabulary, text_words)) if text_words else ""
        clusterer.restore(StoryInput(f"s{n}", title, text=text,
                                     published=T0 + timedelta(seconds=n / 10),
                                     outlet=f"outlet{n % 50}", language="en"), f"s{n}", None)
    opened = time.perf_counter() - began
    from consumers.store.daemon import tune_gc_for_batches

    tune_gc_for_batches()  # what `newswatch stories run` does at start
    now = T0 + timedelta(seconds=open_stories / 10)
    articles, home = [], {}
    for i in range(stream):
        if i % 2 == 0:  # joins a story: its name and half its words, in new wording
            k = rng.randrange(open_stories)
            home[f"a{i}"] = f"s{k}"
            words = [*rng.sample(story_words[k], 4), f"zx{k}q", *_headline(rng, vocabulary, 3)]
        else:  # a new event
            words = [*_headline(rng, vocabulary), f"new{i}w"]
        text = " ".join(_headline(rng, vocabulary, text_words)) if text_words else ""
        # With its language, as the stage gets it from enrichment (guessing it from the
        # words, which the JSON-lines CLI does for lines without one, costs ~20% more).
        articles.append(StoryInput(f"a{i}", " ".join(words), text=text, published=now,
                                   outlet=f"outlet{i % 50}", language="en"))
    began, cpu_began = time.perf_counter(), time.process_time()
    placements = [clusterer.place(article) for article in articles]
    seconds = time.perf_counter() - began
    cpu = time.process_time() - cpu_began
    joined = sum(not p.new_story for p in placements)
    right = sum(home.get(p.id) == p.story for p in placements)
    strays = sum(p.id not in home and not p.new_story for p in placements)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"open_stories": open_stories, "rate": stream / seconds, "seconds": seconds,
            "cpu_rate": stream / cpu, "joined": joined, "right": right, "joiners": len(home),
            "strays": strays, "stream": stream, "open_seconds": opened, "peak_mb": peak_mb}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", type=int, nargs="+", default=[10_000, 50_000, 100_000])
    parser.add_argument("--stream", type=int, default=3000)
    parser.add_argument("--text-words", type=int, nargs="+", default=[0, 30],
                        help="words of summary per article, one run each (0: bare "
                             "headlines)")
    parser.add_argument("--exhaustive", action="store_true",
                        help="no retrieval bounds (slow): what an exhaustive search "
                             "answers, to compare the joiner counts with")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(run_level(args.child, args.stream, args.text_words[0],
                                   exhaustive=args.exhaustive)))
        return 0
    ok = True
    for text_words in args.text_words:
        print("\narticles: 9-word headlines, "
              + (f"{text_words}-word summaries" if text_words else "no summary"))
        print(f"uptime: {uptime()}")
        for level in args.levels:
            out = subprocess.run(
                ["taskset", "-c", "0", sys.executable, "-m", "bench.bench_stories",
                 "--child", str(level), "--stream", str(args.stream),
                 "--text-words", str(text_words),
                 *(["--exhaustive"] if args.exhaustive else [])],
                capture_output=True, text=True, check=True, cwd=ROOT)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            line = (f"{level:>7} open stories: {r['cpu_rate']:>6,.0f} articles per "
                    f"CPU-second ({r['rate']:>6,.0f}/s wall), peak {r['peak_mb']:>4.0f} MB; "
                    f"{r['right']}/{r['joiners']} joiners in their story, "
                    f"{r['strays']} new events joined one; opening took "
                    f"{r['open_seconds']:.0f} s")
            if level == 50_000 and not args.exhaustive:
                # Per CPU-second: the machine is shared, the wall rate says how shared.
                met = r["cpu_rate"] >= TARGET_RATE and r["peak_mb"] < TARGET_MB
                ok = ok and met
                line += (f"  [target >= {TARGET_RATE:,.0f}/s and < {TARGET_MB:.0f} MB: "
                         f"{'met' if met else 'NOT met'}]")
            print(line, flush=True)
        print(f"uptime: {uptime()}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
