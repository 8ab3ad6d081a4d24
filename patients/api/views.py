"""JSON API v1 endpoints.

Each view fetches, lets a serializer parse, and hands the write to
`patients.services`. Permissions come from `RolePermission` (the model
permissions that roles grant). Nothing is ever deleted through the API.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.utils.functional import cached_property
from rest_framework import filters, generics

from patients import services
from patients.api.serializers import (
    CycleSerializer,
    DrawSerializer,
    ImagingSerializer,
    PatientSerializer,
    TherapyLineSerializer,
    edit_arguments,
)
from patients.models import CTCDraw, ImagingAssessment, Patient, TherapyLine, TreatmentCycle

_READ_AND_EDIT = ["get", "patch", "head", "options"]


def _new(validated: dict[str, Any]) -> dict[str, Any]:
    """The fields of a new record (no version or edit reason yet)."""
    changes, _version, _reason = edit_arguments(validated)
    return changes


class PatientList(generics.ListCreateAPIView):
    queryset = Patient.objects.all()
    serializer_class = PatientSerializer
    filter_backends = [filters.SearchFilter]
    search_fields = ["mrn", "given_name", "family_name"]

    def perform_create(self, serializer: PatientSerializer) -> None:
        serializer.instance = services.register_patient(
            by=self.request.user, **_new(serializer.validated_data)
        )


class PatientDetail(generics.RetrieveUpdateAPIView):
    queryset = Patient.objects.all()
    serializer_class = PatientSerializer
    http_method_names = _READ_AND_EDIT

    def perform_update(self, serializer: PatientSerializer) -> None:
        changes, version, reason = edit_arguments(serializer.validated_data)
        serializer.instance = services.update_patient(
            patient=serializer.instance,
            by=self.request.user,
            changes=changes,
            version=version,
            reason=reason,
        )


class TherapyLineList(generics.ListCreateAPIView):
    queryset = TherapyLine.objects.all()
    serializer_class = TherapyLineSerializer
    pagination_class = None  # a patient has a handful of lines

    @cached_property
    def patient(self) -> Patient:
        return get_object_or_404(Patient, pk=self.kwargs["pk"])

    def get_queryset(self) -> QuerySet[TherapyLine]:
        return TherapyLine.objects.filter(patient=self.patient).order_by("line_number")

    def perform_create(self, serializer: TherapyLineSerializer) -> None:
        serializer.instance = services.add_therapy_line(
            patient=self.patient, by=self.request.user, **serializer.validated_data
        )


class CycleList(generics.ListCreateAPIView):
    queryset = TreatmentCycle.objects.all()
    serializer_class = CycleSerializer
    pagination_class = None

    @cached_property
    def line(self) -> TherapyLine:
        return get_object_or_404(
            TherapyLine.objects.select_related("patient"), pk=self.kwargs["pk"]
        )

    def get_queryset(self) -> QuerySet[TreatmentCycle]:
        return TreatmentCycle.objects.filter(therapy_line=self.line).order_by("number")

    def perform_create(self, serializer: CycleSerializer) -> None:
        serializer.instance = services.plan_cycle(
            line=self.line, by=self.request.user, **_new(serializer.validated_data)
        )


class CycleDetail(generics.RetrieveUpdateAPIView):
    queryset = TreatmentCycle.objects.select_related("therapy_line")
    serializer_class = CycleSerializer
    http_method_names = _READ_AND_EDIT

    def perform_update(self, serializer: CycleSerializer) -> None:
        changes, version, reason = edit_arguments(serializer.validated_data)
        serializer.instance = services.update_cycle(
            cycle=serializer.instance,
            by=self.request.user,
            changes=changes,
            version=version,
            reason=reason,
        )


class DrawList(generics.ListCreateAPIView):
    queryset = CTCDraw.objects.all()
    serializer_class = DrawSerializer
    pagination_class = None  # a patient's series is read whole, oldest first

    @cached_property
    def patient(self) -> Patient:
        return get_object_or_404(Patient, pk=self.kwargs["pk"])

    def get_queryset(self) -> QuerySet[CTCDraw]:
        return CTCDraw.objects.for_patient(self.patient).select_related("entered_by")

    def perform_create(self, serializer: DrawSerializer) -> None:
        serializer.instance = services.record_draw(
            patient=self.patient, by=self.request.user, **_new(serializer.validated_data)
        )


class DrawDetail(generics.RetrieveUpdateAPIView):
    queryset = CTCDraw.objects.select_related("patient", "entered_by")
    serializer_class = DrawSerializer
    http_method_names = _READ_AND_EDIT

    def perform_update(self, serializer: DrawSerializer) -> None:
        changes, version, reason = edit_arguments(serializer.validated_data)
        serializer.instance = services.update_draw(
            draw=serializer.instance,
            by=self.request.user,
            changes=changes,
            version=version,
            reason=reason,
        )


class ImagingList(generics.ListCreateAPIView):
    queryset = ImagingAssessment.objects.all()
    serializer_class = ImagingSerializer
    pagination_class = None

    @cached_property
    def patient(self) -> Patient:
        return get_object_or_404(Patient, pk=self.kwargs["pk"])

    def get_queryset(self) -> QuerySet[ImagingAssessment]:
        return (
            ImagingAssessment.objects.filter(patient=self.patient)
            .select_related("entered_by")
            .order_by("performed_on", "id")
        )

    def perform_create(self, serializer: ImagingSerializer) -> None:
        serializer.instance = services.record_imaging(
            patient=self.patient, by=self.request.user, **serializer.validated_data
        )
