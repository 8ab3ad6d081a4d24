"""WSGI entry point (gunicorn ctctrack.wsgi)."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ctctrack.settings")

application = get_wsgi_application()

# Import every view now (and with them matplotlib and SciPy), not on each worker's
# first request: with gunicorn's preload_app the master does it once and the
# workers share it, so nobody's first page after a restart takes seconds.
from django.urls import get_resolver  # noqa: E402

get_resolver().url_patterns  # noqa: B018
