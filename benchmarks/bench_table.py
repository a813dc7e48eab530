"""How fast a table manifest (kind: ImageSetMetadataTable) of N rows validates.

Writes a CSV of N rows (accession → patient name, study description, study date) and
its table manifest, and, as the baseline measured in the same run, the same N
corrections as ordinary YAML manifests (ten per file). Times ``load_tree`` over each
(best of ``--repeat``) and prints rows per second and the ratio table / YAML.

    python benchmarks/bench_table.py [--rows N] [--repeat R]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from reconciler.manifest import load_tree

DATASTORE = "0123456789abcdef0123456789abcdef"

TABLE = f"""\
apiVersion: reconciler/v1
kind: ImageSetMetadataTable
metadata: {{name: ris-fixes}}
spec:
  datastoreId: {DATASTORE}
  table: ris-fixes.csv
  selector: {{accessionNumber: "{{AccessionNumber}}"}}
  set:
    Patient: {{PatientName: "{{PatientName}}"}}
    Study: {{StudyDescription: "{{StudyDescription}}", StudyDate: "{{StudyDate}}"}}
"""

MANIFEST = """\
apiVersion: reconciler/v1
kind: ImageSetMetadata
metadata: {{name: ris-fixes-{n}}}
spec:
  datastoreId: {datastore}
  selector: {{accessionNumber: "A{n}"}}
  set:
    Patient: {{PatientName: "DOE^JANE^{n}"}}
    Study: {{StudyDescription: "CT CHEST {n}", StudyDate: "20240115"}}
"""


def _best(folder: Path, repeat: int, expected: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        result = load_tree([folder])
        best = min(best, time.perf_counter() - started)
        if not result.ok or len(result.manifests) != expected:
            raise SystemExit(f"benchmark data did not validate: {result.problems[:3]}")
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        table, plain = Path(temp, "table"), Path(temp, "yaml")
        table.mkdir()
        plain.mkdir()
        (table / "ris.yaml").write_text(TABLE)
        rows = "".join(f"A{n},DOE^JANE^{n},CT CHEST {n},20240115\n" for n in range(args.rows))
        header = "AccessionNumber,PatientName,StudyDescription,StudyDate\n"
        (table / "ris-fixes.csv").write_text(header + rows)
        for start in range(0, args.rows, 10):
            docs = [MANIFEST.format(n=n, datastore=DATASTORE)
                    for n in range(start, min(start + 10, args.rows))]  # fmt: skip
            (plain / f"m{start:06d}.yaml").write_text("---\n".join(docs))
        table_seconds = _best(table, args.repeat, args.rows)
        plain_seconds = _best(plain, args.repeat, args.rows)
    print(f"table manifest: {args.rows} rows in {table_seconds:.2f} s "
          f"({args.rows / table_seconds:,.0f} rows/s)")  # fmt: skip
    print(f"baseline, the same as YAML manifests: {plain_seconds:.2f} s "
          f"({args.rows / plain_seconds:,.0f} manifests/s)")  # fmt: skip
    print(f"ratio table / YAML time: {table_seconds / plain_seconds:.2f}")


if __name__ == "__main__":
    main()
