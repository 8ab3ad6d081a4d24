"""The chart samples in docs/chart-samples, drawn by the app's own chart code: `make chart-samples`.

    python scripts/chart_samples.py [DIRECTORY]     # default: docs/chart-samples

Each sample is an invented patient's downloaded chart (the identity line
included), drawn by `patients.reports.charts.trend_png` / `trend_svg` from
series assessed by `patients.rules.assess_draws`, as the chart views do. The
data is fixed (fixed dates, no clock, no random numbers), so the same code
draws the same bytes: regenerate after a change to the chart and look at the
difference. No database and no Django: the chart code needs neither.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from patients.reports import charts  # noqa: E402
from patients.reports.chart_data import ChartData, ChartIdentity, ImagingPoint  # noqa: E402
from patients.reports.invented import InventedSeries, chart_data  # noqa: E402

DEFAULT_DIRECTORY = ROOT / "docs" / "chart-samples"
# An invented patient: the name and MRN are nobody's.
PATIENT = ("Doe, Jane", "MRN0001", date(1960, 5, 17))


def conversion() -> ChartData:
    """Breast: two lines, conversions both ways, a rejected draw, a 5 mL draw, imaging."""
    s = InventedSeries()
    today = date(2025, 11, 10)
    first = s.line(1, date(2025, 3, 3), "Paclitaxel")
    second = s.line(2, date(2025, 8, 4), "Capecitabine")
    cycles = [
        *s.cycles(first, 7, every=21, today=today),
        *s.cycles(second, 6, every=21, today=today),
    ]
    counts = [
        (date(2025, 2, 26), 14),
        (date(2025, 3, 20), 3),
        (date(2025, 4, 10), 1),
        (date(2025, 5, 2), 0),
        (date(2025, 5, 22), 2),
        (date(2025, 6, 12), 9),
        (date(2025, 7, 3), 11),
        (date(2025, 8, 21), 4),
        (date(2025, 9, 11), 2),
        (date(2025, 10, 23), 1),
    ]
    draws = [s.draw(on, count) for on, count in counts]
    draws += [
        s.draw(date(2025, 5, 1), status="rejected"),
        s.draw(date(2025, 7, 29), 9, volume="5.0"),
    ]
    imaging = [
        ImagingPoint(date(2025, 4, 30), "CT", "PR"),
        ImagingPoint(date(2025, 6, 30), "CT", "PD"),
        ImagingPoint(date(2025, 6, 30), "Bone scan", "SD"),
        ImagingPoint(date(2025, 9, 29), "CT", "SD"),
    ]
    return chart_data("breast", draws, today=today, lines=[first, second], cycles=cycles,
                       imaging=imaging)  # fmt: skip


def low_counts() -> ChartData:
    """Breast: counts of 0 to 4 on one line, never at the cut-off."""
    s = InventedSeries()
    today = date(2025, 11, 10)
    first = s.line(1, date(2025, 6, 2), "Paclitaxel")
    cycles = s.cycles(first, 8, every=21, today=today)
    counts = [2, 1, 0, 3, 1, 4, 2]
    draws = [s.draw(date(2025, 5, 29) + timedelta(days=21 * k), c) for k, c in enumerate(counts)]
    return chart_data("breast", draws, today=today, lines=[first], cycles=cycles)


def very_high() -> ChartData:
    """Prostate: counts in the thousands up to 20,000, a failed draw, scans on the same days."""
    s = InventedSeries()
    today = date(2025, 9, 1)
    first = s.line(1, date(2025, 1, 13), "Docetaxel")
    second = s.line(2, date(2025, 6, 16), "Cabazitaxel")
    cycles = [
        *s.cycles(first, 7, every=21, today=today),
        *s.cycles(second, 6, every=21, today=today),
    ]
    counts = [
        (date(2025, 1, 8), 850),
        (date(2025, 1, 30), 420),
        (date(2025, 2, 20), 610),
        (date(2025, 3, 13), 1900),
        (date(2025, 4, 3), 4300),
        (date(2025, 5, 15), 7600),
        (date(2025, 6, 11), 12400),
        (date(2025, 7, 3), 20000),
        (date(2025, 7, 24), 9800),
        (date(2025, 8, 14), 6100),
    ]
    draws = [s.draw(on, count) for on, count in counts]
    draws.append(s.draw(date(2025, 4, 24), status="failed"))
    imaging = [
        ImagingPoint(on, modality, response)
        for on, response in ((date(2025, 3, 31), "SD"), (date(2025, 6, 2), "PD"))
        for modality in ("CT", "Bone scan")
    ]
    imaging.append(ImagingPoint(date(2025, 8, 18), "PET-CT", "SD"))
    return chart_data("prostate", draws, today=today, lines=[first, second], cycles=cycles,
                       imaging=imaging)  # fmt: skip


def empty() -> ChartData:
    """Breast: a line started, no draw yet."""
    s = InventedSeries()
    today = date(2025, 11, 10)
    first = s.line(1, date(2025, 10, 6), "Docetaxel")
    return chart_data("breast", [], today=today, lines=[first],
                       cycles=s.cycles(first, 4, every=21, today=today))  # fmt: skip


# Every sample: its file name and what it is drawn from.
SAMPLES: dict[str, Callable[[], ChartData]] = {
    "trend-conversion.png": conversion,
    "trend-conversion.svg": conversion,
    "trend-empty.png": empty,
    "trend-low-counts.png": low_counts,
    "trend-very-high.png": very_high,
}


def sample_bytes(name: str) -> bytes:
    """The sample `name` as the chart download would send it: the identity line on top."""
    data = SAMPLES[name]()
    patient_name, mrn, born = PATIENT
    identity = ChartIdentity(name=patient_name, mrn=mrn, birth_date=born, made_on=data.today)
    if name.endswith(".svg"):
        return charts.trend_svg(data, identity=identity)
    return charts.trend_png(data, identity=identity)


def write_samples(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name in SAMPLES:
        path = directory / name
        path.write_bytes(sample_bytes(name))
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", nargs="?", type=Path, default=DEFAULT_DIRECTORY)
    directory = parser.parse_args(argv).directory
    for path in write_samples(directory):
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


if __name__ == "__main__":
    main()
