"""Run the reliability suite and print the figures docs/reliability.md quotes.

    .venv/bin/python tests/reliability/figures.py [pytest options, e.g. -n 2]

Each fault test appends one JSON line (requests it sent, faults injected, update calls
that reached the service and landed, data lost) to the file $RELIABILITY_FIGURES names;
this script points that at a temporary file, runs pytest on tests/reliability, and
prints the table and the totals. Its exit code is pytest's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
FIGURES_ENV = "RELIABILITY_FIGURES"  # as in reliability_support.py


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory() as temp:
        target = Path(temp) / "figures.jsonl"
        env = {**os.environ, FIGURES_ENV: str(target)}
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(HERE)]
        code = subprocess.call([*command, *argv], env=env, cwd=HERE.parents[1])
        lines = target.read_text().splitlines() if target.exists() else []
    rows = sorted((json.loads(line) for line in lines), key=lambda r: str(r["test"]))
    print()
    print("| fault | requests | faults injected | update calls sent / landed | data lost |")
    print("|---|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['test']} | {row['requests']} | {row['faults_injected']} | "
              f"{row['update_requests']} / {row['updates_landed']} | {row['data_lost']} |")  # fmt: skip
    total = {key: sum(int(r[key]) for r in rows)
             for key in ("requests", "faults_injected", "update_requests", "updates_landed",
                         "data_lost")}  # fmt: skip
    survived = sum(int(r["faults_injected"]) for r in rows if int(r["data_lost"]) == 0)
    print(f"| **total ({len(rows)} scenarios)** | {total['requests']} | "
          f"{total['faults_injected']} | {total['update_requests']} / {total['updates_landed']} "
          f"| {total['data_lost']} |")  # fmt: skip
    print()
    print(f"Requests: {total['requests']}; faults injected: {total['faults_injected']}; "
          f"faults survived: {survived}; data lost: {total['data_lost']}.")  # fmt: skip
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
