"""Where the test suite's wall time goes, worker by worker: reads the file `TESTS_TIMELINE` (tests/conftest.py) wrote.

    TESTS_TIMELINE=/tmp/timeline.tsv make test      # or any pytest run with -n
    .venv/bin/python benchmarks/suite_timeline.py /tmp/timeline.tsv

Prints, per worker, when it started its first test and ended its last, how long it was inside a test (the rest is
waiting for work or starting up), then the modules by wall time (a module runs on one worker under `--dist loadfile`)
with the worker, start and end offsets from the first test's start, so the modules that end last, the critical path,
are plain to see.
"""

from __future__ import annotations

import collections
import sys
from pathlib import Path


def main(path: Path) -> None:
    rows = [line.split("\t") for line in path.read_text().splitlines() if line.strip()]
    tests = [(worker, float(start), float(end), node.split("::")[0]) for worker, start, end, node in rows]
    origin = min(start for _, start, _, _ in tests)
    finish = max(end for _, _, end, _ in tests)
    print(f"{len(tests)} tests, {finish - origin:.0f} s from the first test's start to the last one's end\n")
    print(f"{'worker':<8} {'first s':>8} {'last s':>8} {'in tests s':>10} {'idle s':>8}")
    workers: dict[str, list[tuple[float, float]]] = collections.defaultdict(list)
    for worker, start, end, _ in tests:
        workers[worker].append((start, end))
    for worker, spans in sorted(workers.items()):
        first, last = min(s for s, _ in spans) - origin, max(e for _, e in spans) - origin
        busy = sum(e - s for s, e in spans)
        print(f"{worker:<8} {first:>8.0f} {last:>8.0f} {busy:>10.0f} {finish - origin - busy:>8.0f}")
    modules: dict[str, list[tuple[str, float, float]]] = collections.defaultdict(list)
    for worker, start, end, module in tests:
        modules[module].append((worker, start, end))
    print(f"\n{'module':<44} {'worker':<7} {'start':>6} {'end':>6} {'wall s':>7} {'tests':>6}")
    ordered = sorted(modules.items(), key=lambda item: -max(e for _, _, e in item[1]))
    for module, runs in ordered:
        start, end = min(s for _, s, _ in runs) - origin, max(e for _, _, e in runs) - origin
        worker = ",".join(sorted({w for w, _, _ in runs}))
        print(f"{module:<44} {worker:<7} {start:>6.0f} {end:>6.0f} {end - start:>7.0f} {len(runs):>6}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: benchmarks/suite_timeline.py TIMELINE_FILE")
    main(Path(sys.argv[1]))
