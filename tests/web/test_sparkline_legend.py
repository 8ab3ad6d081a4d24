"""The key to the worklist's sparklines, an include for the worklist page."""

from __future__ import annotations

import pytest
from django.template.loader import render_to_string


def test_the_sparkline_legend_explains_the_end_point_shapes_and_the_spacing():
    html = render_to_string("patients/_sparkline_legend.html")

    assert "spaced by date" in html
    assert "cut-off" in html
    assert "unfavourable" in html and "favourable" in html
    assert "style=" not in html  # the site's CSP forbids inline style


@pytest.mark.django_db
def test_the_worklist_shows_the_key_once_beside_its_rows(client, nurse, patient, cycle):
    client.force_login(nurse)

    page = client.get("/", {"start": cycle.scheduled_date.isoformat(), "days": 7})

    assert page.status_code == 200
    assert page.content.decode().count('id="sparkline-legend"') == 1
