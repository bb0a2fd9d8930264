"""Where the test suite's CPU goes: every Python process it starts, grouped by what it runs.

    .venv/bin/python benchmarks/suite_cpu.py                       # the whole suite as `make test` runs it
    .venv/bin/python benchmarks/suite_cpu.py tests/test_io.py -q   # any pytest arguments

For the run only, a `.pth` file in the venv's site-packages makes every Python process of the venv (pytest workers,
stages, commands, dvc, gto) append its own CPU time (user + system) at exit to a log; it is removed afterwards, also when
the run fails. Prints the load average before and after, and a table: CPU seconds, process count and mean per group.
Processes that are not Python (git, chromium, sshd, node) are not counted: the difference to `time`'s total is theirs.
"""

from __future__ import annotations

import collections
import os
import re
import site
import subprocess
import sys
import tempfile
from pathlib import Path

HOOK = """import atexit, os, resource, sys
def _log():
    try:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        with open(os.environ["SUITE_CPU_LOG"], "a") as out:
            out.write(f"{usage.ru_utime + usage.ru_stime:.3f}\\t{' '.join(sys.argv)[:300]}\\n")
    except Exception:
        pass
if os.environ.get("SUITE_CPU_LOG"):
    atexit.register(_log)
"""
DEFAULT_ARGUMENTS = ["-n", "3", "--dist", "loadfile", "--no-loadscope-reorder", "-q", "-p", "no:cacheprovider"]


def group(argv: str) -> str:
    """What a process ran: `dvc <command>`, `stages/<stage>`, `commands/<command>`, pytest, or its first word."""
    words = argv.split()
    if not words:
        return "?"
    if words[0].endswith(("/dvc", "dvc/__main__.py")):
        return f"dvc {words[1] if len(words) > 1 else ''}".strip()
    if "xdist" in argv or words[0].endswith(("pytest", "pytest/__main__.py")):
        return "pytest"
    return re.sub(r".*/(stages|commands|benchmarks)/", r"\1/", words[0])


def main(arguments: list[str]) -> int:
    packages = Path(site.getsitepackages()[0])
    module, pth = packages / "zz_suite_cpu.py", packages / "zz_suite_cpu.pth"
    with tempfile.TemporaryDirectory() as scratch:
        log = Path(scratch) / "cpu.log"
        module.write_text(HOOK)
        pth.write_text("import zz_suite_cpu\n")
        try:
            print(f"load average before: {' '.join(f'{value:.2f}' for value in os.getloadavg())}", flush=True)
            command = [sys.executable, "-m", "pytest", *(arguments or DEFAULT_ARGUMENTS)]
            result = subprocess.run(command, env={**os.environ, "SUITE_CPU_LOG": str(log)}, check=False)
            print(f"load average after: {' '.join(f'{value:.2f}' for value in os.getloadavg())}")
        finally:
            pth.unlink(missing_ok=True)
            module.unlink(missing_ok=True)
        totals: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0])
        lines = log.read_text().splitlines() if log.exists() else []
        for line in lines:
            seconds, _, argv = line.partition("\t")
            totals[group(argv)][0] += float(seconds)
            totals[group(argv)][1] += 1
    print(f"\n{len(lines)} Python processes, {sum(spent for spent, _ in totals.values()):.0f} CPU-s\n")
    print("| CPU s | processes | mean s | what |\n|---:|---:|---:|---|")
    for name, (spent, count) in sorted(totals.items(), key=lambda item: -item[1][0]):
        print(f"| {spent:.1f} | {count:.0f} | {spent / count:.2f} | {name} |")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
