"""How the printable report's time grows with the patient's draws: 1,000 draws against 100.

Run from the project root:  python bench/report_pdf.py [small] [large]   (100 and 1000)

The same synthetic patient as `rules_speed.py` (a draw a day, mixed statuses and
volumes, three therapy lines, two with doxorubicin, a cycle every 21 days), cut
to its first `small` and `large` draws, assessed by the rules and typeset by
`patients.reports.ctc_report.report_pdf` as the report view does (plain data: no
database, which the view reads in a fixed number of queries). Also the trend
chart alone, drawn at the report's size into a PDF. Times are medians of a few
runs in the same process; the figure of record is the ratio (issue 17: the
report at 1,000 draws within 5x its time at 100).
"""

from __future__ import annotations

import io
import os
import re
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MPLCONFIGDIR", str(ROOT / ".mplconfig"))

from bench.rules_speed import synthetic_patient  # noqa: E402 (the path must be set first)
from patients import rules  # noqa: E402
from patients.reports import charts, ctc_report  # noqa: E402
from patients.reports.chart_data import ChartData  # noqa: E402
from patients.reports.report_data import ReportData  # noqa: E402
from patients.reports.report_summary import CHART_H_IN, CHART_W_IN  # noqa: E402

MAX_RATIO = 5.0  # issue 17: 1,000 draws <= 5x 100


def report_data(n: int) -> ReportData:
    draws, lines, cycles = synthetic_patient(n)
    last = draws[-1].drawn_on
    cycles = [c for c in cycles if c.scheduled_date <= last]
    lines = [line for line in lines if line.start_date <= last]
    assessments = rules.assess_draws(draws, lines, cycles, cancer_type="breast", cutoff=5)
    today = last + timedelta(days=3)
    by_line = {line.id: line for line in lines}
    return ReportData(
        patient_name="Doe, Jane",
        mrn="MRN0001",
        birth_date=date(1960, 5, 17),
        sex="Female",
        cancer_type="breast",
        cutoff=5,
        oncologist="Dr A. Example",
        chart=ChartData("breast", 5, assessments, lines, cycles, [], today),
        assessments=assessments,
        voided=[],
        cycles=[
            (by_line[c.line_id], c, rules.assess_cycle(c, assessments, today=today)) for c in cycles
        ],
        imaging=[],
        accessions={},
        comments={},
        time_zone="UTC",
        generated_at=datetime.combine(today, datetime.min.time(), tzinfo=UTC),
        generated_by="bench",
    )


def median_seconds(work: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        work()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def chart_pdf(data: ChartData) -> bytes:
    buffer = io.BytesIO()
    charts.trend_figure(data, width_in=CHART_W_IN, height_in=CHART_H_IN).savefig(
        buffer, format="pdf"
    )
    return buffer.getvalue()


def main() -> None:
    small, large = (int(a) for a in (sys.argv[1:3] if len(sys.argv) > 2 else (100, 1000)))
    ctc_report.report_pdf(report_data(10))  # warm-up: fonts, matplotlib
    rows = []
    for n in (small, large):
        data = report_data(n)
        runs = 3 if n <= small else 2
        pages = len(re.findall(rb"/Type\s*/Page\b(?!s)", ctc_report.report_pdf(data)))
        rows.append(
            (
                n,
                median_seconds(lambda data=data: ctc_report.report_pdf(data), runs),
                median_seconds(lambda data=data: chart_pdf(data.chart), runs),
                pages,
            )
        )
    (n0, report0, chart0, _), (n1, report1, chart1, pages1) = rows
    print(f"{'draws':>6} {'report s':>9} {'chart s':>8} {'pages':>6}")
    for n, report, chart, pages in rows:
        print(f"{n:>6,} {report:>9.2f} {chart:>8.2f} {pages:>6}")
    ratio = report1 / report0
    verdict = "met" if ratio <= MAX_RATIO else "MISSED"
    print(f"report {n1:,} / {n0:,} draws: {ratio:.1f}x (target <= {MAX_RATIO:g}x: {verdict})")
    print(f"chart  {n1:,} / {n0:,} draws: {chart1 / chart0:.1f}x; {pages1} pages at {n1:,}")


if __name__ == "__main__":
    main()
