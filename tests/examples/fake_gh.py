"""A stand-in for the ``gh`` CLI, answering the calls apply-on-merge.yml makes, from a
folder the test fills (``FAKE_GH``: ``pulls.json``, ``reviews.json``, ``runs.json``,
``artifacts/``), and
recording each call in ``calls.log`` there. GitHub itself is not reachable here."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

STATE = Path(os.environ["FAKE_GH"])


def main(argv: list[str]) -> int:
    with (STATE / "calls.log").open("a") as log:
        log.write(" ".join(argv) + "\n")
    if argv[:1] == ["api"] and "-X" in argv and argv[argv.index("-X") + 1] == "DELETE":
        artifact = argv[-1].rsplit("/", 1)[-1]
        for folder in (STATE / "artifacts").iterdir():
            if (folder / ".id").read_text() == artifact:
                shutil.rmtree(folder)
                return 0
        print("HTTP 404: Not Found", file=sys.stderr)
        return 1
    if argv[:1] == ["api"] and argv[1].endswith("/pulls"):
        print((STATE / "pulls.json").read_text())
        return 0
    if argv[:1] == ["api"] and argv[1].endswith("/reviews"):  # --jq: approvers, unique
        reviews = json.loads((STATE / "reviews.json").read_text())
        print(",".join(sorted({r["user"]["login"] for r in reviews if r["state"] == "APPROVED"})))
        return 0
    if argv[:1] == ["api"] and argv[1].endswith("/artifacts"):  # --jq '… .id'
        name = argv[argv.index("--jq") + 1].split('"')[1].replace('\\"', "")
        print((STATE / "artifacts" / name / ".id").read_text())
        return 0
    if argv[:2] == ["run", "list"]:
        runs = json.loads((STATE / "runs.json").read_text())
        commit = argv[argv.index("--commit") + 1]
        found = [r for r in runs if r["head_sha"] == commit and r["status"] == "completed"]
        print(found[0]["databaseId"] if found else "")
        return 0
    if argv[:2] == ["run", "download"]:
        name, target = argv[argv.index("--name") + 1], Path(argv[argv.index("--dir") + 1])
        source = STATE / "artifacts" / name
        if not source.is_dir():
            print(f"no artifact matches {name}", file=sys.stderr)
            return 1
        target.mkdir(parents=True, exist_ok=True)
        for file in source.iterdir():
            if file.name != ".id":
                shutil.copy(file, target / file.name)
        return 0
    print(f"fake gh: no answer for {argv}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
