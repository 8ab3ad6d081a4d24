"""Every access-log action in the code is an `AccessAction` member, never a bare string.

`record()` accepts any string equal to a member's value (tests and old data use
them), so a typo'd or renamed action only fails when that line runs. This reads
every call of `record`, `record_read` and `records_patient_read` (and every
variable named like an action or outcome) in the application's source instead.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

import pytest

from tests.paths import ROOT

SOURCES = ("patients", "ctctrack")
# The recording calls, and the position of their `action` argument.
ACTION_POSITION = {"record": 1, "record_read": 1, "records_patient_read": 0}
# Names of the other vocabulary argument, and of variables holding either.
TERMS = ("action", "outcome")


def _called_name(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def _arguments(call: ast.Call) -> Iterator[ast.expr]:
    """The call's `action` and `outcome` arguments, by position or by keyword."""
    position = ACTION_POSITION[_called_name(call)]
    if len(call.args) > position:
        yield call.args[position]
    yield from (keyword.value for keyword in call.keywords if keyword.arg in TERMS)


def _assigned(node: ast.Assign | ast.AnnAssign) -> Iterator[tuple[str, ast.expr]]:
    """(name, value) for each target of an assignment, tuples paired element by element."""
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    for target in targets:
        if isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
            pairs = zip(target.elts, node.value.elts, strict=False)
        else:
            pairs = [(target, node.value)] if node.value is not None else []
        for name, value in pairs:
            text = name.attr if isinstance(name, ast.Attribute) else getattr(name, "id", "")
            yield text, value


def _holds_a_term(name: str) -> bool:
    """Whether a variable is named for an action or outcome: `action`, `read_action`..."""
    return any(name == term or name.endswith(f"_{term}") for term in TERMS)


def _is_string(value: ast.expr) -> bool:
    return isinstance(value, ast.JoinedStr) or (
        isinstance(value, ast.Constant) and isinstance(value.value, str)
    )


def _holds_string(value: ast.expr) -> bool:
    """A string anywhere in the argument: `"view"`, `x or "view"`, `AccessAction("view")`."""
    return any(_is_string(node) for node in ast.walk(value))


def bare_string_uses(source: str, filename: str = "<source>") -> list[str]:
    """Where `source` passes or assigns an action or outcome as a string: "file:line"."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Call) and _called_name(node) in ACTION_POSITION:
            found += [f"{filename}:{v.lineno}" for v in _arguments(node) if _holds_string(v)]
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            values = [value for name, value in _assigned(node) if _holds_a_term(name)]
            found += [f"{filename}:{v.lineno}" for v in values if _is_string(v)]
    return found


def recording_calls(source: str) -> int:
    tree = ast.parse(source)
    return sum(
        isinstance(n, ast.Call) and _called_name(n) in ACTION_POSITION for n in ast.walk(tree)
    )


def _sources() -> Iterator[tuple[str, str]]:
    for package in SOURCES:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield str(path.relative_to(ROOT)), path.read_text(encoding="utf-8")


def test_no_action_or_outcome_is_a_bare_string():
    found = [use for name, text in _sources() for use in bare_string_uses(text, name)]

    assert found == [], "Use AccessAction / AccessOutcome members: " + ", ".join(found)


def test_the_scan_sees_the_recording_calls():
    # If the calls were renamed, the test above would pass by reading nothing.
    assert sum(recording_calls(text) for _, text in _sources()) >= 20


@pytest.mark.parametrize(
    "source",
    [
        'audit.record(request, "import", target="CSV")',
        'audit.record(request, action="export")',
        'record(None, AccessAction.VIEW, outcome="failed")',
        'audit.record_read(request, "worklist", patient_ids=[1], what="worklist")',
        '@audit.records_patient_read("chart", "chart.svg")\ndef chart(request, pk): ...',
        'class Read:\n    read_action = "api_read"',
        'action, outcome = "login_failed", AccessOutcome.FAILED',
    ],
)
def test_a_bare_string_is_found(source):
    assert len(bare_string_uses(source)) == 1


@pytest.mark.parametrize(
    "source",
    [
        "audit.record(request, AccessAction.IMPORT, target='CSV upload')",
        "audit.record(request, action, outcome=outcome, target=f'{request.path}')",
        "audit.record_read(request, self.read_action, patient_ids=ids, what='worklist')",
        "class Read:\n    read_action = AccessAction.API_READ",
        "services.record_draw(patient=patient, by=user, target='x')",
        "action = forms.ChoiceField(label='Action', choices=AccessAction.choices)",
    ],
)
def test_members_and_variables_pass(source):
    assert bare_string_uses(source) == []
