"""Every page in a real browser: WCAG 2.1 A/AA (axe-core), keyboard only, print, small screens."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import Page, expect
from pypdf import PdfReader

from patients import services
from patients.models import CTCDraw, Patient, TherapyLine, TreatmentCycle
from patients.roles import ONCOLOGIST
from tests import builders
from tests.paths import DATA

from .journey import PASSWORD, settle, sign_in, sign_out

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

BAD_CSV = DATA / "csv" / "bad.csv"
AXE = Path(__file__).parent / "axe" / "node_modules" / "axe-core" / "axe.min.js"
WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


@pytest.fixture(scope="session")
def axe_source() -> str:
    if not AXE.exists():
        pytest.skip("axe-core is not installed: run `make browser-tools` (needs npm)")
    return AXE.read_text()


def audit(page: Page, axe_source: str) -> list[str]:
    """WCAG 2.1 A and AA violations on the current page, one readable line each."""
    # Evaluated through the DevTools protocol, so the page's CSP does not block it.
    page.evaluate(axe_source)
    result = page.evaluate(
        "async (tags) => await axe.run(document, {runOnly: {type: 'tag', values: tags}})",
        WCAG_21_AA,
    )
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
    ]


def _pages(base: str, clinic: dict) -> dict[str, str]:
    patient = Patient.objects.get(mrn="BT-001")
    line = TherapyLine.objects.get(patient=patient)
    cycle = TreatmentCycle.objects.filter(therapy_line=line).last()
    draw = CTCDraw.objects.filter(patient=patient).first()
    return {
        "worklist": f"{base}/",
        "results to review": f"{base}/results/",
        "patient list": f"{base}/patients/",
        "patient page": f"{base}/patients/{patient.pk}/",
        "new patient": f"{base}/patients/new/",
        "edit patient": f"{base}/patients/{patient.pk}/edit/",
        "new line": f"{base}/patients/{patient.pk}/lines/new/",
        "edit line": f"{base}/lines/{line.pk}/edit/",
        "new cycle": f"{base}/lines/{line.pk}/cycles/new/",
        "edit cycle": f"{base}/cycles/{cycle.pk}/edit/",
        "new draw": f"{base}/patients/{patient.pk}/draws/new/",
        "edit draw": f"{base}/draws/{draw.pk}/edit/",
        "new imaging": f"{base}/patients/{patient.pk}/imaging/new/",
        "csv import": f"{base}/imports/csv/",
    }


def _result_to_review(mrn: str) -> CTCDraw:
    """Yesterday's count for the patient: 12 CTC/7.5 mL after 1 or 2, a clear conversion
    (high) in the window of the cycle due in the coming days."""
    patient = Patient.objects.get(mrn=mrn)
    yesterday = timezone.localdate() - timedelta(days=1)
    return builders.draw(
        patient, User.objects.get(username="olivia"), drawn_at=yesterday, ctc_count=12
    )


def test_the_login_page_has_no_wcag_violations(page: Page, live_server, axe_source):
    page.goto(f"{live_server.url}/accounts/login/")
    assert audit(page, axe_source) == []

    page.get_by_role("button", name="Sign in").click()  # empty: the browser asks for input
    page.get_by_label("Username").fill("nobody")
    page.get_by_label("Password").fill("wrong-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_be_visible()
    assert audit(page, axe_source) == []


def test_every_page_and_form_has_no_wcag_violations(page: Page, live_server, clinic, axe_source):
    _result_to_review("BT-002")  # so the results to review and the worklist have a flagged row
    sign_in(page, live_server.url, "olivia")
    failures = {}
    staff_only = ("replicate variation", "audit log")
    pages = {k: v for k, v in _every_page(live_server.url, clinic).items() if k not in staff_only}
    pages["export every patient's draws"] = f"{live_server.url}/exports/draws.csv"
    for name, url in pages.items():
        response = page.goto(url)
        settle(page)
        if not (response and response.ok):  # an error page would pass the audit
            failures[name] = [f"answered {response.status if response else 'nothing'}"]
        elif found := audit(page, axe_source):
            failures[name] = found
        form = page.locator("main form.stacked").first
        if name.startswith(("new", "edit", "plan", "correct", "export")) and form.count():
            form.locator("button[type=submit]").first.click()  # empty or unchanged: errors
            settle(page)
            if found := audit(page, axe_source):
                failures[f"{name} (with errors)"] = found
    assert failures == {}


def test_the_staff_audit_report_has_no_wcag_violations(
    page: Page, live_server, clinic, axe_source, django_user_model
):
    django_user_model.objects.create_superuser("ada", password=PASSWORD)
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    page.goto(f"{live_server.url}/audit/")

    expect(page.locator("main table")).to_be_visible()
    assert audit(page, axe_source) == []


def _current_code(user: User) -> str:
    """The code the user's authenticator app shows now (as the phone would compute it)."""
    device = TOTPDevice.objects.get(user=user)
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    return f"{totp.token():0{device.digits}d}"


def _enter_code(page: Page, code: str, button: str, form: str = "main") -> None:
    scope = page.locator(form)
    scope.get_by_role("textbox", name="Code").fill(code)
    scope.get_by_role("button", name=button).click()
    settle(page)


def _code_error_has_focus(page: Page) -> bool:
    return page.evaluate(
        "document.activeElement.name?.endsWith('code') "
        "&& document.activeElement.getAttribute('aria-invalid') === 'true'"
    )


def test_the_two_factor_pages_have_no_wcag_violations(page: Page, live_server, clinic, axe_source):
    nina = User.objects.get(username="nina")
    base = f"{live_server.url}/accounts/mfa"
    failures: dict[str, list[str]] = {}
    focus_lost: list[str] = []

    def check(name: str, *, error: bool = False) -> None:
        if found := audit(page, axe_source):
            failures[name] = found
        if error and not _code_error_has_focus(page):
            focus_lost.append(name)

    sign_in(page, live_server.url, "nina")
    page.goto(f"{base}/")
    check("overview, two-factor off")

    page.goto(f"{base}/setup/")
    check("setup")
    _enter_code(page, "", "Confirm")
    check("setup, no code", error=True)
    _enter_code(page, "000000" if _current_code(nina) != "000000" else "111111", "Confirm")
    expect(page.get_by_role("alert")).to_be_visible()
    check("setup, wrong code", error=True)
    page.wait_for_timeout(2_100)  # django-otp makes the next try wait after a wrong code
    _enter_code(page, _current_code(nina), "Confirm")
    expect(page.get_by_role("heading", name="recovery codes")).to_be_visible()
    check("recovery codes")

    page.goto(f"{base}/")
    check("overview, two-factor on")
    disable = "section.danger-zone"
    _enter_code(page, "", "Turn off two-factor sign-in", disable)
    check("disable, no code", error=True)
    _enter_code(page, "12345", "Turn off two-factor sign-in", disable)
    check("disable, wrong code", error=True)

    sign_out(page)
    page.get_by_label("Username").fill("nina")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Enter your code")).to_be_visible()
    check("verify")
    _enter_code(page, "", "Continue")
    check("verify, no code", error=True)
    _enter_code(page, "12345", "Continue")
    check("verify, wrong code", error=True)

    assert failures == {}
    assert focus_lost == [], "these pages did not put the focus on the code field's error"


def test_a_bad_csv_preview_has_no_wcag_violations(page: Page, live_server, clinic, axe_source):
    sign_in(page, live_server.url, "olivia")
    page.goto(f"{live_server.url}/imports/csv/")
    page.get_by_role("button", name="Check the file").click()  # no file: the field's error
    settle(page)
    assert page.evaluate("document.activeElement.type") == "file"
    assert audit(page, axe_source) == []

    page.get_by_label("CSV file").set_input_files(BAD_CSV)
    page.get_by_role("button", name="Check the file").click()
    settle(page)

    expect(page.get_by_text("NOPE-9")).to_be_visible()  # a bad row, listed
    expect(page.get_by_role("button", name="Import")).to_have_count(0)  # nothing to confirm
    assert audit(page, axe_source) == []


def _focus_is_visible(page: Page) -> bool:
    return page.evaluate(
        """() => {
            const el = document.activeElement;
            if (!el || el === document.body) return false;
            const s = getComputedStyle(el);
            return s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2;
        }"""
    )


def _tab_to(page: Page, matches: str, limit: int = 80) -> None:
    """Press Tab until the focused element matches `matches` (a JS predicate on `el`),
    checking that every element on the way shows where the focus is."""

    def reached() -> bool:
        return page.evaluate(
            f"(() => {{ const el = document.activeElement; return {matches}; }})()"
        )

    if reached():  # e.g. the login page's autofocus
        return
    for _ in range(limit):
        page.keyboard.press("Tab")
        assert _focus_is_visible(page), page.evaluate("document.activeElement.outerHTML")
        if reached():
            return
    raise AssertionError(f"never reached {matches!r} with the Tab key")


def test_a_nurse_does_her_round_with_the_keyboard_only(page: Page, live_server, clinic):
    _result_to_review("BT-001")  # Brown's count in the window of cycle 3: high
    page.goto(f"{live_server.url}/accounts/login/")
    _tab_to(page, "el.id === 'id_username'")
    page.keyboard.type("nina")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Pre-cycle worklist")).to_be_visible()

    row = "el.closest('li.row')?.dataset.patient === 'BT-001'"
    _tab_to(page, f"el.tagName === 'SUMMARY' && {row}")
    page.keyboard.press("Enter")  # opens the flags and the acknowledge form
    _tab_to(page, f"el.tagName === 'TEXTAREA' && {row}")
    page.keyboard.type("Seen on the morning round")
    _tab_to(page, "el.tagName === 'BUTTON' && el.textContent.includes('Acknowledge')")
    page.keyboard.press("Enter")
    expect(page.locator(".messages")).to_contain_text("Acknowledged cycle 3 of Paclitaxel")

    _tab_to(page, "el.tagName === 'A' && el.textContent.includes('Brown, Pat')")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Brown, Pat")).to_be_visible()
    settle(page)

    page.keyboard.press("Tab")  # the skip link comes first
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    _tab_to(page, "el.tagName === 'BUTTON' && el.textContent.includes('Sign out')")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_a_form_with_errors_keeps_the_input_and_focuses_the_first_error(
    page: Page, live_server, clinic
):
    sign_in(page, live_server.url, "olivia")
    page.goto(f"{live_server.url}/patients/new/")
    page.get_by_label("Given name").fill("Ann")
    page.get_by_label("Family name").fill("Lee")

    page.get_by_role("button", name="Save").click()

    expect(page.get_by_text("Nothing was saved")).to_be_visible()
    expect(page.get_by_label("Given name")).to_have_value("Ann")
    expect(page.get_by_label("MRN")).to_be_focused()  # the first field in error
    expect(page.locator("#id_mrn_error")).to_contain_text("This field is required")
    sign_out(page)


@pytest.mark.parametrize("paper", ["A4", "Letter"])
def test_the_patient_page_prints_with_name_and_mrn_on_every_page(
    page: Page, live_server, clinic, paper, django_user_model
):
    oncologist = django_user_model.objects.get(username="olivia")
    patient = Patient.objects.get(mrn="BT-001")
    counts = [k % 9 for k in range(40)]  # weekly, enough to fill more than one page
    builders.draws(patient, oncologist, counts, first=timezone.now() - timedelta(days=400))
    sign_in(page, live_server.url, "nina")
    page.goto(f"{live_server.url}/patients/{patient.pk}/")
    settle(page)

    pdf = PdfReader(io.BytesIO(page.pdf(format=paper, print_background=True)))

    texts = [p.extract_text() for p in pdf.pages]
    assert len(texts) >= 2
    assert all("Brown, Pat · MRN BT-001" in t for t in texts)
    assert not any("Sign out" in t or "Worklist" in t for t in texts)  # no navigation


# Each role as the clinic has them: a nurse, an oncologist, and an oncologist who is staff
# (who also sees the change history, the audit log and the replicate variation).
ROLES = ["nina", "olivia", "stella"]


def _every_page(base: str, clinic: dict) -> dict[str, str]:
    """Every page a clinician can open, with a corrected draw, a delayed cycle and imaging on
    the patient page (the wide tables), and the staff pages."""
    pages = _pages(base, clinic)
    patient = Patient.objects.get(mrn="BT-001")
    olivia = User.objects.get(username="olivia")
    draw = CTCDraw.objects.filter(patient=patient).first()
    services.update_draw(
        draw=draw, by=olivia, changes={"ctc_count": 4}, version=draw.version, reason="Recount"
    )
    cycle = TreatmentCycle.objects.filter(therapy_line__patient=patient).last()
    services.delay_cycle_and_following(
        cycle=cycle,
        by=olivia,
        new_date=cycle.scheduled_date + timedelta(days=7),
        reason="Neutrophils 0.9",
        version=cycle.version,
    )
    scan = services.record_imaging(
        patient=patient, by=olivia, performed_on=timezone.localdate(), modality="ct", response="SD"
    )
    scan = services.update_imaging(
        imaging=scan, by=olivia, changes={"response": "PR"}, version=1, reason="Report amended"
    )
    line = TherapyLine.objects.get(patient=patient)
    return {
        **pages,
        "plan cycles": f"{base}/lines/{line.pk}/cycles/plan/",
        "correct imaging": f"{base}/imaging/{scan.pk}/edit/",
        "replicate variation": f"{base}/staff/replicate-variation/",
        "audit log": f"{base}/audit/",
    }


@pytest.mark.parametrize("width", [768, 1024, 390])
@pytest.mark.parametrize("username", ROLES)
def test_no_page_scrolls_sideways_for_any_role(
    page: Page, live_server, clinic, width, username, screenshot_dir
):
    stella = builders.user_with_role(ONCOLOGIST, username="stella", password=PASSWORD)
    stella.is_staff = True
    stella.save()
    _result_to_review("BT-001")
    urls = _every_page(live_server.url, clinic)
    page.set_viewport_size({"width": width, "height": 1000})
    sign_in(page, live_server.url, username)
    opened = []
    if width < 768:  # a phone: the pages a nurse reads on her round, and the CSV import
        urls = {name: urls[name] for name in (*SCREENSHOTS, "csv import")}
    for name, url in urls.items():
        response = page.goto(url)
        settle(page)
        assert response and response.status < 500, f"{name}: {response and response.status}"
        opened += [name] if response.ok else []
        # A refusal (a nurse on an edit page) is a page too: it must not scroll sideways.
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, (
            f"{name} as {username} at {width} px scrolls sideways by {overflow} px"
        )
        if username == "nina" and width != 1024 and name in SCREENSHOTS:
            label = "tablet" if width == 768 else "phone"
            page.screenshot(
                path=screenshot_dir / f"{SCREENSHOTS[name]}-{label}.png", full_page=True
            )
    assert set(SCREENSHOTS) <= set(opened)
    if width < 768:
        return
    assert "patient list" in opened
    if username != "nina":  # the oncologists open the forms too
        assert {"edit draw", "plan cycles", "correct imaging"} <= set(opened), opened
    if username == "stella":
        assert {"replicate variation", "audit log"} <= set(opened), opened


# The screenshots this test has always saved for the README, by page.
SCREENSHOTS = {
    "worklist": "worklist",
    "results to review": "results-to-review",
    "patient page": "patient-page",
}


def test_the_worklist_pager_has_no_wcag_violations_and_pages_by_keyboard(
    page: Page, live_server, clinic, axe_source
):
    oncologist = User.objects.get(username="olivia")
    today = clinic["today"]
    for i in range(50):  # with the clinic's two: 52 cycles due, two pages
        patient = builders.patient(oncologist, mrn=f"PG-{i:03d}", family_name=f"Pager{i:03d}")
        line = builders.therapy_line(patient, oncologist, start_date=today - timedelta(days=20))
        builders.cycle(line, oncologist, number=2, scheduled_date=today + timedelta(days=i % 7))
    sign_in(page, live_server.url, "nina")
    settle(page)

    pager = page.get_by_role("navigation", name="Worklist pages")
    expect(pager).to_contain_text("Page 1 of 2")
    expect(page.locator("#worklist-count")).to_have_text("Showing 1–50 of 52 cycles due.")
    assert audit(page, axe_source) == []

    _tab_to(page, "el.getAttribute('rel') === 'next'", limit=400)
    page.keyboard.press("Enter")
    settle(page)

    expect(pager).to_contain_text("Page 2 of 2")
    expect(page.locator("ol.worklist > li")).to_have_count(2)
    expect(page.get_by_role("link", name="Previous page")).to_be_visible()
    assert audit(page, axe_source) == []
