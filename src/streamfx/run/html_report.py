"""The HTML run report: one page, viewed without a network, with a plot for each question the
JSON run report answers (``run.report``): which era ran where and when (retries marked), time
per era against its readings, the lane and rule of every era, worker memory, the failures and
their errors, and where the run's time went.

The plots are plotly figures, with plotly.js written into the page itself (about 5 MB): a
report must open years later, on a machine without a network. Each plot sits in a
``<section data-plot="NAME">`` (:data:`PLOTS`), which the browser test counts.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Iterable
from typing import Any

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from ..model import era_key

#: Each plot's name (its section's ``data-plot``) and heading, in page order.
PLOTS = {
    "timeline": "Timeline: which era ran where and when",
    "era-seconds": "Time per era against its readings",
    "lanes": "Lanes: the rule that routed each era, and where it ran",
    "memory": "Worker memory",
    "failures": "Failures and retries",
    "time": "Where the run's time went",
}
#: Colours of a try by how it ended (the timeline, the lanes plot).
OUTCOMES = {
    "done": "#4c78a8",
    "skipped": "#bab0ac",
    "retried": "#f58518",
    "failed": "#e45756",
    "unfinished": "#9d755d",
}
CONFIG = {"displaylogo": False, "responsive": True}
LEGEND_ON_TOP = {"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0}
PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em auto; padding: 0 1em; max-width: 1200px; color: #222; }}
h1 {{ font-size: 1.4em; margin-bottom: 0.2em; }}
h2 {{ font-size: 1.1em; margin: 1.6em 0 0.2em; }}
table.facts {{ border-collapse: collapse; margin-top: 0.6em; }}
table.facts th {{ text-align: left; padding: 0.15em 1.2em 0.15em 0; font-weight: 600; }}
table.facts td {{ padding: 0.15em 0; }}
</style>
<script type="text/javascript">{plotlyjs}</script>
</head>
<body>
<h1>{title}</h1>
<table class="facts">{facts}</table>
{sections}
</body>
</html>
"""


def render_html(report: dict[str, Any]) -> str:
    """The page for ``report`` (a run report as ``build_report`` writes it)."""
    figures = {
        "timeline": _timeline(report),
        "era-seconds": _era_seconds(report),
        "lanes": _lanes(report),
        "memory": _memory(report),
        "failures": _failures(report),
        "time": _time(report),
    }
    sections = []
    for name, figure in figures.items():
        figure.update_layout(
            template="plotly_white", margin={"l": 10, "r": 10, "t": 30, "b": 40}, font_size=12
        )
        plot = figure.to_html(
            full_html=False, include_plotlyjs=False, config=CONFIG, div_id=f"plot-{name}"
        )
        sections.append(f'<section data-plot="{name}">\n<h2>{PLOTS[name]}</h2>\n{plot}</section>')
    title = f"streamfx run {report['run_id']} ({report['pipeline']})"
    return PAGE.format(
        title=html.escape(title),
        facts=_facts(report),
        sections="\n".join(sections),
        plotlyjs=get_plotlyjs(),
    )


def _facts(report: dict[str, Any]) -> str:
    eras = report["eras"]
    routed, ran = report["distribution"]["routed"], report["distribution"]["ran"]
    rate = report["success_rate"]
    rows = {
        "started": f"{dt.datetime.fromisoformat(report['started_at']):%Y-%m-%d %H:%M:%S %Z}"
        f" ({report['seconds']:.1f} s, {report['ended']})",
        "eras": f"{eras['total']:,}: {eras['done']:,} done, {eras['resumed']:,} already done, "
        f"{eras['skipped']:,} skipped (no readings), {eras['failed']:,} failed",
        "success rate": "-" if rate is None else f"{rate:.1%}",
        "lanes": f"routed GPU {routed['gpu']:,} / CPU {routed['cpu']:,} "
        f"({report['routing_policy']} policy); ran GPU {ran['gpu']:,} / CPU {ran['cpu']:,}",
        "workers": ", ".join(
            f"{lane} imbalance {b['actual_imbalance'] or 1:.2f} actual, "
            f"{b['estimated_imbalance'] or 1:.2f} estimated ({b['workers']} workers)"
            for lane, b in report["balance"].items()
        )
        or "-",
        "features": f"{report['features']:,} values, {report['warnings']:,} warnings",
        "written": ", ".join(
            f"{sink} {rows:,} rows" for sink, rows in report["rows_written"].items()
        )
        or "-",
        "streamfx": f"{report['streamfx_version']}, fingerprint {report['fingerprint']}",
    }
    lines = [*rows.items(), *(("notice", notice) for notice in report["notices"])]
    return "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in lines
    )


def _key(era: dict[str, Any]) -> str:
    return era_key(era["era_id"], era["partition"])


def _tries(report: dict[str, Any]) -> Iterable[tuple[dict[str, Any], dict[str, Any]]]:
    """Every try of every era, with its era; a try still running at the end is unfinished."""
    for era in report["eras_detail"]:
        for attempt in era["tries"]:
            if attempt["end_s"] is None:
                attempt = {**attempt, "end_s": report["seconds"], "outcome": "unfinished"}
            yield era, attempt


def _hover(era: dict[str, Any], attempt: dict[str, Any]) -> str:
    lines = [
        f"era {_key(era)}, try {attempt['attempt']} on {attempt['worker']}: {attempt['outcome']}",
        f"{attempt['start_s']:.2f} to {attempt['end_s']:.2f} s "
        f"({attempt['end_s'] - attempt['start_s']:.2f} s)",
        f"{era['readings']:,} readings, {era['lane']} lane, {era['rule']}",
    ]
    if attempt["error"]:
        lines.append(attempt["error"][:300])
    return "<br>".join(html.escape(line) for line in lines)


def _timeline(report: dict[str, Any]) -> go.Figure:
    """A row for the run's steps, one per worker (its tries, coloured by how they ended, retries
    marked) and one per sink writer (each call, alongside the workers)."""
    steps = [s for s in report["spans"] if not s["alongside"]]
    writers = [s for s in report["spans"] if s["alongside"]]
    workers = [w["worker"] for w in report["workers"]]
    workers += sorted({a["worker"] for _, a in _tries(report)} - set(workers))
    writer_rows = list(dict.fromkeys(f"writer: {s['name']}" for s in writers))
    rows = ["run", *workers, *writer_rows]
    figure = go.Figure()
    figure.add_bar(
        name="run steps",
        orientation="h",
        y=["run"] * len(steps),
        base=[s["start_s"] for s in steps],
        x=[s["end_s"] - s["start_s"] for s in steps],
        text=[s["name"] for s in steps],
        textposition="inside",
        insidetextanchor="middle",
        marker_color="#72b7b2",
        hovertext=[f"{s['name']}: {s['end_s'] - s['start_s']:.2f} s" for s in steps],
        hoverinfo="text",
    )
    by_outcome: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {}
    for era, attempt in _tries(report):
        by_outcome.setdefault(attempt["outcome"], []).append((era, attempt))
    for outcome, tries in by_outcome.items():
        figure.add_bar(
            name=f"try {outcome}",
            orientation="h",
            y=[a["worker"] for _, a in tries],
            base=[a["start_s"] for _, a in tries],
            x=[a["end_s"] - a["start_s"] for _, a in tries],
            marker_color=OUTCOMES.get(outcome, "#000"),
            marker_line={"width": 0.5, "color": "white"},
            hovertext=[_hover(e, a) for e, a in tries],
            hoverinfo="text",
        )
    retried = by_outcome.get("retried", []) + by_outcome.get("failed", [])
    figure.add_scatter(
        name="retry or failure",
        mode="markers",
        y=[a["worker"] for _, a in retried],
        x=[a["end_s"] for _, a in retried],
        marker={"symbol": "x", "size": 9, "color": "#222"},
        hovertext=[_hover(e, a) for e, a in retried],
        hoverinfo="text",
    )
    figure.add_bar(
        name="sink writer calls",
        orientation="h",
        y=[f"writer: {s['name']}" for s in writers],
        base=[s["start_s"] for s in writers],
        x=[s["end_s"] - s["start_s"] for s in writers],
        marker_color="#54a24b",
        hovertext=[f"{s['name']}: {s['end_s'] - s['start_s']:.3f} s" for s in writers],
        hoverinfo="text",
    )
    figure.update_layout(
        barmode="overlay",
        height=140 + 30 * len(rows),
        xaxis_title="seconds since the run began",
        yaxis={"categoryorder": "array", "categoryarray": rows, "autorange": "reversed"},
        legend=LEGEND_ON_TOP,
    )
    return figure


def _era_seconds(report: dict[str, Any]) -> go.Figure:
    figure = go.Figure()
    done = [e for e in report["eras_detail"] if e["status"] == "done"]
    for lane in ("cpu", "gpu"):
        eras = [e for e in done if e["lane"] == lane]
        if not eras:
            continue
        figure.add_scatter(
            name=f"{lane} lane",
            mode="markers",
            x=[e["readings"] for e in eras],
            y=[e["seconds"] for e in eras],
            hovertext=[
                html.escape(
                    f"era {_key(e)} on {e['worker']}: {e['seconds']:.3f} s, "
                    f"{e['readings']:,} readings, {e['features']:,} features"
                )
                for e in eras
            ],
            hoverinfo="text",
        )
    figure.update_layout(height=380, xaxis_title="readings", yaxis_title="seconds")
    return figure


def _lanes(report: dict[str, Any]) -> go.Figure:
    """Eras per route and rule, stacked by what became of them (where they ran)."""

    def fate(era: dict[str, Any]) -> str:
        if era["status"] == "done":
            return f"ran on {era['lane']}"
        return {"resumed": "already done", "skipped": "skipped (no readings)"}.get(
            era["status"], era["status"]
        )

    counts: dict[str, dict[str, int]] = {}
    for era in report["eras_detail"]:
        rule = f"{era['route']}: {era['condition']}" if era["route"] else era["condition"]
        stack = counts.setdefault(fate(era), {})
        stack[rule] = stack.get(rule, 0) + 1
    rules = sorted({rule for stack in counts.values() for rule in stack})
    colours = {"ran on cpu": "#4c78a8", "ran on gpu": "#b279a2", "failed": OUTCOMES["failed"]}
    figure = go.Figure()
    for name, stack in sorted(counts.items()):
        figure.add_bar(
            name=name,
            orientation="h",
            y=list(stack),
            x=list(stack.values()),
            marker_color=colours.get(name, "#bab0ac"),
            hovertemplate="%{y}: %{x} eras<extra>" + html.escape(name) + "</extra>",
        )
    figure.update_layout(
        barmode="stack",
        height=160 + 34 * len(rules),
        xaxis_title="eras",
        yaxis={"categoryorder": "array", "categoryarray": rules, "automargin": True},
    )
    return figure


def _memory(report: dict[str, Any]) -> go.Figure:
    """Each worker's peak resident memory so far, at the end of each era it finished."""
    points: dict[str, list[tuple[float, float]]] = {}
    for era, attempt in _tries(report):
        if attempt["outcome"] == "done" and era["peak_rss_mb"]:
            points.setdefault(attempt["worker"], []).append((attempt["end_s"], era["peak_rss_mb"]))
    figure = go.Figure()
    for worker in report["workers"]:
        name = worker["worker"]
        where = f" on {worker['node']}" if worker["node"] else ""
        xy = sorted(points.get(name, []))
        figure.add_scatter(
            name=f"{name}{where}: peak {worker['peak_rss_mb']:.0f} MiB",
            mode="lines+markers",
            x=[x for x, _ in xy],
            y=[y for _, y in xy],
        )
    figure.update_layout(
        height=360, xaxis_title="seconds since the run began", yaxis_title="peak RSS (MiB)"
    )
    return figure


def _failures(report: dict[str, Any]) -> go.Figure:
    """Every try that did not end well, and what became of its era."""
    rows = [
        (_key(e), a["attempt"], a["worker"], a["outcome"], e["status"], a["error"] or "")
        for e, a in _tries(report)
        if a["outcome"] not in ("done", "skipped")
    ]
    rows += [  # failed before any try began (its worker could not start)
        (_key(e), e["attempts"], e["worker"] or "-", "failed", "failed", e["error"] or "")
        for e in report["eras_detail"]
        if e["status"] == "failed" and not e["tries"]
    ]
    if not rows:
        rows = [("-", "", "", "", "", "no try failed, none was retried")]
    columns = ["era", "try", "worker", "try ended", "era ended", "error"]
    figure = go.Figure(
        go.Table(
            columnwidth=[1, 0.5, 1, 1, 1, 6],
            header={"values": columns, "align": "left", "fill_color": "#eee"},
            cells={
                "values": [[html.escape(str(row[i])) for row in rows] for i in range(6)],
                "align": "left",
                "height": 24,
            },
        )
    )
    figure.update_layout(height=min(600, 90 + 26 * len(rows)))
    return figure


def _time(report: dict[str, Any]) -> go.Figure:
    """The run's steps stacked into one bar (one after the other), and each sink writer's work
    alongside the workers as a bar of its own."""
    figure = go.Figure()
    for step, seconds in report["timings_s"].items():
        figure.add_bar(
            name=step, orientation="h", y=["the run's steps"], x=[seconds], legendgroup="steps"
        )
    for what, seconds in report["writes_s"].items():
        figure.add_bar(
            name=f"{what} (alongside)", orientation="h", y=[f"alongside: {what}"], x=[seconds]
        )
    figure.add_vline(x=report["seconds"], line_dash="dot", annotation_text="whole run")
    figure.update_layout(
        barmode="stack",
        height=260 + 30 * len(report["writes_s"]),
        legend=LEGEND_ON_TOP,
        xaxis_title="seconds",
        yaxis={"autorange": "reversed", "automargin": True},
    )
    return figure
