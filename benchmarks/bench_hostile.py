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
    return {
        "benign": _fill(size, lambda n: BENIGN_DOC.format(n=n)),
        "flow-list": "[" * half + "]" * half,
        "flow-map": "{a: " * (size // 5) + "1" + "}" * (size // 5),
        "block": "".join(f"{'  ' * i}a:\n" for i in range(block_depth)),
        "unknown-keys": unknown + _fill(size, lambda n: f"  unknownKey{n}: 1\n"),
        "bomb": 'l0: &l0 ["lol", "lol"]\n'
        + "".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 12))
        + "spec: *l11\n",
    }


def seconds_to_load(root: Path, name: str, text: str, repeat: int) -> float:
    folder = root / name
    folder.mkdir()
    (folder / "m.yaml").write_text(text)
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        load_tree([folder])
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kb", type=int, default=60, help="size of each file (KB)")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many loads")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / ".git").mkdir()
        files = hostile_files(args.kb * 1024)
        baseline = seconds_to_load(root, "benign", files.pop("benign"), args.repeat)
        print(f"{'file':<14} {'bytes':>9} {'seconds':>9} {'× benign':>9}")
        print(f"{'benign':<14} {args.kb * 1024:>9} {baseline:>9.4f} {1.0:>9.2f}")
        for name, text in files.items():
            took = seconds_to_load(root, name, text, args.repeat)
            print(f"{name:<14} {len(text):>9} {took:>9.4f} {took / baseline:>9.2f}")


if __name__ == "__main__":
    main()
