"""How fast ``load_tree`` validates a large manifest tree.

Generates 10,000 valid manifests in a temporary folder, twice: ten manifests per file
(1,000 files) and one manifest per file (10,000 files, in 100 folders), then times
``load_tree`` over each (best of ``--repeat`` runs) and prints wall time and
manifests per second.

    python benchmarks/bench_validate.py [--manifests N] [--repeat R]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from reconciler.manifest import load_tree

DATASTORE = "0123456789abcdef0123456789abcdef"

MANIFEST = """\
apiVersion: reconciler/v1
kind: ImageSetMetadata
metadata:
  name: bench-{n}
  labels: {{team: radiology}}
spec:
  selector:
    studyInstanceUID: "1.2.826.0.1.3680043.8.498.{n}"
  set:
    Patient:
      PatientName: DOE^JANE^{n}
      PatientBirthDate: "19700101"
    Study:
      StudyDescription: CT CHEST W/O CONTRAST
      StudyDate: "20240115"
      AccessionNumber: A{n}
    Series:
      "1.2.826.0.1.3680043.8.498.{n}.1":
        SeriesDescription: AXIAL 5MM
        SeriesNumber: "3"
        Instances:
          "1.2.826.0.1.3680043.8.498.{n}.1.1":
            ImageComments: checked
            InstanceNumber: "1"
  remove:
    Study: [ReferringPhysicianName]
"""


def generate(root: Path, count: int, per_file: int) -> None:
    (root / "reconciler.yaml").write_text(f"datastoreId: {DATASTORE}\nregion: us-east-1\n")
    for start in range(0, count, per_file):
        folder = root / f"group-{start // (per_file * 100):03d}"
        folder.mkdir(exist_ok=True)
        text = "---\n".join(MANIFEST.format(n=n) for n in range(start, start + per_file))
        (folder / f"m{start:06d}.yaml").write_text(text)


def run(count: int, per_file: int, repeat: int) -> float:
    with tempfile.TemporaryDirectory() as temp:
        root = Path(temp)
        (root / ".git").mkdir()  # the project file search stops here
        generate(root, count, per_file)
        timings = []
        for _ in range(repeat):  # best of N, as timeit does: the least disturbed run
            started, cpu_started = time.perf_counter(), time.process_time()
            result = load_tree([root])
            timings.append((time.perf_counter() - started, time.process_time() - cpu_started))
        elapsed, cpu = min(timings)
    if not result.ok or len(result.manifests) != count:
        sys.exit(f"benchmark manifests did not validate: {result.problems[:3]}")
    print(
        f"{count} manifests, {per_file} per file: {elapsed:.2f} s wall "
        f"({cpu:.2f} s CPU), {count / elapsed:,.0f} manifests/s"
    )
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifests", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per variant; best is shown")
    args = parser.parse_args()
    run(args.manifests, 10, args.repeat)
    run(args.manifests, 1, args.repeat)


if __name__ == "__main__":
    main()
