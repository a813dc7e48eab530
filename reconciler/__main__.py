"""``python -m reconciler``: the same command line as ``reconciler``."""

from __future__ import annotations

from reconciler.cli import main

if __name__ == "__main__":
    main()
