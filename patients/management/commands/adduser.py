"""`python manage.py adduser NAME --role oncologist|nurse|admin [--team TEAM]...`."""

from __future__ import annotations

import getpass
import os
from typing import Any

from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from patients import services
from patients.roles import NURSE, ONCOLOGIST

ADMIN = "admin"


class Command(BaseCommand):
    help = (
        "Create a user with a role. The password is read from CTCTRACK_PASSWORD, "
        "or asked for twice."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=[ONCOLOGIST, NURSE, ADMIN])
        parser.add_argument("--email", default="")
        parser.add_argument(
            "--team",
            action="append",
            default=[],
            dest="teams",
            metavar="TEAM",
            help="A care team the user belongs to (repeat for several; create it with addteam).",
        )

    def handle(
        self, *args: Any, username: str, role: str, email: str, teams: list[str], **options: Any
    ) -> None:
        User = get_user_model()
        if User.objects.filter(username=username).exists():
            raise CommandError(f"A user named {username!r} already exists.")
        care_teams, errors = services.teams.teams_named(teams)
        if errors:
            raise CommandError(
                " ".join(errors["care_teams"]) + " Create it first: python manage.py addteam NAME."
            )
        user = User(username=username, email=email)
        password = self._password()
        try:
            password_validation.validate_password(password, user)
        except ValidationError as exc:
            raise CommandError("Password refused: " + " ".join(exc.messages)) from exc

        user.set_password(password)
        # Administrators manage accounts and read the record in admin.
        user.is_staff = user.is_superuser = role == ADMIN
        user.save()
        if role != ADMIN:
            user.groups.add(Group.objects.get(name=role))
        user.care_teams.set(care_teams)
        in_teams = f", care teams: {', '.join(t.name for t in care_teams)}" if care_teams else ""
        self.stdout.write(self.style.SUCCESS(f"Created {username} ({role}{in_teams})."))

    def _password(self) -> str:
        from_env = os.environ.get("CTCTRACK_PASSWORD")
        if from_env:
            return from_env
        first = getpass.getpass("Password: ")
        if first != getpass.getpass("Password (again): "):
            raise CommandError("The two passwords differ.")
        return first
