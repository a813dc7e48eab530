"""DICOM knowledge shared by the manifest validator, the engine and the emulator.

Nothing here talks to a network or to boto3: the data dictionary comes from pydicom,
the HealthImaging attribute levels from ``ahi_levels.json`` (copied from
``shared/reference/ahi_levels.json``, itself transcribed from the service's
"metadata normalization" page; its ``source`` and ``notes`` keys say where from).
"""
