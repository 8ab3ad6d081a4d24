"""`make chart-samples` (scripts/chart_samples.py): every sample in docs/chart-samples is drawn
by the app's chart code from invented data, and the script really draws them all."""

from __future__ import annotations

import io
import subprocess
import sys
import xml.etree.ElementTree as ET

from matplotlib.image import imread

from patients.reports import invented
from tests.paths import ROOT

SAMPLES = ROOT / "docs" / "chart-samples"
SVG_NS = "{http://www.w3.org/2000/svg}"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_the_script_draws_every_sample_in_the_docs(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "chart_samples.py"), str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    made = sorted(path.name for path in tmp_path.iterdir())
    # Every sample the docs show can be drawn again, and the script draws nothing else.
    assert made == sorted(path.name for path in SAMPLES.iterdir())
    for name in made:
        body = (tmp_path / name).read_bytes()
        if name.endswith(".png"):
            assert body.startswith(PNG_SIGNATURE), name
            # The chart download's size: 9 x 4.2 inches at 110 dpi.
            assert imread(io.BytesIO(body)).shape[:2] == (462, 990), name
        else:
            root = ET.fromstring(body)
            points = [g for g in root.iter(f"{SVG_NS}g") if g.get("class") == "ctc-point"]
            # The conversion sample: 11 samples and one rejected tube, each with its tooltip.
            assert len(points) == 12, name
            for point in points:
                assert point.find(f"{SVG_NS}title") is not None
            # Whose chart it is, on the picture itself (an invented patient).
            assert "MRN MRN0001" in "".join(root.itertext())


def test_the_invented_series_are_assessed_at_the_settings_cut_offs(settings):
    assert invented.CUTOFFS == settings.CTC_CUTOFFS
