"""Refusals of the services (annotator.access's ServiceError, raised by projects, labeling,
importing, modelloop...) become HTTP responses: the status of the ServiceError subclass, and
its sentence as `{"detail": message}`.

Registered per view (ServiceErrorsMixin) so the project settings keep DRF's default handler.
"""
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions
from rest_framework.serializers import as_serializer_error
from rest_framework.views import exception_handler as drf_exception_handler

from annotator.access import ServiceError


class ServiceRefusal(exceptions.APIException):
    def __init__(self, error):
        super().__init__(detail=error.message)
        self.status_code = error.status


def exception_handler(exc, context):
    if isinstance(exc, ServiceError):
        exc = ServiceRefusal(exc)
    elif isinstance(exc, DjangoValidationError):
        # Model full_clean() inside a service: same shape as a serializer's field errors.
        exc = exceptions.ValidationError(as_serializer_error(exc))
    return drf_exception_handler(exc, context)


class ServiceErrorsMixin:
    """For API views that call services: answer ServiceError with its status and message."""

    def get_exception_handler(self):
        return exception_handler
