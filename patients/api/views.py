"""JSON API v1 endpoints.

Each view fetches through `patients.access` (the one gate for patient data),
lets a serializer parse, and hands the write to `patients.services`. Each
declares the model permissions it needs in `required_perms`, which
`RolePermission` checks. Nothing is ever deleted through the API.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any, TypeVar

from django.db.models import Model, QuerySet
from django.utils import timezone
from django.utils.functional import cached_property
from rest_framework import filters, generics
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer
from rest_framework.views import APIView

from patients import access, audit, rules, services
from patients.accounts.permissions import model_perms
from patients.api.pagination import CountedAheadPagination, PageNumberPagination
from patients.api.serializers import (
    AcknowledgementSerializer,
    CycleSerializer,
    DrawSerializer,
    EnteredInErrorSerializer,
    ImagingSerializer,
    PatientSerializer,
    TherapyLineSerializer,
    WorklistQuerySerializer,
    acknowledgement_data,
    draw_time,
    flag_data,
    give_series,
    series_context,
)
from patients.assessment import (
    PatientSeries,
    ResultItem,
    WorklistItem,
    results_page,
    series_for,
    worklist_page,
)
from patients.models import (
    AccessAction,
    Acknowledgement,
    CTCDraw,
    ImagingAssessment,
    Patient,
    TherapyLine,
    TreatmentCycle,
)

_READ_AND_EDIT = ["get", "patch", "head", "options"]
M = TypeVar("M", bound=Model)


def _new(validated: dict[str, Any]) -> dict[str, Any]:
    """The fields of a new record (no version or edit reason yet)."""
    return services.split_edit(validated).changes


def _edited(serializer: BaseSerializer[M]) -> M:
    """The row a PATCH edits: DRF's `update` builds its serializer on `get_object()`."""
    assert serializer.instance is not None
    return serializer.instance


class AuditedRead:
    """Records every successful GET in the access log, with the patients it returned.

    Each view says whose data its answer holds in `patients_read`; the default
    is the view's `patient`. Detail views keep the object they fetched, so
    saying whose it is costs no query.
    """

    read_action = AccessAction.API_READ

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)  # type: ignore[misc]
        if request.method == "GET" and response.status_code == 200:
            what = self.read_target(request, response)
            ids = self.patients_read(response)
            audit.record_read(request, self.read_action, patient_ids=ids, what=what)
        return response

    def get_object(self) -> Any:
        self.object_read = super().get_object()  # type: ignore[misc]
        return self.object_read

    def patients_read(self, response: Response) -> list[int]:
        return [self.patient.pk]  # type: ignore[attr-defined]

    def read_target(self, request: Request, response: Response) -> str:
        # The path only: a query string may carry a search for a name or an MRN.
        return f"GET {request.path}"


class UnderARecord:
    """A list under one record (a patient's draws, a cycle's acknowledgements): the record
    is looked up through the gate before anything else, so a record the user may not see
    answers 404 whatever the body of a POST, exactly as an unknown id."""

    parent: str  # the cached property that fetches the record through `access`

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # type: ignore[misc]
        getattr(self, self.parent)


class PatientList(AuditedRead, generics.ListCreateAPIView[Patient]):
    required_perms = model_perms(Patient)
    serializer_class = PatientSerializer
    filter_backends = [filters.SearchFilter]
    search_fields = ["mrn", "given_name", "family_name"]

    def get_queryset(self) -> QuerySet[Patient]:
        return access.patients(self.request.user).prefetch_related("care_teams")

    def patients_read(self, response: Response) -> list[int]:
        return [p["id"] for p in response.data["results"]]

    def perform_create(self, serializer: BaseSerializer[Patient]) -> None:
        serializer.instance = services.register_patient(
            by=self.request.user, **_new(serializer.validated_data)
        )


class PatientDetail(AuditedRead, generics.RetrieveUpdateAPIView[Patient]):
    required_perms = model_perms(Patient)
    serializer_class = PatientSerializer
    http_method_names = _READ_AND_EDIT

    def get_queryset(self) -> QuerySet[Patient]:
        return access.patients(self.request.user).prefetch_related("care_teams")

    def patients_read(self, response: Response) -> list[int]:
        return [self.object_read.pk]

    def perform_update(self, serializer: BaseSerializer[Patient]) -> None:
        changes, version, reason = services.split_edit(serializer.validated_data)
        serializer.instance = services.update_patient(
            patient=_edited(serializer),
            by=self.request.user,
            changes=changes,
            version=version,
            reason=reason,
        )


class TherapyLineList(UnderARecord, AuditedRead, generics.ListCreateAPIView[TherapyLine]):
    parent = "patient"
    required_perms = model_perms(TherapyLine)
    serializer_class = TherapyLineSerializer
    pagination_class = None  # a patient has a handful of lines

    @cached_property
    def patient(self) -> Patient:
        return access.patient(self.request.user, self.kwargs["pk"], related=())

    def get_queryset(self) -> QuerySet[TherapyLine]:
        return access.lines(self.request.user).filter(patient=self.patient).order_by("line_number")

    def perform_create(self, serializer: BaseSerializer[TherapyLine]) -> None:
        serializer.instance = services.add_therapy_line(
            patient=self.patient, by=self.request.user, **serializer.validated_data
        )


class CycleList(UnderARecord, AuditedRead, generics.ListCreateAPIView[TreatmentCycle]):
    parent = "line"
    required_perms = model_perms(TreatmentCycle)
    serializer_class = CycleSerializer
    pagination_class = None

    def patients_read(self, response: Response) -> list[int]:
        return [self.line.patient_id]

    @cached_property
    def line(self) -> TherapyLine:
        return access.line(self.request.user, self.kwargs["pk"])

    def get_queryset(self) -> QuerySet[TreatmentCycle]:
        return access.cycles(self.request.user).filter(therapy_line=self.line).order_by("number")

    def perform_create(self, serializer: BaseSerializer[TreatmentCycle]) -> None:
        serializer.instance = services.plan_cycle(
            line=self.line, by=self.request.user, **_new(serializer.validated_data)
        )


class CycleDetail(AuditedRead, generics.RetrieveUpdateAPIView[TreatmentCycle]):
    required_perms = model_perms(TreatmentCycle)
    serializer_class = CycleSerializer
    http_method_names = _READ_AND_EDIT

    def get_queryset(self) -> QuerySet[TreatmentCycle]:
        return access.cycles(self.request.user).select_related("therapy_line")

    def patients_read(self, response: Response) -> list[int]:
        return [self.object_read.therapy_line.patient_id]

    def perform_update(self, serializer: BaseSerializer[TreatmentCycle]) -> None:
        changes, version, reason = services.split_edit(serializer.validated_data)
        serializer.instance = services.update_cycle(
            cycle=_edited(serializer),
            by=self.request.user,
            changes=changes,
            version=version,
            reason=reason,
        )


class DrawList(UnderARecord, AuditedRead, generics.ListCreateAPIView[CTCDraw]):
    parent = "patient"
    required_perms = model_perms(CTCDraw)
    serializer_class = DrawSerializer
    pagination_class = None  # a patient's series is read whole, oldest first

    @cached_property
    def patient(self) -> Patient:
        return access.patient(self.request.user, self.kwargs["pk"], related=())

    def get_queryset(self) -> QuerySet[CTCDraw]:
        # `list` reads the assessed series instead; this is for DRF's own use.
        return access.draws(self.request.user).filter(patient=self.patient)

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        series = series_for(self.patient)
        context = {**self.get_serializer_context(), "series": {self.patient.pk: series}}
        return Response(DrawSerializer(series.all_draws(), many=True, context=context).data)

    def perform_create(self, serializer: BaseSerializer[CTCDraw]) -> None:
        saved = services.record_draw_and_assess(
            patient=self.patient, by=self.request.user, **_new(serializer.validated_data)
        )
        # The answer shows the draw as the save assessed it: the rules run once.
        give_series(serializer, saved.series)
        serializer.instance = saved.draw


class DrawDetail(AuditedRead, generics.RetrieveUpdateAPIView[CTCDraw]):
    required_perms = model_perms(CTCDraw)
    serializer_class = DrawSerializer
    http_method_names = _READ_AND_EDIT

    def get_queryset(self) -> QuerySet[CTCDraw]:
        return access.draws(self.request.user).select_related("patient", "entered_by")

    def patients_read(self, response: Response) -> list[int]:
        return [self.object_read.patient_id]

    def perform_update(self, serializer: BaseSerializer[CTCDraw]) -> None:
        changes, version, reason = services.split_edit(serializer.validated_data)
        saved = services.update_draw_and_assess(
            draw=_edited(serializer),
            by=self.request.user,
            changes=changes,
            version=version,
            reason=reason,
        )
        give_series(serializer, saved.series)
        serializer.instance = saved.draw


class EnteredInError(APIView):
    """Mark a wrong record as entered in error, with a reason (and the version read, if
    given). It stays on record. A subclass says how the record is read and marked."""

    output: type[BaseSerializer[Any]]

    def read(self, user: Any, pk: int) -> Model:
        raise NotImplementedError

    def mark(self, record: Any, **change: Any) -> Model:
        raise NotImplementedError

    def post(self, request: Request, pk: int) -> Response:
        record = self.read(request.user, pk)
        body = EnteredInErrorSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        marked = self.mark(
            record,
            by=request.user,
            reason=body.validated_data["reason"],
            version=body.validated_data.get("version"),
        )
        return Response(self.output(marked, context={"request": request}).data)


class DrawEnteredInError(EnteredInError):
    """Mark a wrong draw as entered in error, with a reason. It stays on record."""

    # Marking a draw in error changes it; the POST has always needed add_ctcdraw too.
    required_perms = model_perms(CTCDraw, POST=("add", "change"))
    output = DrawSerializer

    def read(self, user: Any, pk: int) -> CTCDraw:
        return access.draw(user, pk)

    def mark(self, record: CTCDraw, **change: Any) -> CTCDraw:
        return services.mark_draw_entered_in_error(draw=record, **change)


class ImagingList(UnderARecord, AuditedRead, generics.ListCreateAPIView[ImagingAssessment]):
    parent = "patient"
    required_perms = model_perms(ImagingAssessment)
    serializer_class = ImagingSerializer
    pagination_class = None

    @cached_property
    def patient(self) -> Patient:
        return access.patient(self.request.user, self.kwargs["pk"], related=())

    def get_queryset(self) -> QuerySet[ImagingAssessment]:
        return (
            access.imaging(self.request.user)
            .filter(patient=self.patient)
            .select_related("entered_by")
            .order_by("performed_on", "id")
        )

    def perform_create(self, serializer: BaseSerializer[ImagingAssessment]) -> None:
        serializer.instance = services.record_imaging(
            patient=self.patient, by=self.request.user, **_new(serializer.validated_data)
        )


class ImagingDetail(AuditedRead, generics.RetrieveUpdateAPIView[ImagingAssessment]):
    """One imaging assessment; PATCH corrects it (with `version` and a `reason`), as the
    pages do: the earlier values stay in its history."""

    required_perms = model_perms(ImagingAssessment)
    serializer_class = ImagingSerializer
    http_method_names = _READ_AND_EDIT

    def get_queryset(self) -> QuerySet[ImagingAssessment]:
        return access.imaging(self.request.user).select_related("patient", "entered_by")

    def patients_read(self, response: Response) -> list[int]:
        return [self.object_read.patient_id]

    def perform_update(self, serializer: BaseSerializer[ImagingAssessment]) -> None:
        changes, version, reason = services.split_edit(serializer.validated_data)
        serializer.instance = services.update_imaging(
            imaging=_edited(serializer),
            by=self.request.user,
            changes=changes,
            version=version,
            reason=reason,
        )


class ImagingEnteredInError(EnteredInError):
    """Mark wrong imaging as entered in error, with a reason. It stays on record."""

    required_perms = model_perms(ImagingAssessment, POST=("add", "change"))
    output = ImagingSerializer

    def read(self, user: Any, pk: int) -> ImagingAssessment:
        return access.imaging_record(user, pk)

    def mark(self, record: ImagingAssessment, **change: Any) -> ImagingAssessment:
        return services.mark_imaging_entered_in_error(imaging=record, **change)


class PatientAssessment(AuditedRead, APIView):
    """Every draw with its rate, category, interval and flags, and the upcoming cycles."""

    required_perms = model_perms(Patient)

    def patients_read(self, response: Response) -> list[int]:
        return [response.data["patient"]]

    def get(self, request: Request, pk: int) -> Response:
        patient = access.patient(request.user, pk, related=())
        series = series_for(patient)
        context = series_context(request, series)
        today = timezone.localdate()
        return Response(
            {
                "patient": patient.pk,
                "cancer_type": patient.cancer_type,
                "cutoff": series.cutoff,
                "draws": DrawSerializer(series.draws, many=True, context=context).data,
                "upcoming_cycles": [
                    _cycle_data(c, series, today) for c in series.upcoming_cycles()
                ],
                "given_cycles": [_cycle_data(c, series, today) for c in series.given_cycles()],
            }
        )


def cycle_state_data(series: PatientSeries, found: rules.CycleAssessment) -> dict[str, Any]:
    """A cycle's pre-cycle fields, as cycle objects and worklist items carry them."""
    opens, day_1 = found.window
    return {
        "first_scheduled_date": found.cycle.first_scheduled_date or found.cycle.scheduled_date,
        "window": {"from": opens, "to": day_1},
        "pre_cycle_state": _STATE_NAMES[found.state],
        "acknowledged": series.cycle_acknowledged(found),
        "severity": found.severity,
        "flags": [flag_data(f) for f in found.flags],
    }


# The API's names of the pre-cycle states (issue 13's contract: "missing", not the flag).
_STATE_NAMES = {state: state.value for state in rules.PreCycleState}


def _cycle_data(cycle: TreatmentCycle, series: PatientSeries, today: date) -> dict[str, Any]:
    return {
        "id": cycle.pk,
        "therapy_line": cycle.therapy_line_id,
        "number": cycle.number,
        "scheduled_date": cycle.scheduled_date,
        "given_date": cycle.given_date,
        "status": cycle.status,
        **cycle_state_data(series, series.cycle_assessment(cycle, today)),
    }


class Worklist(AuditedRead, APIView):
    """Upcoming cycles due in `[from, from + days)`, most severe first, 50 a page.

    The database sorts and pages by the cycles' stored review rank; only the
    page's cycles are assessed, live, for the flags returned.
    """

    required_perms = model_perms(TreatmentCycle)
    read_action = AccessAction.WORKLIST

    def patients_read(self, response: Response) -> list[int]:
        return [item["patient"]["id"] for item in response.data["items"]]

    def read_target(self, request: Request, response: Response) -> str:
        page = request.query_params.get("page")
        suffix = f" page {page}" if page and page != "1" else ""
        return f"GET {request.path} {response.data['from']}..{response.data['to']}{suffix}"

    def get(self, request: Request) -> Response:
        query = WorklistQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        start = query.validated_data.get("from") or timezone.localdate()
        days = query.validated_data["days"]
        pager = PageNumberPagination()
        items = worklist_page(
            start,
            days,
            # DRF hands the cycles due to Django's paginator, which counts and slices them
            # (DueCycles does both); DRF's stubs ask for a QuerySet or a Sequence instead.
            lambda due: pager.paginate_queryset(due, request, view=self) or [],  # type: ignore[arg-type]
            among=access.cycles(request.user),
        ).items
        assert pager.page is not None  # set by paginate_queryset, which raises on a bad page
        return Response(
            {
                "from": start,
                "to": start + timedelta(days=days),
                "count": pager.page.paginator.count,
                "next": pager.get_next_link(),
                "previous": pager.get_previous_link(),
                "items": _worklist_items_data(items, request),
            }
        )


def _worklist_items_data(items: list[WorklistItem], request: Request) -> list[dict[str, Any]]:
    # The page's latest draws in one query (the rows' series hold the assessments, not
    # the records), shown by one serializer: DRF copies a serializer's fields each time
    # one is built, which per row was a third of the API's time.
    ids = [i.latest_draw_id for i in items if i.latest_draw_id is not None]
    by_id = access.draws(request.user).select_related("entered_by").in_bulk(ids)
    context = series_context(request, *{i.patient.pk: i.series for i in items}.values())
    drawn = DrawSerializer([by_id[pk] for pk in ids], many=True, context=context).data
    shown = dict(zip(ids, drawn, strict=True))
    return [_worklist_item_data(i, shown.get(i.latest_draw_id or 0)) for i in items]


def _worklist_item_data(item: WorklistItem, latest: dict[str, Any] | None) -> dict[str, Any]:
    patient, cycle = item.patient, item.cycle
    return {
        "patient": {"id": patient.pk, "mrn": patient.mrn, "name": patient.name},
        "cycle": {
            "id": cycle.pk,
            "number": cycle.number,
            "scheduled_date": cycle.scheduled_date,
            "status": cycle.status,
            "regimen": cycle.therapy_line.regimen,
            "line_number": cycle.therapy_line.line_number,
        },
        "latest_draw": latest,
        **cycle_state_data(item.series, item.assessment),
        "acknowledgements": [acknowledgement_data(a) for a in item.acknowledgements],
    }


class AcknowledgementList(UnderARecord, AuditedRead, generics.ListCreateAPIView[Acknowledgement]):
    parent = "cycle"
    """A nurse or oncologist records having seen a cycle's flags, with a note."""

    required_perms = model_perms(Acknowledgement)
    serializer_class = AcknowledgementSerializer
    pagination_class = None

    def patients_read(self, response: Response) -> list[int]:
        return [self.cycle.therapy_line.patient_id]

    @cached_property
    def cycle(self) -> TreatmentCycle:
        return access.cycle(self.request.user, self.kwargs["pk"])

    def get_queryset(self) -> QuerySet[Acknowledgement]:
        return (
            access.acknowledgements(self.request.user)
            .filter(cycle=self.cycle)
            .select_related("acknowledged_by")
            .order_by("acknowledged_at", "id")
        )

    def perform_create(self, serializer: BaseSerializer[Acknowledgement]) -> None:
        serializer.instance = services.acknowledge_cycle(
            cycle=self.cycle, by=self.request.user, note=serializer.validated_data["note"]
        )


class ResultAcknowledgementList(
    UnderARecord, AuditedRead, generics.ListCreateAPIView[Acknowledgement]
):
    parent = "draw"
    """A nurse or oncologist acknowledges a result (the draw's sample), with a note."""

    required_perms = model_perms(Acknowledgement)
    serializer_class = AcknowledgementSerializer
    pagination_class = None

    def patients_read(self, response: Response) -> list[int]:
        return [self.draw.patient_id]

    @cached_property
    def draw(self) -> CTCDraw:
        return access.draw(self.request.user, self.kwargs["pk"])

    def get_queryset(self) -> QuerySet[Acknowledgement]:
        series = series_for(self.draw.patient)
        found = series.by_draw_id.get(self.draw.pk)
        ids = [a.pk for a in series.acknowledgements_of_result(found)] if found else []
        return (
            access.acknowledgements(self.request.user)
            .filter(pk__in=ids)
            .select_related("acknowledged_by")
            .order_by("acknowledged_at", "id")
        )

    def perform_create(self, serializer: BaseSerializer[Acknowledgement]) -> None:
        serializer.instance = services.acknowledge_result(
            draw=self.draw, by=self.request.user, note=serializer.validated_data["note"]
        )


class ResultsToReview(AuditedRead, APIView):
    """Every result with a high or review flag not yet acknowledged, most severe first,
    then oldest first, 50 a page: whether or not a cycle is due. Counted only 1,000
    items beyond the page (`count_capped`)."""

    required_perms = model_perms(CTCDraw)
    read_action = AccessAction.RESULTS

    def patients_read(self, response: Response) -> list[int]:
        return [item["patient"]["id"] for item in response.data["items"]]

    def read_target(self, request: Request, response: Response) -> str:
        page = request.query_params.get("page")
        return f"GET {request.path}" + (f" page {page}" if page and page != "1" else "")

    def get(self, request: Request) -> Response:
        pager = CountedAheadPagination()
        items = results_page(
            lambda waiting: pager.paginate_queryset(waiting, request, view=self) or [],
            among=access.draws(request.user),
        ).items
        assert pager.page is not None  # set by paginate_queryset, which raises on a bad page
        context = series_context(request, *{i.patient.pk: i.series for i in items}.values())
        drawn = DrawSerializer([i.draw for i in items], many=True, context=context).data
        return Response(
            {
                **pager.count_fields(),
                "next": pager.get_next_link(),
                "previous": pager.get_previous_link(),
                "items": [_result_data(i, d) for i, d in zip(items, drawn, strict=True)],
            }
        )


def _result_data(item: ResultItem, draw: dict[str, Any]) -> dict[str, Any]:
    patient = item.patient
    return {
        "patient": {
            "id": patient.pk,
            "mrn": patient.mrn,
            "given_name": patient.given_name,
            "family_name": patient.family_name,
        },
        "draw": draw,
        "severity": item.severity,
        "flags": [flag_data(f) for f in item.flags],
        "escalated": item.escalated,
        "resulted_at": draw_time(item.resulted_at),
        # The list's order: resulted, or when a lone failed or rejected tube was entered.
        "reported_at": draw_time(item.reported_at),
    }
