"""`python manage.py addteam NAME`: a care team (see docs/security.md, care teams)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from patients import services
from patients.models import CareTeam


class Command(BaseCommand):
    help = (
        "Create a care team. From the second team on, users see the patients of their "
        "teams only (staff see every patient)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")

    def handle(self, *args: Any, name: str, **options: Any) -> None:
        try:
            team = services.teams.create_team(name)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        count = CareTeam.objects.count()
        self.stdout.write(self.style.SUCCESS(f"Created care team {team.name}."))
        if count == 2:
            self.stdout.write(
                "There are now two care teams: each user sees the patients of their own "
                "teams only. Give every patient and every user their teams in admin."
            )
