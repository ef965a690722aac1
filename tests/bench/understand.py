"""Understanding bench: how fast flows.understand reads the corpus's texts, on one core.

Reads every text of tests/flows/data/understand_*.tsv (in its state) `--rounds` times, each
round timed text by text after one untimed warm-up round, and prints texts/s and the median and
p99 µs a text. Target (issue 13): median under 50 µs a text. See tests/bench/README.md.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from flows.understand import understand  # noqa: E402

CORPUS = sorted((REPO / "tests" / "flows" / "data").glob("understand_*.tsv"))
TARGET_MEDIAN_US = 50.0


def texts() -> list[tuple[str, str | None]]:
    found = []
    for path in CORPUS:
        for line in path.read_text("utf-8").splitlines():
            if line.strip() and not line.startswith("#"):
                _, text, state, *_ = line.split("\t")
                found.append((text.replace("\\n", "\n"), state or None))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="timed passes over the corpus")
    args = parser.parse_args(argv)
    corpus = texts()
    for text, state in corpus:  # warm-up: the word tables and the typo caches
        understand(text, state=state)
    timings: list[float] = []
    clock = time.perf_counter_ns
    started = clock()
    for _ in range(args.rounds):
        for text, state in corpus:
            t0 = clock()
            understand(text, state=state)
            timings.append((clock() - t0) / 1000)
    elapsed = (clock() - started) / 1e9
    timings.sort()
    median = statistics.median(timings)
    p99 = timings[int(len(timings) * 0.99)]
    print(f"{platform.python_implementation()} {platform.python_version()}, one core")
    verdict = "met" if median < TARGET_MEDIAN_US else "MISSED"
    print(
        f"{len(corpus)} texts x {args.rounds} rounds: {len(timings) / elapsed:,.0f} texts/s, "
        f"median {median:.1f} µs, p99 {p99:.1f} µs, max {timings[-1]:.0f} µs "
        f"(target: median < {TARGET_MEDIAN_US:g} µs: {verdict})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
