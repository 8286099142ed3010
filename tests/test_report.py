"""The HTML run report, opened in a real headless browser: every plot drawn, with data, and no
console error; a run with a failed era and retried ones shows them (timeline, failures table)
as the JSON report records them (each try: worker, start, end, outcome, error)."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

from typer.testing import CliRunner

from streamfx.cli import app
from streamfx.run.html_report import PLOTS
from streamfx.source.datasets.demo import DemoTables, seed_demo

from .browser import open_page
from .conftest import REPO
from .helpers import streamfx, write_pipeline

#: The demo's two days: eras 1/1, 2/2 and 2/3, and 1/4 without readings.
FAULTS = "1/1:raise,2/2:raise-once"

#: Waits until every plot is drawn, then says what each drew: its traces and their marks.
PLOTS_DRAWN = """
(async () => {
  const sections = [...document.querySelectorAll('section[data-plot]')];
  const drawn = () => sections.every(s => s.querySelector('.js-plotly-plot .main-svg'));
  for (let i = 0; i < 400 && !drawn(); i++) await new Promise(r => setTimeout(r, 25));
  return sections.map(s => {
    const gd = s.querySelector('.js-plotly-plot');
    const count = selector => gd ? gd.querySelectorAll(selector).length : 0;
    return {
      plot: s.dataset.plot,
      traces: gd ? gd._fullData.filter(t => t.visible).map(t => t.name) : [],
      marks: count('.barlayer .point') + count('.scatterlayer .point')
        + count('.scatterlayer .js-line') + count('.table .cell-text'),
      text: gd ? gd.textContent : '',
    };
  });
})()
"""


def test_report_of_a_run_with_failures_and_retries(tmp_path: Path, pg_dsn: str, pg_conn) -> None:
    seed_demo(pg_conn, DemoTables(), days=2)
    path = write_pipeline(
        tmp_path / "pipeline.yaml",
        plugins=[str(REPO / "tests" / "plugins" / "faults.py")],
        stages__extract__extractor="faulty",
        stages__classify={"profile": "reference", "default_features": "minimal"},
        executor={"cpu_workers": 2, "retry": {"attempts": 2, "backoff": "0s"}},
    )
    env = {"STREAMFX_FAULTS": FAULTS, "STREAMFX_FAULTS_DIR": str(tmp_path)}
    run = streamfx("run", str(path), dsn=pg_dsn, env=env)  # not -q: stderr is no terminal
    assert run.returncode == 1, run.stderr
    assert "\x1b" not in run.stderr + run.stdout  # no bars, no colours in a log
    (command,) = re.findall(r"html report: (streamfx report \S+\.json)", run.stdout)
    json_file = Path(command.split()[-1])

    # the JSON: every try, with its worker, span, outcome and error
    report = json.loads(json_file.read_text())
    eras = {f"{e['partition']}/{e['era_id']}": e for e in report["eras_detail"]}
    failed = eras["1/1"]["tries"]  # its pass (of more eras, or alone), then alone, twice
    assert [(t["attempt"], t["outcome"]) for t in failed[-2:]] == [(1, "retried"), (2, "failed")]
    assert all("injected fault on era 1/1" in t["error"] for t in failed)
    retried = eras["2/2"]["tries"]
    assert eras["2/2"]["status"] == "done" and retried[0]["outcome"] == "retried"
    assert retried[-1]["outcome"] == "done" and retried[-1]["attempt"] == 2
    assert eras["1/4"]["tries"] == [] and eras["1/4"]["condition"] == "no readings: skipped"
    tries = sorted(
        (t["worker"], t["start_s"], t["end_s"], t["outcome"])
        for e in eras.values()
        for t in e["tries"]
    )
    assert all(0 <= start <= end <= report["seconds"] for _, start, end, _ in tries)
    done = [t for t in tries if t[3] == "done"]  # a failed pass's eras share its span
    for (worker, _, end, _), (next_worker, start, _, _) in itertools.pairwise(done):
        assert worker != next_worker or start >= end - 1e-3  # one era after the other
    assert {"plan", "extract", "close parquet"} <= {s["name"] for s in report["spans"]}

    result = CliRunner().invoke(app, command.split()[1:])
    assert result.exit_code == 0, result.output
    page_file = json_file.with_suffix(".html")
    assert f"{page_file} (open it in a browser" in result.output
    seen = open_page(page_file, PLOTS_DRAWN, tmp_path / "chromium")
    assert seen.errors == [] and seen.requests == []  # it needs no network
    plots = {p["plot"]: p for p in seen.value}
    assert list(plots) == list(PLOTS)
    assert all(p["traces"] and p["marks"] > 0 for p in plots.values()), plots
    timeline = plots["timeline"]
    assert {"try done", "try retried", "try failed", "retry or failure"} <= set(timeline["traces"])
    assert {"cpu-0", "cpu-1", "run"} <= set(re.findall(r"cpu-\d|run", timeline["text"]))
    failures = plots["failures"]["text"]
    assert "injected fault on era 1/1" in failures and "2/2" in failures
    assert "ran on cpu" in plots["lanes"]["traces"] and "failed" in plots["lanes"]["traces"]


def test_report_names_what_it_cannot_find(tmp_path: Path) -> None:
    path = write_pipeline(tmp_path / "pipeline.yaml")
    runner = CliRunner()
    for args, needle in (
        (["report", "-p", str(path)], "no run reports in"),
        (["report", "20240101T000000Z-abcdef", "-p", str(path)], "no run report"),
        (["report", str(tmp_path / "pipeline.json")], "no run report"),
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        assert needle in result.output and "Traceback" not in result.output
    (tmp_path / "old.json").write_text(json.dumps({"run_id": "x", "eras": {}, "eras_detail": []}))
    result = runner.invoke(app, ["report", str(tmp_path / "old.json")])
    assert result.exit_code == 2 and "run the pipeline again" in result.output
