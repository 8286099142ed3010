"""The run report: the reference's monitoring list as JSON beside the output and as tables.

Era distribution GPU vs CPU, processing time per era, worker load balance (estimated and
actual), peak memory per worker and extraction success rate; every era's tries and the run's
steps on one clock, for the timeline of ``streamfx report`` (``run.html_report``). Written to
``runs/<run_id>.json`` in the folder of the first sink that offers one (the Parquet sink's
path; ``.streamfx`` without), and handed to every sink that records runs (the PostgreSQL
sink's ``streamfx_runs`` / ``streamfx_era_runs`` tables beside its features table).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

from ..classify.balance import imbalance
from ..config import PipelineConfig, sink_options
from ..database import redact
from ..errors import StreamfxError
from ..model import RunSummary
from ..sinks import ReportFolder, RunRecorder, Sink
from ..sinks.parquet.files import Location, put
from ..version import __version__

#: Where the JSON report goes when no sink offers a folder.
DEFAULT_FOLDER = ".streamfx"


def _ratio(values: list[float]) -> float | None:
    ratio = imbalance(values)
    return round(ratio, 3) if ratio is not None else None


def build_report(summary: RunSummary) -> dict[str, Any]:
    records = list(summary.records.values())
    routes = {p.analysis.era.key: p.route for p in summary.plan.eras}
    done, failed = summary.done, len(summary.failed)
    times = [r.seconds for r in records if r.status == "done"]
    workers = []
    for spec in summary.plan.workers:
        mine = [r for r in records if r.worker == spec.name]
        workers.append(
            {
                "worker": spec.name,
                "lane": spec.lane,
                "eras": len(mine),
                "estimated_load_s": round(summary.plan.loads.get(spec.name, 0.0), 3),
                "busy_s": round(sum(r.seconds for r in mine), 3),
                "peak_rss_mb": round(summary.worker_peak_rss_mb.get(spec.name, 0.0), 1),
                "restarts": summary.worker_restarts.get(spec.name, 0),
                "node": summary.worker_nodes.get(spec.name),
            }
        )
    balance = {}
    for lane in ("gpu", "cpu"):
        lane_workers = [w for w in workers if w["lane"] == lane]
        if lane_workers:
            balance[lane] = {
                "workers": len(lane_workers),
                "estimated_imbalance": _ratio([w["estimated_load_s"] for w in lane_workers]),
                "actual_imbalance": _ratio([w["busy_s"] for w in lane_workers]),
            }
    return {
        "run_id": summary.run_id,
        "pipeline": summary.pipeline,
        "fingerprint": summary.fingerprint,
        "streamfx_version": __version__,
        "started_at": summary.started_at.isoformat(),
        "seconds": round(summary.seconds, 3),
        "timings_s": {k: round(v, 3) for k, v in summary.timings.items()},
        "writes_s": {k: round(v, 3) for k, v in summary.writes.items()},
        "ended": redact(summary.ended),
        "routing_policy": summary.plan.policy,
        "gpu_devices": summary.plan.gpu_devices,
        "notices": summary.plan.notices,
        "eras": {
            "total": summary.eras_total,
            "done": done,
            "skipped": len(summary.skipped),
            "failed": failed,
            "resumed": summary.resumed,
        },
        "success_rate": round(done / (done + failed), 4) if done + failed else None,
        "distribution": {
            "routed": {
                lane: sum(p.route.lane == lane for p in summary.plan.eras)
                for lane in ("gpu", "cpu")
            },
            "ran": {
                lane: sum(r.lane == lane and r.status == "done" for r in records)
                for lane in ("gpu", "cpu")
            },
        },
        "era_seconds": {
            "mean": round(statistics.fmean(times), 3) if times else None,
            "median": round(statistics.median(times), 3) if times else None,
            "max": round(max(times), 3) if times else None,
        },
        "workers": workers,
        "balance": balance,
        "features": summary.features,
        "warnings": sum(len(r.warnings) for r in records),
        "rows_written": summary.rows_written,
        "spans": [
            {
                "name": span.name,
                "start_s": round(span.start_s, 4),
                "end_s": round(span.end_s, 4),
                "alongside": span.alongside,
            }
            for span in summary.spans
        ],
        "eras_detail": [
            {
                "era_id": r.era.id,
                "partition": r.era.partition,
                "start": r.era.start.isoformat(),
                "end": r.era.end.isoformat(),
                "status": r.status,
                "lane": r.lane,
                "route": route.lane if (route := routes.get(r.era.key)) else None,
                "condition": route.condition if route else r.rule,
                "rule": r.rule,
                "worker": r.worker,
                "estimated_cost_s": round(r.estimated_cost, 4),
                "readings": r.readings,
                "features": r.features,
                "seconds": round(r.seconds, 4),
                "peak_rss_mb": round(r.peak_rss_mb, 1),
                "attempts": r.attempts,
                "error": r.error,
                "warnings": r.warnings,
                "tries": [
                    {
                        "attempt": t.attempt,
                        "worker": t.worker,
                        "start_s": round(t.start_s, 4),
                        "end_s": None if t.end_s is None else round(t.end_s, 4),
                        "outcome": t.outcome,
                        "error": t.error,
                    }
                    for t in r.tries
                ],
            }
            for r in records
        ],
    }


def _write_json(report: dict[str, Any], folder: str | Path) -> str:
    """``<folder>/runs/<run_id>.json`` (a local folder or a URI), replaced whole; its name."""
    location = Location(folder)
    location.fs.create_dir(location.path("runs"), recursive=True)
    name = f"{report['run_id']}.json"
    text = json.dumps(report, indent=2, default=str)
    put(location.fs, location.path("runs", name), lambda out: out.write(text.encode()))
    return location.show("runs", name)


def write_report(
    summary: RunSummary, sinks: Sequence[Sink], notify: Callable[[str], None]
) -> list[str]:
    """Write the JSON report and hand it to the sinks that record runs; the lines saying where
    (and, once the JSON is written, the command that makes its HTML report).

    Each place is best effort, the others written all the same: the folder may be why the run
    stopped (unwritable), the database too; a notice says where the report could not go.
    """
    report = build_report(summary)
    folder = next((s.report_folder for s in sinks if isinstance(s, ReportFolder)), DEFAULT_FOLDER)
    places, lines = [], []
    try:
        places.append(_write_json(report, folder))
        lines.append(f"html report: streamfx report {places[0]}")
    except (OSError, pa.ArrowException) as exc:
        where = Location(folder).show("runs", f"{report['run_id']}.json")
        notify(f"run report not written to {where} ({' '.join(str(exc).split())})")
    for sink in sinks:
        if not isinstance(sink, RunRecorder):
            continue
        try:
            places.append(sink.record_run(report))
        except Exception as exc:
            notify(f"run report not written to the database ({' '.join(str(exc).split())})")
    return ["report: " + (" and ".join(places) or "not written"), *lines]


def report_folder(config: PipelineConfig) -> str | Path:
    """Where runs of ``config`` write their reports, as :func:`write_report` finds it among the
    built-in sinks: the Parquet sink's path, else :data:`DEFAULT_FOLDER` (a plugin sink's
    own folder is not known before it starts: name its report's file instead)."""
    parquet = sink_options(config).get("parquet")
    return parquet.path if parquet is not None else DEFAULT_FOLDER


def find_report(run: str, folder: str | Path) -> tuple[Location, str]:
    """Where the JSON report of ``run`` (a run id, or ``latest``: the newest, as run ids begin
    with their UTC start) is under ``folder``'s ``runs/``: that folder and the file's name."""
    runs = Location(f"{str(folder).rstrip('/')}/runs")
    if run == "latest":
        found = runs.fs.get_file_info(pafs.FileSelector(runs.root, allow_not_found=True))
        names = sorted(i.base_name for i in found if i.base_name.endswith(".json"))
        if not names:
            raise StreamfxError(f"no run reports in {runs.show()}")
        return runs, names[-1]
    return runs, f"{run}.json"


def read_report(location: Location, name: str) -> dict[str, Any]:
    """The run report ``name`` in ``location``, checked to be one with every era's tries and
    the run's steps (the HTML report's timeline; earlier reports had neither)."""
    shown = location.show(name)
    try:
        with location.fs.open_input_stream(location.path(name)) as stream:
            report = json.loads(stream.read())
    except FileNotFoundError:
        raise StreamfxError(f"no run report {shown}") from None
    except (OSError, pa.ArrowException, ValueError) as exc:
        raise StreamfxError(f"{shown}: not a run report ({' '.join(str(exc).split())})") from None
    if not isinstance(report, dict) or not {"run_id", "eras", "eras_detail"} <= report.keys():
        raise StreamfxError(f"{shown}: not a run report (no run_id, eras, eras_detail)")
    if "spans" not in report:
        raise StreamfxError(
            f"{shown}: written by an earlier streamfx ({report.get('streamfx_version', '?')}),"
            " without the tries and steps that the HTML report shows: run the pipeline again"
        )
    return report
