"""The package's version, in a module of its own so any layer can import it without
importing the package's front door (which loads the session)."""

from __future__ import annotations

__version__ = "0.1.0"
