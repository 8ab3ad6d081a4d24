"""What an account may do: `RolePermissionsBackend` answers as Django's `ModelBackend`.

Every permission in the database is asked of both, for every kind of account:
each role, an account with a permission of its own, one with no role, an
inactive one and a superuser. The backend reads them in one query, and a change
of role takes effect at the account's next request.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import BACKEND_SESSION_KEY, get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import AnonymousUser, Group, Permission
from django.core.exceptions import PermissionDenied
from django.test import Client
from django.urls import reverse

from patients.accounts.backends import RolePermissionsBackend
from patients.roles import NURSE, ONCOLOGIST
from tests import builders

pytestmark = pytest.mark.django_db


def every_permission() -> list[str]:
    rows = Permission.objects.values_list("content_type__app_label", "codename")
    return sorted(f"{app}.{codename}" for app, codename in rows)


def fresh(user):
    """The account as the next request loads it (no permissions read yet)."""
    return get_user_model().objects.get(pk=user.pk)


def asked(backend, user, perm: str, obj=None) -> bool:
    """A backend's answer, as Django's search of the backends takes it."""
    try:
        return bool(backend.has_perm(user, perm, obj))
    except PermissionDenied:
        return False


@pytest.fixture
def accounts(django_user_model):
    own = builders.user_with_role(NURSE, username="nell")
    own.user_permissions.add(Permission.objects.get(codename="change_ctcdraw"))
    inactive = builders.user_with_role(ONCOLOGIST, username="ivan")
    inactive.is_active = False
    inactive.save()
    return {
        "oncologist": builders.user_with_role(ONCOLOGIST, username="olivia"),
        "nurse": builders.user_with_role(NURSE, username="nina"),
        "nurse with a permission of her own": own,
        "no role": builders.user_with_role(None, username="oscar"),
        "inactive oncologist": inactive,
        "superuser": django_user_model.objects.create_superuser("ada", password="pw-1234567890"),
    }


def test_it_grants_exactly_what_django_s_model_backend_grants(accounts):
    assert len(every_permission()) > 50  # Django's, ours, the libraries': all asked
    for name, user in accounts.items():
        ours, django_s = fresh(user), fresh(user)
        expected = {p for p in every_permission() if ModelBackend().has_perm(django_s, p)}

        assert {p for p in every_permission() if asked(RolePermissionsBackend(), ours, p)} == (
            expected
        ), name
        assert RolePermissionsBackend().get_all_permissions(fresh(user)) == (
            ModelBackend().get_all_permissions(fresh(user))
        ), name
        # And through every backend configured, as a page asks.
        assert {p for p in every_permission() if fresh(user).has_perm(p)} == expected, name


def test_module_permissions_are_those_of_django_s_model_backend(accounts):
    apps = {p.split(".")[0] for p in every_permission()}
    for name, user in accounts.items():
        for app in apps:
            try:
                ours = RolePermissionsBackend().has_module_perms(fresh(user), app)
            except PermissionDenied:
                ours = False

            assert ours == ModelBackend().has_module_perms(fresh(user), app), (name, app)


def test_the_roles_grant_what_patients_roles_says(accounts):
    nurse, oncologist = fresh(accounts["nurse"]), fresh(accounts["oncologist"])

    assert nurse.has_perm("patients.view_ctcdraw")
    assert nurse.has_perm("patients.add_acknowledgement")
    assert not nurse.has_perm("patients.add_ctcdraw")
    assert oncologist.has_perm("patients.add_ctcdraw")
    assert not oncologist.has_perm("patients.delete_ctcdraw")


def test_nobody_anonymous_and_no_object_gets_anything(accounts):
    backend = RolePermissionsBackend()

    assert backend.get_all_permissions(AnonymousUser()) == set()
    assert not asked(backend, AnonymousUser(), "patients.view_ctcdraw")
    # Per-object permissions are not kept: none is granted on an object.
    assert not asked(backend, fresh(accounts["oncologist"]), "patients.view_ctcdraw", obj=1)


def test_granted_and_refused_checks_of_a_request_cost_one_query(accounts, count_queries):
    nurse = fresh(accounts["nurse"])

    def check():
        assert nurse.has_perm("patients.view_patient")
        assert not nurse.has_perm("patients.add_patient")  # ModelBackend is not asked
        assert not nurse.has_perms(["patients.change_patient", "patients.view_patient"])
        assert nurse.has_module_perms("patients")

    assert count_queries(check) == 1


def test_a_change_of_role_takes_effect_at_the_next_request(accounts):
    nurse = accounts["nurse"]
    assert not fresh(nurse).has_perm("patients.add_ctcdraw")

    nurse.groups.add(Group.objects.get(name=ONCOLOGIST))
    assert fresh(nurse).has_perm("patients.add_ctcdraw")

    nurse.groups.clear()
    assert not fresh(nurse).has_perm("patients.view_ctcdraw")


def test_a_role_losing_a_permission_takes_it_from_its_members_at_their_next_request(accounts):
    group = Group.objects.get(name=NURSE)
    group.permissions.remove(Permission.objects.get(codename="add_acknowledgement"))

    assert not fresh(accounts["nurse"]).has_perm("patients.add_acknowledgement")
    assert fresh(accounts["nurse"]).has_perm("patients.view_ctcdraw")


def test_sessions_are_signed_in_by_django_s_model_backend(accounts):
    # Sessions name the backend that signed them in: signing in stays with
    # ModelBackend, so sessions from before this backend stay valid.
    client = Client()
    assert client.login(username="nina", password=builders.PASSWORD)

    assert client.session[BACKEND_SESSION_KEY] == "django.contrib.auth.backends.ModelBackend"
    assert client.get(reverse("patients:list")).status_code == 200
