"""The fleet report: built by `train` and `fleetcast report`, checked as numbers and in a real browser."""

from __future__ import annotations

import base64
import csv
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from PIL import Image

from fleetcast.cli import main
from fleetcast.report.build import write_report
from fleetcast.report.fleet_stats import fleet_stats
from fleetcast.report.training_output import read_training_output
from fleetcast.training.job import REPORT_FIELDS, host_html_report_name
from tests.helpers import write_folder_layout, write_hyperparameters

CHANNEL = ("input", "data", "train")


def train_fleet(root: Path, customers: int, **hyperparameters: str) -> Path:
    """A real `train` run on generated customers plus one that fails; returns the HTML report it wrote."""
    channel = root.joinpath(*CHANNEL)
    write_folder_layout(channel, range(customers))
    (channel / "short").mkdir()
    (channel / "short" / "data.csv").write_text("timestamp,consumption\n2022-01-01,1\n2022-01-02,2\n")
    write_hyperparameters(root, workers="2", selection="off", max_failure_rate="0.5", **hyperparameters)
    assert main(["train"]) == 0
    return root / "output" / "data" / host_html_report_name("algo-1")


def embedded_svgs(page: str, css_class: str) -> list[str]:
    pattern = rf'<img class="{css_class}"[^>]*src="data:image/svg\+xml;base64,([^"]+)"'
    return [base64.b64decode(data).decode() for data in re.findall(pattern, page)]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    return found


def browser(*args: str) -> subprocess.CompletedProcess:
    command = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


@pytest.mark.slow  # a real browser
def test_train_writes_a_report_that_a_browser_shows_with_every_plot_loaded(sm_root: Path, tmp_path: Path):
    page_path = train_fleet(sm_root, 14)
    assert page_path.is_file()  # written by train, in output/data: it lands in output.tar.gz
    page = page_path.read_text()
    assert 'src="http' not in page and 'href="http' not in page  # nothing fetched from anywhere
    plots = embedded_svgs(page, "customer-plot")
    assert len(plots) == 10
    assert all("<polygon" in svg and "uncertainty interval" in svg for svg in plots)
    assert "only 2 usable rows (min_rows=30)" in page  # the failure, with its reason

    # The browser's own word on the images: a script records each one's natural width after loading.
    probe = tmp_path / "probe.html"
    recorder = (
        "<script>window.addEventListener('load', () => { for (const img of document.images) "
        "{ img.setAttribute('data-loaded-width', String(img.naturalWidth)); } });</script>"
    )
    probe.write_text(page.replace("</body>", recorder + "</body>"))
    dom = browser("--dump-dom", probe.as_uri()).stdout
    widths = re.findall(r'<img class="customer-plot"[^>]*data-loaded-width="(\d+)"', dom)
    assert len(widths) == 10 and all(int(width) > 0 for width in widths), widths
    histogram = re.findall(r'<img class="histogram"[^>]*data-loaded-width="(\d+)"', dom)
    assert histogram and int(histogram[0]) > 0

    screenshot = tmp_path / "report.png"  # kept in the test's tmp folder, to look at
    browser(f"--screenshot={screenshot}", "--window-size=1280,2400", page_path.as_uri())
    image = Image.open(screenshot).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 20) or []
    not_white = sum(count for count, colour in colours if colour != (255, 255, 255))
    assert len(colours) > 50, "the screenshot is (nearly) one colour"
    assert not_white > 0.05 * image.width * image.height


def test_a_fleet_without_intervals_is_drawn_without_a_band(sm_root: Path):
    page = train_fleet(sm_root, 12, uncertainty_samples="0").read_text()
    plots = embedded_svgs(page, "customer-plot")
    assert len(plots) == 10
    assert all("<polygon" not in svg and "forecast (yhat)" in svg for svg in plots)


def write_rows(path: Path, rows: list[dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=REPORT_FIELDS, restval="")
        writer.writeheader()
        writer.writerows(rows)


def test_numbers_worst_customers_and_escaping(tmp_path: Path):
    rows = [
        {"customer": "a", "status": "trained", "smape": "2", "naive_smape": "4"},  # 0.5
        {"customer": "b", "status": "trained", "smape": "6", "naive_smape": "3"},  # 2.0
        {"customer": "c", "status": "skipped", "smape": "3", "naive_smape": "3"},  # 1.0
        {"customer": "d", "status": "trained", "smape": "1", "naive_smape": "0"},  # infinitely worse
        {"customer": "e", "status": "trained", "smape": "", "naive_smape": ""},  # not scored
        {"customer": "f", "status": "failed", "reason": "<script>alert(1)</script> bad rows"},
    ]
    write_rows(tmp_path / "out" / "algo-1" / "report-algo-1.csv", rows[:3])
    write_rows(tmp_path / "out" / "algo-2" / "report-algo-2.csv", rows[3:])
    stats = fleet_stats(read_training_output(tmp_path / "out"), worst_count=3)
    assert stats.customers == 6 and stats.hosts == 2
    assert stats.counts == {"trained": 4, "skipped": 1, "failed": 1}
    assert [s.customer for s in stats.worst] == ["d", "b", "c"]
    # Drawn inside a resumed job, the page ranks only what the run trained: c's archive is not in its folder.
    in_job = fleet_stats(read_training_output(tmp_path / "out"), worst_count=3, worst_trained_only=True)
    assert [s.customer for s in in_job.worst] == ["d", "b", "a"]
    page = write_report(tmp_path / "out", tmp_path / "job.html", worst_trained_only=True).read_text()
    assert "among the customers this run trained" in page
    assert stats.median_smape == 2.5 and stats.median_naive_smape == 3.0
    assert stats.beats_naive_share == 0.25
    out = write_report(tmp_path / "out", tmp_path / "report.html")
    page = out.read_text()
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt; bad rows" in page
    assert "no models folder given" in page  # the worst are listed, without plots, saying why


def test_the_cli_reports_missing_inputs_clearly(tmp_path: Path, capsys: pytest.CaptureFixture):
    assert main(["report", "--train-output", str(tmp_path), "--out", str(tmp_path / "r.html")]) == 1
    assert not (tmp_path / "r.html").exists()


def test_a_thousand_customers_take_well_under_ten_seconds(sm_root: Path, tmp_path: Path):
    train_fleet(sm_root, 12)
    with open(sm_root / "output" / "data" / "report-algo-1.csv", newline="") as handle:
        real = list(csv.DictReader(handle))
    filler = [
        {"customer": f"x{i}", "status": "trained", "smape": "1.0", "naive_smape": "5.0"}
        for i in range(1000 - 13)
    ]
    write_rows(tmp_path / "big" / "report-algo-1.csv", real + filler)
    began = time.perf_counter()
    page = write_report(tmp_path / "big", tmp_path / "big.html", models=sm_root / "checkpoints").read_text()
    seconds = time.perf_counter() - began
    assert len(embedded_svgs(page, "customer-plot")) == 10
    assert ">1,000</td>" in page
    assert seconds < 10, seconds


def test_the_cli_draws_the_forecast_dataset_the_batch_job_wrote(sm_root: Path, tmp_path: Path):
    train_fleet(sm_root, 12)
    checkpoints = sm_root / "checkpoints"
    forecasts = tmp_path / "forecasts"
    args = ["forecast", "--models", str(checkpoints), "--out", str(forecasts), "--period", "9"]
    assert main([*args, "--reports", str(tmp_path / "reports"), "--workers", "1"]) == 0
    out = tmp_path / "report.html"
    args = ["report", "--train-output", str(sm_root / "output"), "--models", str(checkpoints)]
    assert main([*args, "--forecasts", str(forecasts), "--out", str(out)]) == 0
    page = out.read_text()
    assert f"forecasts: {forecasts}" in page
    plots = embedded_svgs(page, "customer-plot")
    assert len(plots) == 10 and all("forecast (yhat)" in svg for svg in plots)
    # Without --models the archives are looked for under --train-output (here, the /opt/ml root).
    assert main(["report", "--train-output", str(sm_root), "--out", str(out)]) == 0
    assert len(embedded_svgs(out.read_text(), "customer-plot")) == 10


def test_a_seasonal_naive_customer_is_drawn_from_the_season_it_keeps(tmp_path: Path):
    from fleetcast.model import archive
    from fleetcast.report.customer_plots import customer_plot
    from fleetcast.report.fleet_stats import Scored
    from tests.serving.models import archive_baseline, daily_history

    archive_baseline(tmp_path / "models", "10", daily_history(10))
    assert (
        archive.model_kind(archive.read_archive(tmp_path / "models" / "10.tar.gz")[1])
        == archive.BASELINE_KIND
    )
    plot = customer_plot(Scored("10", 5.0, 4.0, "naive"), tmp_path / "models", holdout_days=0, period=7)
    assert plot.svg is not None, plot.problem
    assert "<polygon" in plot.svg and "history" in plot.svg


def test_the_histogram_of_a_small_fleet_counts_in_whole_customers():
    """Six customers: the y axis must not read "0.5 customers" or "1.5 customers"."""
    from fleetcast.report.histogram import ratio_histogram_svg

    svg = ratio_histogram_svg([0.62, 0.71, 0.73, 0.85, 0.93, 1.04])
    ticks = re.findall(r'<text x="[0-9.]+" y="[0-9.]+" text-anchor="end"[^>]*>([^<]+)</text>', svg)
    assert ticks, "no y tick labels found"
    assert all(float(t.replace(",", "")).is_integer() for t in ticks), ticks
