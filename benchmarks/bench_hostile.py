"""Hostile manifests cost time linear in their size: each as a ratio to a benign file.

A pull request's manifests are read by CI before anybody reviews them, and by the
pre-commit hook on a developer's machine. This loads hostile files (deep flow nesting,
deep block nesting, thousands of unknown keys, a YAML bomb) through the same loader
``reconciler validate`` uses, and prints each one's time against a benign manifest
file of the same size measured in the same run, so the figure does not depend on how
busy the machine is. Linear cost keeps every ratio a small constant as --kb grows.

    python benchmarks/bench_hostile.py [--kb 60] [--repeat 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from reconciler.manifest import load_tree

BENIGN_DOC = """---
apiVersion: reconciler/v1
kind: ImageSetMetadata
metadata: {{name: fix-{n}}}
spec:
  datastoreId: 2aa75d103f7f45ab977b0e93f00e6fe9
  selector: {{imageSetId: {n:032x}}}
  set:
    Study: {{StudyDescription: CT CHEST {n}}}
"""


HOSTILE_VALUE_DOC = BENIGN_DOC.replace("CT CHEST {n}", '"\\e[2J\\aCT {n}"')


def _fill(size: int, piece: Callable[[int], str]) -> str:
    parts: list[str] = []
    total = n = 0
    while total < size:
        parts.append(piece(n))
        total += len(parts[-1])
        n += 1
    return "".join(parts)


def hostile_files(size: int) -> dict[str, str]:
    half = size // 2
    block_depth = int((size / 2) ** 0.5)  # indentation grows with depth: size ~ depth²
    unknown = "apiVersion: reconciler/v1\nkind: ImageSetMetadata\nmetadata: {name: x}\nspec:\n"
    keywords = BENIGN_DOC.format(n=0).split("    Study:")[0].lstrip("-\n") + "    Study:\n"
    return {
        "benign": _fill(size, lambda n: BENIGN_DOC.format(n=n)),
        "flow-list": "[" * half + "]" * half,
        "flow-map": "{a: " * (size // 5) + "1" + "}" * (size // 5),
        "block": "".join(f"{'  ' * i}a:\n" for i in range(block_depth)),
        "unknown-keys": unknown + _fill(size, lambda n: f"  unknownKey{n}: 1\n"),
        # Misspelled DICOM keywords: each would scan the whole dictionary for a
        # did-you-mean; a bounded number per file do (reconciler.suggest.budget).
        "misspelled-keywords": keywords + _fill(size, lambda n: f"      StudyDescripton{n}: x\n"),
        # Values with control characters (ESC, BEL): refused, one problem each.
        "control-chars": _fill(size, lambda n: HOSTILE_VALUE_DOC.format(n=n)),
        "bomb": 'l0: &l0 ["lol", "lol"]\n'
        + "".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 12))
        + "spec: *l11\n",
    }


def seconds_to_load(root: Path, name: str, text: str, repeat: int) -> tuple[float, int]:
    """The best time of ``repeat`` loads, and how many problems were reported."""
    folder = root / name
    folder.mkdir()
    (folder / "m.yaml").write_text(text)
    best, reported = float("inf"), 0
    for _ in range(repeat):
        started = time.perf_counter()
        reported = len(load_tree([folder]).problems)
        best = min(best, time.perf_counter() - started)
    return best, reported


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kb", type=int, default=60, help="size of each file (KB)")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many loads")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / ".git").mkdir()
        files = hostile_files(args.kb * 1024)
        baseline, _ = seconds_to_load(root, "benign", files.pop("benign"), args.repeat)
        print(f"{'file':<20} {'bytes':>9} {'seconds':>9} {'× benign':>9} {'problems':>9}")
        print(f"{'benign':<20} {args.kb * 1024:>9} {baseline:>9.4f} {1.0:>9.2f} {0:>9}")
        for name, text in files.items():
            took, reported = seconds_to_load(root, name, text, args.repeat)
            print(f"{name:<20} {len(text):>9} {took:>9.4f} {took / baseline:>9.2f} {reported:>9}")


if __name__ == "__main__":
    main()
