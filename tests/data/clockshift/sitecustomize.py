"""A machine whose wall clock is off: loaded by Python at start-up (``sitecustomize``)
when this folder is on PYTHONPATH, it shifts every wall-clock reading of the process by
``CLOCK_OFFSET_SECONDS`` (time.time, time.time_ns, datetime.now/utcnow/today), as a
mis-set clock does. The monotonic clock is left alone: a wrong wall clock does not
change how fast time passes. (libfaketime shifts the clocks in C, but its timed waits
break Python's threading.)"""

from __future__ import annotations

import datetime as _datetime
import os
import time as _time

_OFFSET = float(os.environ.get("CLOCK_OFFSET_SECONDS", "0") or 0)

if _OFFSET:
    _real_time, _real_time_ns = _time.time, _time.time_ns
    _time.time = lambda: _real_time() + _OFFSET  # type: ignore[assignment]
    _time.time_ns = lambda: _real_time_ns() + int(_OFFSET * 1e9)  # type: ignore[assignment]
    _delta = _datetime.timedelta(seconds=_OFFSET)
    _Real = _datetime.datetime

    class _AnyDatetime(type):
        """Real datetimes (made by arithmetic or parsing) still count as datetimes."""

        def __instancecheck__(cls, instance: object) -> bool:
            return isinstance(instance, _Real)

        def __subclasscheck__(cls, subclass: type) -> bool:
            return issubclass(subclass, _Real)

    class _Shifted(_Real, metaclass=_AnyDatetime):
        @classmethod
        def now(cls, tz=None):  # type: ignore[no-untyped-def, override]
            return _Real.now(tz) + _delta

        @classmethod
        def utcnow(cls):  # type: ignore[no-untyped-def, override]
            return _Real.utcnow() + _delta

        @classmethod
        def today(cls):  # type: ignore[no-untyped-def, override]
            return _Real.today() + _delta

    _datetime.datetime = _Shifted  # type: ignore[misc]
