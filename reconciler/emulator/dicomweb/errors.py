"""The errors DICOMweb adds to the service's own (exceptions.py): same wire shape,
``{"__type", "message"}`` with ``x-amzn-ErrorType``, statuses from PS3.18 §8.5."""

from __future__ import annotations

from reconciler.emulator.exceptions import ServiceError


class NotAcceptableException(ServiceError):
    """No representation the Accept header allows (AHI's frames page names this 406)."""

    code, status = "NotAcceptableException", 406


class PayloadTooLargeException(ServiceError):
    code, status = "PayloadTooLargeException", 413


class UnsupportedMediaTypeException(ServiceError):
    code, status = "UnsupportedMediaTypeException", 415
