"""Start-up cost of the command line: wall time of `logiclens --version`, `--help` and each `COMMAND --help`.

Each command runs in a fresh interpreter (as a user types it), ``--repeat`` times; the median
is reported with the heavy libraries each one imported (none should: the parser imports no
numpy, pandas, scipy or torch).

    .venv/bin/python benchmarks/startup.py [--repeat 11]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

COMMANDS = [
    ["--version"],
    ["--help"],
    ["search", "--help"],
    ["dissect", "--help"],
    ["text", "explain", "--help"],
    ["polytope", "analyze", "--help"],
    ["report", "--help"],
]
PROBE = (
    "import sys\nfrom logiclens.cli import main\ncode = main(sys.argv[1:])\n"
    "heavy = sorted({'numpy', 'pandas', 'scipy', 'torch'} & set(sys.modules))\n"
    "print('HEAVY ' + ','.join(heavy), file=sys.stderr)\n"
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=11)
    args = parser.parse_args()
    rows = []
    for argv in COMMANDS:
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            done = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True)
            times.append(time.perf_counter() - start)
        marker = [line for line in done.stderr.splitlines() if line.startswith("HEAVY")]
        heavy = marker[-1].removeprefix("HEAVY").strip() if marker else "?"
        rows.append({"command": "logiclens " + " ".join(argv), "median_s": round(statistics.median(times), 3),
                     "max_s": round(max(times), 3), "heavy_imports": heavy or "none"})  # fmt: skip
    baseline = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        baseline.append(time.perf_counter() - start)
    for row in rows:
        print(f"{row['command']:<36} median {row['median_s']:.3f} s  max {row['max_s']:.3f} s  "
              f"heavy imports: {row['heavy_imports']}")  # fmt: skip
    print(f"{'python -c pass':<36} median {statistics.median(baseline):.3f} s")
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
