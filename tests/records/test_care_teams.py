"""Care teams: who sees which patients, and how a patient's and a user's teams are set.

The gate's answer (`access._scope`) with no team, one and two; a patient's teams set at
registration and changed through the services (with history), the API and the form; the
commands; the CSV import and the audit report's team filter; staff in admin. Every URL's
404 for another team's patient is in tests/security/test_access_matrix.py.
"""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.urls import reverse

from patients import access, audit, services
from patients import admin as patients_admin
from patients.audit.history import FieldChange, change_history
from patients.interop.csv import importer
from patients.models import AccessAction, CareTeam, CTCDraw, Patient
from patients.roles import NURSE
from tests import builders

pytestmark = pytest.mark.django_db

HEADER = "mrn,drawn_at,blood_volume_ml,status,ctc_count,accession,comment\n"


def _team(name: str, *members) -> CareTeam:
    team = services.teams.create_team(name)
    team.members.add(*members)
    return team


def _in_team(team: CareTeam, *patients: Patient) -> None:
    services.teams.add_patients_to_team(team, patients, by=None)


def _fresh(user):
    """The user as the next request loads them (the gate's answer holds for one request)."""
    return get_user_model().objects.get(pk=user.pk)


def _mrns(user) -> list[str]:
    return sorted(access.patients(_fresh(user)).values_list("mrn", flat=True))


# --- the gate -----------------------------------------------------------------------------


def test_without_teams_everybody_sees_every_patient(nurse, oncologist):
    builders.patient(oncologist, mrn="A-1")
    builders.patient(oncologist, mrn="B-1")

    assert access._scope(_fresh(nurse)) is None
    assert _mrns(nurse) == ["A-1", "B-1"]


def test_with_one_team_everybody_sees_every_patient_even_without_a_team(nurse, oncologist):
    only = _team("Main", oncologist)
    builders.patient(oncologist, mrn="A-1")
    builders.patient(nurse, mrn="B-1")  # registered by someone of no team: in no team

    assert list(Patient.objects.get(mrn="A-1").care_teams.all()) == [only]
    assert access._scope(_fresh(nurse)) is None
    assert _mrns(nurse) == _mrns(oncologist) == ["A-1", "B-1"]


def test_from_the_second_team_a_user_sees_their_teams_patients_only(nurse, oncologist):
    a, b, both = (builders.patient(oncologist, mrn=m) for m in ("A-1", "B-1", "C-1"))
    north, south = _team("North", nurse), _team("South", oncologist)
    _in_team(north, a, both)
    _in_team(south, b, both)

    assert _mrns(nurse) == ["A-1", "C-1"]
    assert _mrns(oncologist) == ["B-1", "C-1"]
    assert access._scope(_fresh(nurse)) is not None


def test_from_the_second_team_a_user_with_no_team_sees_no_patient(nurse, oncologist, outsider):
    _team("North", oncologist)
    _team("South")
    builders.patient(oncologist, mrn="A-1")

    assert _mrns(nurse) == []
    assert access.draws(_fresh(nurse)).count() == 0


def test_staff_see_every_patient_whatever_the_teams(admin_user, oncologist):
    _team("North", oncologist)
    _team("South", admin_user)
    builders.patient(oncologist, mrn="A-1")
    builders.patient(admin_user, mrn="B-1")

    assert access._scope(_fresh(admin_user)) is None
    assert _mrns(admin_user) == ["A-1", "B-1"]


def test_the_gate_asks_about_teams_once_per_request(nurse, count_queries):
    _team("North", nurse)
    _team("South")
    user = _fresh(nurse)

    first = count_queries(lambda: list(access.patients(user)))
    again = count_queries(lambda: list(access.patients(user)))

    assert (first, again) == (2, 1)  # are there two teams? then the patients, each time


def test_a_second_team_created_later_limits_the_next_request(nurse, oncologist):
    _team("North", oncologist)
    builders.patient(oncologist, mrn="A-1")
    assert _mrns(nurse) == ["A-1"]

    call_command("addteam", "South", stdout=StringIO())

    assert _mrns(nurse) == []


# --- a patient's teams ---------------------------------------------------------------------


def test_a_patient_registered_without_teams_joins_all_of_the_creators_teams(oncologist):
    north, south = _team("North", oncologist), _team("South", oncologist)
    _team("East")

    patient = builders.patient(oncologist)

    assert set(patient.care_teams.all()) == {north, south}


def test_a_user_may_not_register_a_patient_in_a_team_they_are_not_in(oncologist):
    _team("North", oncologist)
    south = _team("South")

    with pytest.raises(ValidationError) as refused:
        services.register_patient(
            by=oncologist,
            care_teams=[south],
            mrn="X-1",
            given_name="Ann",
            family_name="Bee",
            birth_date="1960-01-01",
            sex="female",
            cancer_type="breast",
        )

    assert "South" in refused.value.message_dict["care_teams"][0]
    assert not Patient.objects.exists()


def test_changing_a_patients_teams_is_one_row_of_its_history(oncologist):
    north, south = _team("North", oncologist), _team("South", oncologist)
    patient = builders.patient(oncologist)  # North and South
    before = patient.history.count()

    services.update_patient(
        patient=patient,
        by=oncologist,
        changes={"care_teams": [north]},
        version=patient.version,
        reason="Moved to the North clinic",
    )

    latest = patient.history.first()
    assert patient.history.count() == before + 1
    assert (latest.history_user, latest.history_change_reason) == (
        oncologist,
        "Moved to the North clinic",
    )
    assert [t.careteam for t in latest.care_teams.all()] == [north]
    assert list(Patient.objects.get(pk=patient.pk).care_teams.all()) == [north]
    assert south not in Patient.objects.get(pk=patient.pk).care_teams.all()


def test_a_user_may_not_take_a_patient_out_of_a_team_they_are_not_in(oncologist, nurse):
    north, south = _team("North", oncologist), _team("South", nurse)
    patient = builders.patient(oncologist)
    _in_team(south, patient)

    with pytest.raises(ValidationError) as refused:
        services.update_patient(
            patient=patient, by=oncologist, changes={"care_teams": [north]}, version=patient.version
        )

    assert "South" in refused.value.message_dict["care_teams"][0]
    assert set(Patient.objects.get(pk=patient.pk).care_teams.all()) == {north, south}


def test_staff_give_a_patient_any_team(admin_user, oncologist):
    _team("North", oncologist)
    south = _team("South")
    patient = builders.patient(oncologist)

    services.update_patient(
        patient=patient, by=admin_user, changes={"care_teams": [south]}, version=patient.version
    )

    assert list(Patient.objects.get(pk=patient.pk).care_teams.all()) == [south]


# --- the API ------------------------------------------------------------------------------

NEW = {
    "mrn": "API-1",
    "given_name": "Ann",
    "family_name": "Bee",
    "birth_date": "1960-01-01",
    "sex": "female",
    "cancer_type": "breast",
}


def test_the_api_shows_and_takes_team_names(api, oncologist):
    _team("North", oncologist)
    _team("South", oncologist)
    api.force_authenticate(oncologist)

    made = api.post("/api/v1/patients/", {**NEW, "care_teams": ["South"]}, format="json")
    shown = api.get(f"/api/v1/patients/{made.json()['id']}/").json()
    default = api.post("/api/v1/patients/", {**NEW, "mrn": "API-2"}, format="json")

    assert made.status_code == 201
    assert shown["care_teams"] == ["South"]
    assert sorted(default.json()["care_teams"]) == ["North", "South"]


@pytest.mark.parametrize(
    ("teams", "message"),
    [
        (["Nowhere"], "No care team named Nowhere."),
        (["South"], "You may only add or remove care teams you belong to: South."),
    ],
)
def test_the_api_refuses_a_team_naming_the_field_and_saves_nothing(api, oncologist, teams, message):
    _team("North", oncologist)
    _team("South")
    api.force_authenticate(oncologist)

    r = api.post("/api/v1/patients/", {**NEW, "care_teams": teams}, format="json")

    assert r.status_code == 400
    assert r.json()["care_teams"] == [message]
    assert not Patient.objects.exists()


def test_the_api_patch_changes_the_teams(api, oncologist):
    north, _ = _team("North", oncologist), _team("South", oncologist)
    patient = builders.patient(oncologist)
    api.force_authenticate(oncologist)

    r = api.patch(
        f"/api/v1/patients/{patient.pk}/",
        {"care_teams": ["North"], "version": patient.version},
        format="json",
    )

    assert r.status_code == 200, r.json()
    assert r.json()["care_teams"] == ["North"]
    assert list(Patient.objects.get(pk=patient.pk).care_teams.all()) == [north]


# --- the form -----------------------------------------------------------------------------


def test_the_form_offers_teams_only_from_the_second_team(client, oncologist):
    client.force_login(oncologist)
    _team("North", oncologist)

    one = client.get(reverse("patients:create"))
    _team("South")
    two = client.get(reverse("patients:create"))

    assert "care_teams" not in one.context["form"].fields
    assert "care_teams" in two.context["form"].fields


def test_the_form_offers_a_user_their_own_teams_and_staff_every_team(
    client, oncologist, admin_user
):
    _team("North", oncologist)
    _team("South")
    _team("East", oncologist)

    client.force_login(oncologist)
    theirs = client.get(reverse("patients:create")).context["form"].fields["care_teams"]
    client.force_login(admin_user)
    staffs = client.get(reverse("patients:create")).context["form"].fields["care_teams"]

    assert [t.name for t in theirs.queryset] == ["East", "North"]
    assert [t.name for t in staffs.queryset] == ["East", "North", "South"]


def test_the_form_refuses_another_teams_choice_naming_the_field(client, oncologist):
    _team("North", oncologist)
    south = _team("South")
    client.force_login(oncologist)

    r = client.post(
        reverse("patients:create"),
        {**NEW, "birth_date": "1960-01-01", "care_teams": [south.pk]},
    )

    assert r.status_code == 400
    assert r.context["form"].errors["care_teams"]
    assert not Patient.objects.exists()


def test_the_edit_form_keeps_a_team_the_user_is_not_in(client, oncologist, nurse):
    north, south = _team("North", oncologist), _team("South", nurse)
    patient = builders.patient(oncologist)  # North
    _in_team(south, patient)
    client.force_login(oncologist)

    form = client.get(reverse("patients:edit", args=[patient.pk])).context["form"]

    assert list(form.fields["care_teams"].queryset) == [north, south]
    assert set(form.fields["care_teams"].initial) == {north, south}


# --- commands -----------------------------------------------------------------------------


def test_addteam_creates_a_team_and_refuses_the_same_name_again():
    call_command("addteam", "North", stdout=StringIO())

    with pytest.raises(CommandError, match="already exists"):
        call_command("addteam", "North", stdout=StringIO())

    assert list(CareTeam.objects.values_list("name", flat=True)) == ["North"]


def test_adduser_puts_the_user_in_each_team_named(monkeypatch):
    monkeypatch.setenv("CTCTRACK_PASSWORD", "correct-horse-42")
    _team("North")
    _team("South")

    call_command("adduser", "nell", role=NURSE, teams=["North", "South"], stdout=StringIO())

    user = get_user_model().objects.get(username="nell")
    assert sorted(user.care_teams.values_list("name", flat=True)) == ["North", "South"]


def test_adduser_with_an_unknown_team_names_addteam_and_creates_no_user(monkeypatch):
    monkeypatch.setenv("CTCTRACK_PASSWORD", "correct-horse-42")

    with pytest.raises(CommandError, match="addteam"):
        call_command("adduser", "nell", "--role", NURSE, "--team", "Nowhere", stdout=StringIO())

    assert not get_user_model().objects.filter(username="nell").exists()


# --- the CSV import -----------------------------------------------------------------------


def test_a_csv_row_for_another_teams_patient_is_an_unknown_patient(oncologist, nurse):
    _team("North", oncologist)
    south = _team("South", nurse)
    theirs = builders.patient(nurse, mrn="SOUTH-1")
    _in_team(south, theirs)
    text = HEADER + "SOUTH-1,2026-01-02 09:30,,resulted,3,A-1,\n"
    unknown = HEADER + "NOBODY-1,2026-01-02 09:30,,resulted,3,A-1,\n"

    plan = importer.import_csv(text, by=oncologist, source="x.csv", channel="test")
    as_unknown = importer.plan_csv(unknown, by=oncologist)

    assert [str(e) for e in plan.errors] == [
        str(e).replace("NOBODY-1", "SOUTH-1") for e in as_unknown.errors
    ]
    assert not CTCDraw.objects.exists()
    assert importer.plan_csv(text, by=nurse).ok


# --- the audit report ---------------------------------------------------------------------


def test_the_audit_report_filters_by_team(client, admin_user, oncologist):
    north, south = _team("North", oncologist), _team("South", oncologist)
    a, b = builders.patient(oncologist, mrn="A-1"), builders.patient(oncologist, mrn="B-1")
    services.update_patient(
        patient=a, by=admin_user, changes={"care_teams": [north]}, version=a.version
    )
    services.update_patient(
        patient=b, by=admin_user, changes={"care_teams": [south]}, version=b.version
    )
    audit.record(None, AccessAction.VIEW, patient=a.pk, user=oncologist, target="seen A")
    audit.record(None, AccessAction.VIEW, patient=b.pk, user=oncologist, target="seen B")
    client.force_login(admin_user)

    r = client.get(reverse("audit:report"), {"team": north.pk, "action": AccessAction.VIEW})

    assert r.status_code == 200
    assert [e.target for e in r.context["page"]] == ["seen A"]


# --- admin --------------------------------------------------------------------------------


def test_staff_give_a_team_its_patients_in_admin_each_change_in_the_history(
    client, admin_user, oncologist, nurse
):
    north, south = _team("North", oncologist), _team("South")
    patient = builders.patient(oncologist)  # North
    client.force_login(admin_user)

    r = client.post(
        reverse("admin:patients_careteam_change", args=[south.pk]),
        {"name": "South clinic", "members": [nurse.pk], "add_patients": f" {patient.mrn}\n"},
    )

    assert r.status_code == 302
    south.refresh_from_db()
    assert south.name == "South clinic"
    assert list(south.members.all()) == [nurse]
    assert set(Patient.objects.get(pk=patient.pk).care_teams.all()) == {north, south}
    latest = patient.history.first()
    assert (latest.history_user, latest.history_change_reason) == (
        admin_user,
        "Care team South clinic added",
    )


def _team_change(client, team, *, follow=False, **fields):
    url = reverse("admin:patients_careteam_change", args=[team.pk])
    members = list(team.members.values_list("pk", flat=True))
    return client.post(url, {"name": team.name, "members": members, **fields}, follow=follow)


def test_staff_add_and_take_off_patients_by_pasted_mrns(client, admin_user, oncologist):
    north, south = _team("North", oncologist), _team("South")
    a, b, c = (builders.patient(oncologist, mrn=f"P-{k}") for k in range(3))  # North
    client.force_login(admin_user)

    added = _team_change(client, south, add_patients="P-0, P-1;P-2", follow=True)
    taken_off = _team_change(client, south, remove_patients="P-1\r\nP-2", follow=True)

    assert "South: 3 patients added." in [str(m) for m in added.context["messages"]]
    assert "South: 2 patients taken off the team." in [
        str(m) for m in taken_off.context["messages"]
    ]
    assert list(south.patients.all()) == [a]
    assert set(Patient.objects.get(pk=b.pk).care_teams.all()) == {north}
    latest = Patient.objects.get(pk=c.pk).history.first()
    assert latest.history_change_reason == "Care team South removed"


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"add_patients": "P-0 NOBODY-1 NOBODY-2"}, "add_patients", "No patient has these MRNs: "
         "NOBODY-1, NOBODY-2."),
        ({"remove_patients": "P-0"}, "remove_patients", "Not on this team: P-0."),
        ({"add_patients": "P-1", "remove_patients": "P-1"}, "remove_patients",
         "Both added and taken off: P-1."),
        ({"add_patients": " ".join(f"M{k}" for k in range(2001))}, "add_patients",
         "At most 2,000 MRNs a save (2,001 given): save the list in parts."),
    ],
)  # fmt: skip
def test_a_wrong_mrn_is_named_and_nothing_is_saved(
    client, admin_user, oncologist, fields, field, message
):
    south = _team("South")
    builders.patient(oncologist, mrn="P-0")
    one = builders.patient(oncologist, mrn="P-1")
    services.teams.add_patients_to_team(south, [one], by=admin_user)
    client.force_login(admin_user)

    r = _team_change(client, south, **{"name": "Renamed", **fields})

    assert r.status_code == 200
    assert r.context["adminform"].form.errors[field] == [message]
    south.refresh_from_db()
    assert south.name == "South"
    assert list(south.patients.all()) == [one]


def test_a_new_team_is_given_its_patients_as_it_is_made(client, admin_user, oncologist):
    patient = builders.patient(oncologist, mrn="P-0")
    client.force_login(admin_user)
    form = client.get(reverse("admin:patients_careteam_add"))
    assert "remove_patients" not in form.content.decode()  # nothing to take off yet

    r = client.post(reverse("admin:patients_careteam_add"), {"name": "West", "add_patients": "P-0"})

    assert r.status_code == 302
    assert list(CareTeam.objects.get(name="West").patients.all()) == [patient]


def test_the_limit_counts_the_patients_added_and_those_taken_off_together(
    client, admin_user, oncologist, monkeypatch
):
    monkeypatch.setattr(patients_admin, "MAX_TEAM_CHANGES", 2)
    south = _team("South")
    on_team = builders.patient(oncologist, mrn="P-0")
    services.teams.add_patients_to_team(south, [on_team], by=admin_user)
    for mrn in ("P-1", "P-2"):
        builders.patient(oncologist, mrn=mrn)
    client.force_login(admin_user)

    r = _team_change(client, south, add_patients="P-1 P-2", remove_patients="P-0")

    assert r.context["adminform"].form.errors["remove_patients"] == [
        "At most 2 patients added and taken off a save (3 given): save the lists in parts."
    ]
    assert list(south.patients.all()) == [on_team]


def test_the_team_page_sends_no_list_of_the_clinics_patients(client, admin_user, oncologist):
    south = _team("South")
    patients = [builders.patient(oncologist, mrn=f"SIZE-{k:03d}") for k in range(40)]
    services.teams.add_patients_to_team(south, patients[:3], by=admin_user)
    client.force_login(admin_user)

    page = client.get(reverse("admin:patients_careteam_change", args=[south.pk]))

    assert page.status_code == 200
    assert "The team has 3 patients now." in page.content.decode()
    assert "SIZE-0" not in page.content.decode()


def test_the_edit_form_moves_a_patient_between_the_users_own_teams(client, oncologist):
    north, south = _team("North", oncologist), _team("South", oncologist)
    patient = builders.patient(oncologist)  # North and South
    client.force_login(oncologist)
    form = client.get(reverse("patients:edit", args=[patient.pk])).context["form"]
    fields = {
        **{k: v for k, v in form.initial.items() if v is not None},
        "care_teams": [south.pk],
        "reason": "Followed at the South clinic",
    }
    fields.pop("id", None)

    r = client.post(reverse("patients:edit", args=[patient.pk]), fields)

    assert r.status_code == 302, r.context["form"].errors
    assert list(Patient.objects.get(pk=patient.pk).care_teams.all()) == [south]
    latest = patient.history.first()
    assert (latest.history_user, latest.history_change_reason) == (
        oncologist,
        "Followed at the South clinic",
    )
    assert north not in Patient.objects.get(pk=patient.pk).care_teams.all()


def test_the_change_history_shows_a_change_of_teams(oncologist):
    north, _ = _team("North", oncologist), _team("South", oncologist)
    patient = builders.patient(oncologist)
    services.update_patient(
        patient=patient, by=oncologist, changes={"care_teams": [north]}, version=patient.version
    )

    changes = [c for entry in change_history(patient) for c in entry.changes]

    assert FieldChange("care teams", "North, South", "North") in changes
    assert FieldChange("care teams", "—", "North, South") in changes  # at registration


def test_the_patient_page_names_the_patients_teams(client, oncologist):
    _team("North", oncologist)
    _team("South", oncologist)
    patient = builders.patient(oncologist)
    client.force_login(oncologist)

    page = client.get(reverse("patients:detail", args=[patient.pk])).content.decode()

    assert "<dt>Care teams</dt><dd>North, South</dd>" in page
