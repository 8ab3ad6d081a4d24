"""Every URL Django admin answers, read from the admin site itself, with its ids filled in.

Shared by the access matrix and the read-only admin test: both walk
`admin.site`, so a model registered tomorrow, or a page a new version of Django
or simple-history adds, is tested the moment it exists.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from html.parser import HTMLParser

import pytest
from django.contrib import admin
from django.db import models
from django.forms import BaseForm
from django.urls import URLPattern, resolve

# A parameter in a route (`<path:object_id>`) or a group in a regex (`(?P<url>.*)`, `([^/]+)`).
ROUTE_PARAMETER = re.compile(r"<(?:\w+:)?(\w+)>")
REGEX_GROUP = re.compile(r"\((?:\?P<(\w+)>)?[^()]*\)")
# The regex groups with no name, in order: simple-history's `^([^/]+)/history/([^/]+)/$`.
UNNAMED_GROUPS = ("object_id", "history_id")


@dataclass(frozen=True)
class AdminRoute:
    """One URL pattern of admin: a model's page (`model` set) or the site's own."""

    model: type[models.Model] | None
    route: str

    def __str__(self) -> str:
        owner = self.model._meta.label_lower if self.model else "site"
        return f"{owner} /{self.route.removeprefix('^')}"

    @property
    def prefix(self) -> str:
        if self.model is None:
            return "/admin/"
        return f"/admin/{self.model._meta.app_label}/{self.model._meta.model_name}/"

    def path(self, values: Mapping[str, object]) -> str:
        """The route with each parameter replaced by `values[name]`; checked to resolve to it."""
        unnamed = iter(UNNAMED_GROUPS)

        def group(match: re.Match[str]) -> str:
            return str(values[match.group(1) or next(unnamed)])

        filled = REGEX_GROUP.sub(group, self.route.removeprefix("^").removesuffix("$"))
        filled = ROUTE_PARAMETER.sub(lambda m: str(values[m.group(1)]), filled)
        path = self.prefix + filled
        if not resolve(path).route.endswith(self.route.removeprefix("^")):
            pytest.fail(f"{path} does not resolve to {self}: teach tests/admin_urls.py its shape")
        return path

    def parameters(self) -> list[str]:
        names = [m.group(1) for m in ROUTE_PARAMETER.finditer(self.route)]
        groups = [m.group(1) for m in REGEX_GROUP.finditer(self.route)]
        unnamed = iter(UNNAMED_GROUPS)
        return names + [name or next(unnamed) for name in groups]


def admin_routes() -> list[AdminRoute]:
    """Every page of every registered model, then the site's own pages."""
    routes = [
        AdminRoute(model, str(pattern.pattern))
        for model, model_admin in admin.site._registry.items()
        for pattern in model_admin.get_urls()
    ]
    site = [p for p in admin.site.get_urls() if isinstance(p, URLPattern)]
    return routes + [AdminRoute(None, str(pattern.pattern)) for pattern in site]


class _SubmittedValues(HTMLParser):
    """What a browser submits for a rendered form: fields, ticked boxes, chosen options."""

    def __init__(self) -> None:
        super().__init__()
        self.data: dict[str, list[str]] = {}
        self._textarea: str | None = None
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = dict(attrs)
        name = attr.get("name") or ""
        if tag == "input" and name and attr.get("type") not in ("submit", "button"):
            choice = attr.get("type") in ("checkbox", "radio")
            if choice and "checked" in attr:
                self.data.setdefault(name, []).append(attr.get("value") or "on")
            elif not choice:
                self.data.setdefault(name, []).append(attr.get("value") or "")
        elif tag == "textarea":
            self._textarea = name
            self.data[name] = [""]
        elif tag == "select":
            self._select = name
        elif tag == "option" and self._select and "selected" in attr:
            self.data.setdefault(self._select, []).append(attr.get("value") or "")

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.data[self._textarea][-1] += data.removeprefix("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea":
            self._textarea = None
        elif tag == "select":
            self._select = None


def submitted_values(form: BaseForm) -> dict[str, list[str]]:
    """The body a browser would post for `form` as rendered, widgets' own names included."""
    parser = _SubmittedValues()
    parser.feed(str(form))
    return parser.data
