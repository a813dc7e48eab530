"""The service's errors, one class each, with the HTTP status AHI.md gives.

Serialized as the service does: status code, ``x-amzn-ErrorType`` header and a JSON body
``{"__type": ..., "message": ...}``, so boto3 raises the modelled exception class.
"""

from __future__ import annotations


class ServiceError(Exception):
    code = "InternalServerException"
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ValidationException(ServiceError):
    code, status = "ValidationException", 400


class ServiceQuotaExceededException(ServiceError):
    code, status = "ServiceQuotaExceededException", 402


class AccessDeniedException(ServiceError):
    code, status = "AccessDeniedException", 403


class ResourceNotFoundException(ServiceError):
    code, status = "ResourceNotFoundException", 404


class ConflictException(ServiceError):
    code, status = "ConflictException", 409


class ThrottlingException(ServiceError):
    code, status = "ThrottlingException", 429


class InternalServerException(ServiceError):
    code, status = "InternalServerException", 500


class UnknownOperationException(ServiceError):
    code, status = "UnknownOperationException", 404
