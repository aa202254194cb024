"""How long ``bench`` takes to answer when it has nothing to compute: ``bench list``, ``--help``,
and an argument error (``bench run --defense nosuch``).

Each command runs ``--repeats`` times as a fresh process (the installed ``bench`` entry point,
as a user types it); the script records wall time and the CPU time the process used
(user + system, from ``resource.getrusage``), and the same for ``python -c pass`` (the
interpreter's own start, the floor no command can go under).  It also checks that none of
torch, ART, pandas, scikit-learn or matplotlib was imported (``python -X importtime`` of the
command).  The machine's load average is recorded: wall time on a busy machine is mostly
waiting for a core, so CPU time is the figure that says what the command itself costs.

Usage::

    .venv/bin/python benchmarks/cli_startup.py                # 7 repeats, writes benchmarks/cli_startup.csv
    .venv/bin/python benchmarks/cli_startup.py --repeats 3 --out /tmp/startup.csv
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(sys.executable).with_name("bench")
HEAVY = ("torch", "art", "pandas", "sklearn", "matplotlib", "scipy")

COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "bench list": [str(BENCH), "list"],
    "bench --help": [str(BENCH), "--help"],
    "bench run --help": [str(BENCH), "run", "--help"],
    "bench run --defense nosuch": [str(BENCH), "run", "--defense", "nosuch"],
    "bench run --defense dundy": [str(BENCH), "run", "--defense", "dundy"],
}


def timed(command: list[str]) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds of the child, exit status) of one run of ``command``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.returncode


def heavy_imports(command: list[str]) -> list[str]:
    """The heavy top-level packages ``command`` imports (``python -X importtime``)."""
    argv = [sys.executable, "-X", "importtime", "-c",
            "import sys; from bench.cli import main; sys.argv = ['bench', *sys.argv[1:]]; main()", *command[1:]]
    if command[0] == sys.executable:
        argv = [sys.executable, "-X", "importtime", *command[1:]]
    err = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True).stderr
    names = {line.split("|")[-1].strip().split(".")[0] for line in err.splitlines() if line.startswith("import time:")}
    return sorted(names & set(HEAVY))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "cli_startup.csv")
    args = parser.parse_args()
    rows = []
    for name, command in COMMANDS.items():
        timed(command)  # warm the file cache
        runs = [timed(command) for _ in range(args.repeats)]
        walls, cpus = [r[0] for r in runs], [r[1] for r in runs]
        row = {"command": name, "repeats": args.repeats, "exit_status": runs[-1][2],
               "wall_median_s": round(statistics.median(walls), 3), "wall_max_s": round(max(walls), 3),
               "cpu_median_s": round(statistics.median(cpus), 3),
               "load_average_1min": round(os.getloadavg()[0], 2), "cpu_count": os.cpu_count(),
               "heavy_imports": " ".join(heavy_imports(command)) or "none"}
        rows.append(row)
        print(f"{name:28} wall median {row['wall_median_s']:6.2f} s (max {row['wall_max_s']:5.2f}), "
              f"CPU {row['cpu_median_s']:5.2f} s, load {row['load_average_1min']}, exit {row['exit_status']}, "
              f"heavy imports: {row['heavy_imports']}", flush=True)
    with args.out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
