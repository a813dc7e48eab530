"""Local HealthImaging: a wire-compatible emulator of AWS HealthImaging on SQLite.

It must not import the engine: it is the service, seen from the outside only through
HTTP. ``LocalHealthImaging`` (server.py) runs it; ``choices.py`` lists what it decides
where the real service is undocumented.
"""
