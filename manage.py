#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

from __future__ import annotations

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ctctrack.settings")
    # Settings let a few build-time commands run without a SECRET_KEY.
    os.environ["CTCTRACK_MANAGEMENT_COMMAND"] = sys.argv[1] if len(sys.argv) > 1 else "help"
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
