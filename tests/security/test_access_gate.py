"""Every patient-scoped read of the views asks `patients.access`, the one gate.

Two checks. On the source: no module of the web pages, the API, the
interfaces, the reports or the audit report reads a patient-scoped model's
manager, or fetches one with `get_object_or_404`, except where `ALLOWED` says
why. By behaviour: when the gate hides a patient, every page and endpoint
answers 404 for them and every list leaves them out, which only holds if each
of them asks the gate.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone

from patients import access, services
from patients.models import (
    Acknowledgement,
    CTCDraw,
    ImagingAssessment,
    Patient,
    TherapyLine,
    TreatmentCycle,
)
from tests import builders
from tests.paths import ROOT

CHECKED_PACKAGES = (
    "patients/web",
    "patients/api",
    "patients/interop",
    "patients/reports",
    "patients/audit",
)
GATED_MODELS = frozenset(
    {"Patient", "CTCDraw", "TherapyLine", "TreatmentCycle", "ImagingAssessment", "Acknowledgement"}
)
MANAGERS = frozenset({"objects", "_default_manager"})
SHORTCUTS = frozenset({"get_object_or_404", "get_list_or_404"})

# Direct reads that are not a user's patient-scoped read: (file, function) -> why.
ALLOWED: dict[tuple[str, str], str] = {
    # Planning a CSV import matches the file's MRNs among the importing user's patients
    # (`access.patients`, passed in) and its accessions against the whole record, so an
    # accession is never used twice; the upload needs add_ctcdraw.
    ("patients/interop/csv/imports.py", "plan_import"): "CSV import: draws by accession",
    ("patients/interop/csv/imports.py", "_on_record"): "CSV import: draws already there",
    # Verifying the access log and filling in its lists: which ids the text of an event
    # from before chain format 3 names are patients on record (ids only; no user reads).
    ("patients/audit/chain.py", "_patients_on_record"): "access log: ids on record",
}

# --- reading the source ---------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    function: str
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line} ({self.function}): {self.what}"


class _GateChecker(ast.NodeVisitor):
    """Finds manager reads of gated models, and shortcuts given anything but the gate's."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.findings: list[Finding] = []
        self.models: dict[str, str] = {}  # local name -> model imported from a models module
        self.gates: set[str] = set()  # local names of `patients.access` and its functions
        self.function = "<module>"

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name == "patients.access":
                self.gates.add(alias.asname or alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        for alias in node.names:
            local = alias.asname or alias.name
            if module == "patients" and alias.name == "access" or module == "patients.access":
                self.gates.add(local)
            elif module.endswith("models"):
                self.models[local] = alias.name

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        outer, self.function = self.function, node.name
        self.generic_visit(node)
        self.function = outer

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Attribute(self, node: ast.Attribute) -> None:
        model = self._gated_model(node.value)
        if node.attr in MANAGERS and model:
            self._report(node, f"{model}.{node.attr}: read through patients.access")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        name = _called_name(node.func)
        if name in SHORTCUTS:
            given = node.args[0] if node.args else _keyword(node, "klass")
            problem = self._shortcut_problem(given)
            if problem:
                self._report(node, f"{name}({problem}): pass a queryset from patients.access")
        self.generic_visit(node)

    def _shortcut_problem(self, given: ast.expr | None) -> str | None:
        root = self._root(given)
        if root is None:  # the gate's own queryset
            return None
        if isinstance(root, ast.Name) and root.id in self.models:
            model = self.models[root.id]
            return model if model in GATED_MODELS else None
        return ast.unparse(given) if given is not None else "no model"

    def _root(self, node: ast.expr | None) -> ast.expr | None:
        """What a queryset expression starts from; None when from a `patients.access` call."""
        while node is not None:
            if isinstance(node, ast.Call):
                if self._is_gate(node.func):
                    return None
                node = node.func
            elif isinstance(node, ast.Attribute | ast.Subscript):
                node = node.value
            else:
                return node
        return None

    def _is_gate(self, func: ast.expr) -> bool:
        if isinstance(func, ast.Name):
            return func.id in self.gates
        return isinstance(func, ast.Attribute) and ast.unparse(func.value) in self.gates

    def _gated_model(self, node: ast.expr) -> str | None:
        if isinstance(node, ast.Name):
            name = self.models.get(node.id, node.id)
        elif isinstance(node, ast.Attribute):
            name = node.attr  # models.Patient
        elif isinstance(node, ast.Call) and _called_name(node.func) == "get_model":
            strings = [a.value for a in node.args if isinstance(a, ast.Constant)]
            name = next((s for s in strings if s in GATED_MODELS), "")
        else:
            return None
        return name if name in GATED_MODELS else None

    def _report(self, node: ast.AST, what: str) -> None:
        self.findings.append(Finding(self.path, node.lineno, self.function, what))


def _called_name(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    return func.attr if isinstance(func, ast.Attribute) else ""


def _keyword(node: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in node.keywords if k.arg == name), None)


def findings_in(source: str, path: str = "<snippet>") -> list[Finding]:
    checker = _GateChecker(path)
    checker.visit(ast.parse(source, filename=path))
    return checker.findings


def checked_modules() -> Iterator[Path]:
    for package in CHECKED_PACKAGES:
        yield from sorted((ROOT / package).rglob("*.py"))


def project_findings() -> list[Finding]:
    found = []
    for module in checked_modules():
        path = module.relative_to(ROOT).as_posix()
        found += findings_in(module.read_text(encoding="utf-8"), path)
    return found


# --- the source checks ------------------------------------------------------------------


def test_no_view_reads_patient_data_around_the_gate():
    found = [f for f in project_findings() if (f.path, f.function) not in ALLOWED]

    assert not found, "Patient-scoped reads that bypass patients.access:\n" + "\n".join(
        map(str, found)
    )


def test_every_allowed_read_is_still_there():
    used = {(f.path, f.function) for f in project_findings()}

    stale = sorted(set(ALLOWED) - used)

    assert not stale, f"ALLOWED entries that match nothing any more (remove them): {stale}"


def test_the_checked_packages_exist_and_hold_the_views():
    modules = {m.relative_to(ROOT).as_posix() for m in checked_modules()}

    assert {
        "patients/api/views.py",
        "patients/interop/fhir/views.py",
        "patients/interop/csv/views.py",
        "patients/web/patient_pages.py",
        "patients/audit/views.py",
    } <= modules


@pytest.mark.parametrize(
    "source",
    [
        "from patients.models import Patient\nPatient.objects.all()",
        "from patients.models import CTCDraw as D\ndef f():\n    return D._default_manager.get()",
        "from patients import models\nmodels.TreatmentCycle.objects.filter(pk=1)",
        "apps.get_model('patients', 'Acknowledgement').objects.all()",
        "from patients.models import Patient\nget_object_or_404(Patient, pk=1)",
        "from patients.models import TherapyLine\nget_list_or_404(TherapyLine.objects.all())",
        "get_object_or_404(some_queryset, pk=1)",
    ],
)
def test_the_checker_catches_a_read_around_the_gate(source):
    assert findings_in(source)


@pytest.mark.parametrize(
    "source",
    [
        "from patients import access\nget_object_or_404(access.draws(user).select_related('x'))",
        "from patients.models import AccessEvent\nAccessEvent.objects.all()",
        "from patients.models import AccessEvent\nget_object_or_404(AccessEvent, pk=1)",
        "get_user_model().objects.filter(is_active=True)",
        "patient.draws.all()",
    ],
)
def test_the_checker_lets_the_gate_and_other_models_through(source):
    assert not findings_in(source)


# --- behaviour: a patient the gate hides ------------------------------------------------

START = date(2026, 1, 5)


@pytest.fixture
def hidden(oncologist) -> dict[str, int]:
    """A second patient with one of each record, and an acknowledged cycle due on START."""
    patient = builders.patient(oncologist, mrn="HIDDEN-9", family_name="Hidden")
    line = builders.therapy_line(patient, oncologist, start_date=START)
    cycle = builders.cycle(line, oncologist, number=1, scheduled_date=START)
    # Unfavourable in cycle 1's window: the cycle has a flag to acknowledge.
    draw = builders.draw(patient, oncologist, drawn_at=date(2026, 1, 2), ctc_count=9)
    imaging = services.record_imaging(
        patient=patient, by=oncologist, performed_on=date(2026, 1, 3), modality="ct", response="SD"
    )
    services.acknowledge_cycle(cycle=cycle, by=oncologist, note="Seen")
    return {
        "patient": patient.pk,
        "line": line.pk,
        "cycle": cycle.pk,
        "draw": draw.pk,
        "imaging": imaging.pk,
    }


@pytest.fixture
def visible(patient, line, cycle, draw, oncologist) -> dict[str, int]:
    imaging = services.record_imaging(
        patient=patient, by=oncologist, performed_on=date(2026, 1, 3), modality="ct", response="SD"
    )
    return {
        "patient": patient.pk,
        "line": line.pk,
        "cycle": cycle.pk,
        "draw": draw.pk,
        "imaging": imaging.pk,
    }


@pytest.fixture
def scope_shows_only(monkeypatch, visible, hidden) -> None:
    """The gate limits every user, staff too, to the first patient, in one line."""
    monkeypatch.setattr(
        access, "_scope", lambda user: Patient.objects.filter(pk=visible["patient"])
    )


@pytest.fixture(params=["the gate's scope", "care teams"])
def gate_shows_only(request, visible, hidden, nurse, oncologist) -> None:
    """The gate limits the nurse and the oncologist to the first patient: by its scope
    alone, or for real with two care teams (they and the first patient in North, the
    hidden one in South)."""
    if request.param == "the gate's scope":
        request.getfixturevalue("scope_shows_only")
        return
    north, south = services.teams.create_team("North"), services.teams.create_team("South")
    north.members.add(nurse, oncologist)
    shown, kept = (Patient.objects.get(pk=ids["patient"]) for ids in (visible, hidden))
    services.teams.add_patients_to_team(north, [shown], by=None)
    services.teams.add_patients_to_team(south, [kept], by=None)


API_READS = [
    "/api/v1/patients/{patient}/",
    "/api/v1/patients/{patient}/therapy-lines/",
    "/api/v1/therapy-lines/{line}/cycles/",
    "/api/v1/cycles/{cycle}/",
    "/api/v1/patients/{patient}/draws/",
    "/api/v1/draws/{draw}/",
    "/api/v1/patients/{patient}/imaging/",
    "/api/v1/patients/{patient}/assessment/",
    "/api/v1/cycles/{cycle}/acknowledgements/",
    "/api/v1/draws/{draw}/acknowledgements/",
    "/fhir/r4/Patient/{patient}",
    "/fhir/r4/Observation/{draw}",
    "/fhir/r4/Observation?patient={patient}",
]


@pytest.mark.django_db
@pytest.mark.parametrize("url", API_READS)
def test_the_api_and_fhir_answer_404_for_a_patient_the_gate_hides(
    api, nurse, visible, hidden, gate_shows_only, url
):
    api.force_authenticate(nurse)

    assert api.get(url.format(**visible)).status_code == 200
    assert api.get(url.format(**hidden)).status_code == 404


API_WRITES = [
    ("patch", "/api/v1/patients/{patient}/", {"given_name": "Changed"}),
    ("patch", "/api/v1/cycles/{cycle}/", {"status": "given"}),
    ("patch", "/api/v1/draws/{draw}/", {"ctc_count": 9}),
    ("post", "/api/v1/draws/{draw}/entered-in-error/", {"reason": "Wrong patient"}),
    (
        "post",
        "/api/v1/patients/{patient}/therapy-lines/",
        {"regimen": "Cabazitaxel", "start_date": "2026-02-01", "cycle_length_days": 21},
    ),
    ("post", "/api/v1/therapy-lines/{line}/cycles/", {"number": 2, "scheduled_date": "2026-01-26"}),
    (
        "post",
        "/api/v1/patients/{patient}/draws/",
        {"drawn_at": "2026-01-20T09:00:00Z", "ctc_count": 1},
    ),
    (
        "post",
        "/api/v1/patients/{patient}/imaging/",
        {"performed_on": "2026-01-21", "modality": "ct", "response": "SD"},
    ),
    ("post", "/api/v1/cycles/{cycle}/acknowledgements/", {"note": "Seen again"}),
    ("post", "/api/v1/draws/{draw}/acknowledgements/", {"note": "Seen"}),
]


def changes_on_record() -> int:
    """Every write to a clinical record leaves a row in its history."""
    clinical = [Patient, TherapyLine, TreatmentCycle, CTCDraw, ImagingAssessment, Acknowledgement]
    return sum(model.history.count() for model in clinical)


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "url", "body"), API_WRITES)
def test_the_api_writes_nothing_for_a_patient_the_gate_hides(
    api, oncologist, hidden, gate_shows_only, method, url, body
):
    api.force_authenticate(oncologist)
    before = changes_on_record()

    response = getattr(api, method)(url.format(**hidden), body, format="json")

    assert response.status_code == 404
    assert changes_on_record() == before


@pytest.mark.django_db
def test_the_api_lists_leave_out_a_patient_the_gate_hides(api, nurse, hidden, gate_shows_only):
    api.force_authenticate(nurse)

    listed = api.get("/api/v1/patients/").json()
    found = api.get("/api/v1/patients/", {"search": "HIDDEN"}).json()
    due = api.get("/api/v1/worklist/", {"from": START.isoformat(), "days": 7}).json()

    assert [p["mrn"] for p in listed["results"]] == ["MRN0001"]
    assert found["count"] == 0
    assert [item["patient"]["mrn"] for item in due["items"]] == ["MRN0001"]


# url name -> the kind of record its id names
WEB_PAGES = {
    "patients:detail": "patient",
    "patients:chart-svg": "patient",
    "patients:chart-png": "patient",
    "patients:report": "patient",
    "patients:csv-export-patient": "patient",
    "patients:edit": "patient",
    "patients:line-create": "patient",
    "patients:line-edit": "line",
    "patients:cycle-create": "line",
    "patients:cycle-edit": "cycle",
    "patients:draw-create": "patient",
    "patients:draw-edit": "draw",
    "patients:imaging-create": "patient",
    "patients:imaging-edit": "imaging",
    "patients:cycles-plan": "line",
}
WEB_POSTS = {
    "patients:draw-error": "draw",
    "patients:imaging-error": "imaging",
    "patients:acknowledge": "cycle",
    "patients:acknowledge-result": "draw",
}


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "kind"), WEB_PAGES.items())
def test_the_pages_answer_404_for_a_patient_the_gate_hides(
    client, oncologist, visible, hidden, gate_shows_only, name, kind
):
    client.force_login(oncologist)

    assert client.get(reverse(name, args=[visible[kind]])).status_code == 200
    assert client.get(reverse(name, args=[hidden[kind]])).status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "kind"), WEB_POSTS.items())
def test_the_forms_change_nothing_for_a_patient_the_gate_hides(
    client, oncologist, hidden, gate_shows_only, name, kind
):
    client.force_login(oncologist)
    before = changes_on_record()

    response = client.post(reverse(name, args=[hidden[kind]]), {"reason": "Wrong", "note": "x"})

    assert response.status_code == 404
    assert changes_on_record() == before


@pytest.mark.django_db
def test_the_pages_and_the_export_leave_out_a_patient_the_gate_hides(
    client, oncologist, hidden, gate_shows_only
):
    client.force_login(oncologist)

    listed = client.get(reverse("patients:list")).content.decode()
    due = client.get(reverse("patients:worklist"), {"start": START.isoformat()})
    export = client.post(reverse("patients:csv-export-all"), {"reason": "Audit", "confirm": "on"})
    rows = b"".join(export.streaming_content).decode()

    assert "MRN0001" in listed and "HIDDEN-9" not in listed
    assert "MRN0001" in due.content.decode() and "HIDDEN-9" not in due.content.decode()
    assert "MRN0001" in rows and "HIDDEN-9" not in rows


@pytest.mark.django_db
def test_the_audit_report_does_not_find_a_patient_the_gate_hides(
    client, admin_user, visible, hidden, scope_shows_only
):
    client.force_login(admin_user)
    report = reverse("audit:report")

    assert client.get(report, {"patient": visible["patient"]}).status_code == 200
    assert client.get(report, {"patient": hidden["patient"]}).status_code == 400
    assert client.get(report, {"mrn": "HIDDEN-9"}).status_code == 400


@pytest.mark.django_db
def test_the_results_to_review_and_the_header_counts_leave_out_a_patient_the_gate_hides(
    client, api, oncologist, visible, hidden, gate_shows_only
):
    today = timezone.localdate()
    for who in ("visible", "hidden"):  # each: a high conversion before a cycle due this week
        ids = visible if who == "visible" else hidden
        line = TherapyLine.objects.get(pk=ids["line"])
        builders.cycle(line, oncologist, number=9, scheduled_date=today + timedelta(days=2))
        builders.draw(line.patient, oncologist, drawn_at=today - timedelta(days=1), ctc_count=40)
    client.force_login(oncologist)
    api.force_authenticate(oncologist)

    page = client.get(reverse("patients:results"))
    listed = api.get("/api/v1/results-to-review/").json()

    assert "MRN0001" in page.content.decode() and "HIDDEN-9" not in page.content.decode()
    assert [item["patient"]["mrn"] for item in listed["items"]] == ["MRN0001"]
    assert page.context["open_results"] == listed["count"] == 1
    assert page.context["open_worklist"] == 1
