"""The CPU time of ranking patients: the rules' part of `ranks.refresh_review_ranks`.

Run from the project root, against a database holding a cohort
(`manage.py generate_cohort`), with DJANGO_SETTINGS_MODULE and DATABASE_URL set:

    python bench/rank_refresh.py [patients] [rounds] [--profile]

Loads the first `patients` patients' rows once, as values (what the refresh
loads), then times, best of `rounds`, the work the refresh does per patient
between loading and writing: `rules.assess_draws` over its tubes, the ranks of
every cycle (`ranks.cycle_ranks`) and of every result (`ranks.result_ranks`).
CPU time of this process (`time.process_time`), which the machine's load does
not stretch. Nothing is written.

It also prints a digest of everything computed: every tube's flags (code,
severity, message, source) and figures, every cycle's assessment on each of
its phase days and every rank. Run on two versions of the code against the
same database, equal digests mean the same decisions and the same messages.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ctctrack.settings")
    django.setup()
    from django.conf import settings
    from django.utils import timezone

    from patients import rules
    from patients.assessment import ranks
    from patients.assessment.loader import VALUES, Loader, cycle_in
    from patients.models import Patient

    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    count = int(args[0]) if args else 1000
    rounds = int(args[1]) if len(args) > 1 else 3
    ids = list(Patient.objects.order_by("pk").values_list("pk", flat=True)[:count])
    loader = Loader(VALUES)
    patients = list(loader.load(loader.cancer_types(ids)).values())
    window = settings.CTC_PRE_CYCLE_WINDOW_DAYS
    zone = timezone.get_current_timezone()

    def rank_all() -> list[object]:
        out: list[object] = []
        for rows in patients:
            assessments = rows.assess(zone)
            covers = rows.acknowledged()
            tubes = ranks.TubesByDay(assessments)
            out.append([ranks.cycle_ranks(cycle_in(c), tubes, covers, window) for c in rows.cycles])
            out.append(ranks.result_ranks(assessments, covers))
        return out

    began = time.process_time()
    rank_all()  # the first round fills the rules' caches (p-values, intervals)
    cold = time.process_time() - began
    best = float("inf")
    for _ in range(rounds):
        began = time.process_time()
        rank_all()
        best = min(best, time.process_time() - began)
    tubes = sum(len(rows.draws) for rows in patients)
    cycles = sum(len(rows.cycles) for rows in patients)
    print(f"{len(patients)} patients, {tubes} tubes, {cycles} cycles")
    print(f"ranking them (CPU), first round: {cold:.3f} s ({len(patients) / cold:,.0f}/s)")
    print(
        f"ranking them (CPU), best of {rounds} more: {best:.3f} s ({len(patients) / best:,.0f}/s)"
    )
    print(f"digest: {_digest(patients, zone, window, rules, cycle_in)}")
    if "--profile" in sys.argv:
        from pyinstrument import Profiler

        with Profiler(interval=0.0005) as profiler:
            rank_all()
        print(profiler.output_text(unicode=False, color=False, show_all=False))


def _digest(patients, zone, window, rules, cycle_in) -> str:  # type: ignore[no-untyped-def]
    """Everything the rules say about these patients, hashed."""
    from patients.assessment import ranks

    digest = hashlib.sha256()
    for rows in patients:
        assessments = rows.assess(zone)
        covers = rows.acknowledged()
        for a in assessments:
            digest.update(
                repr(
                    (a.draw.id, a.evaluable, a.rate_per_7_5_ml, a.category, a.ci95, a.flags)
                    + (a.line_id, a.p_at_or_above_cutoff)
                ).encode()
            )
        for cycle in map(cycle_in, rows.cycles):
            for today in rules.phase_days(cycle, window):
                found = rules.assess_cycle(cycle, assessments, today=today, window_days=window)
                digest.update(repr((found.state, found.window, found.flags)).encode())
                digest.update(repr(found.draw.draw.id if found.draw else None).encode())
            ranked = ranks.cycle_ranks(cycle, ranks.TubesByDay(assessments), covers, window)
            digest.update(repr(ranked).encode())
        digest.update(repr(sorted(ranks.result_ranks(assessments, covers).items())).encode())
    return digest.hexdigest()[:16]


if __name__ == "__main__":
    main()
