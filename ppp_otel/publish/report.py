"""One self-contained HTML page to look at how the agents of a spec compare.

Per spec: the consensus of each (stage, run), each agent's rewards over the
runs as a chart, the effort of the questions each agent asked, a preference x
agent table of violations, and every trajectory with its turns, linked from
the rows above (and to Phoenix when a Phoenix URL is given).

The charts are SVG written by pygal and the page by a Jinja template, both in
the ``report`` extra (``pip install 'ppp-otel[report]'``); the page loads
nothing from the network, so it opens anywhere, offline, and can be mailed.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping, Sequence

from ppp_otel.config.settings import process_config
from ppp_otel.scoring.consensus import ConsensusResult, Weights, judge, resolve_weights, rewards_profile
from ppp_otel.conventions import EFFORT_LEVELS
from ppp_otel.scoring.paper import check_profile
from ppp_otel.scoring.rewards import TrajectoryScore, agent_rewards, score_trajectories
from ppp_otel.storage import open_store
from ppp_otel.storage.sqlite.reader import Trajectory, TrajectoryStore
from ppp_otel.scoring.trends import AgentTrend, trends

__all__ = ["ReportSummary", "build_report", "phoenix_trace_url", "write_report"]

#: At most this many trajectories of a spec get their turns on the page (the newest).
DEFAULT_MAX_TRAJECTORIES = 200
#: The consensus grid and its chart show this many runs, the latest; trends show them all.
DEFAULT_MAX_RUNS = 4

# One colour per agent, the same in every chart and table of a spec.
AGENT_COLOURS = ("#2563eb", "#d97706", "#059669", "#dc2626", "#7c3aed", "#0891b2", "#db2777",
                 "#65a30d", "#475569", "#ea580c")
EFFORT_COLOURS = {"low": "#16a34a", "medium": "#f59e0b", "high": "#dc2626"}
REWARD_COLOURS = ("#2563eb", "#7c3aed", "#111827")  # r_proact, r_pers, final


def agent_colour(index: int) -> str:
    """The palette's colours, then hues spread by the golden angle: agents never share a colour."""
    if index < len(AGENT_COLOURS):
        return AGENT_COLOURS[index]
    import colorsys

    hue = (index * 0.381966) % 1.0
    shade = (0.30, 0.38)[index % 2]  # dark enough for the white text of a chip
    return "#" + "".join(f"{round(v * 255):02x}" for v in colorsys.hls_to_rgb(hue, shade, 0.75))


class ReportDependencyError(ImportError):
    """pygal or jinja2 is missing: the report needs the ``report`` extra."""


def _libraries():
    try:
        import jinja2
        import pygal
        from pygal.style import Style
    except ImportError as exc:
        raise ReportDependencyError(
            f"the report needs {exc.name} (pygal and jinja2): pip install 'ppp-otel[report]', "
            "or pip install -e '.[report]' in a clone"
        ) from None
    return jinja2, pygal, Style


def phoenix_trace_url(phoenix: str, trace_id: str) -> str:
    """Phoenix opens the trace of an OpenTelemetry trace id at /redirects/traces/<id>."""
    base = phoenix.rstrip("/")
    if base.endswith("/v1/traces"):
        base = base[: -len("/v1/traces")]
    return f"{base}/redirects/traces/{trace_id}"


# --- what the page shows ---------------------------------------------------------------

@dataclass
class StageRun:
    """The consensus of one stage of one run."""

    stage: str | None
    run_id: str | None
    result: ConsensusResult
    #: Each agent's first trajectory of this stage and run, for the link from its cell.
    trajectory_of: dict[str, int] = field(default_factory=dict)


@dataclass
class SpecReport:
    spec_id: str
    agents: list[str]
    colours: dict[str, str]
    stages: list[str | None]
    runs: list[str | None]  # every run, in the order they started
    stage_runs: list[StageRun]  # of the latest runs (``consensus_runs``)
    consensus_runs: list[str | None]
    trends: list[AgentTrend]
    questions: dict[str, dict[str, int]]  # agent -> effort -> count
    preferences: list[str]
    violations: dict[str, dict[str, int]]  # preference -> agent -> count
    violation_link: dict[tuple[str, str], int]  # (preference, agent) -> a trajectory with one
    scores: list[TrajectoryScore]
    trajectories: list[Trajectory]
    omitted: int = 0
    charts: dict[str, str] = field(default_factory=dict)
    run_labels: dict[str | None, str] = field(default_factory=dict)

    def consensus(self, stage: str | None, run: str | None) -> StageRun | None:
        for stage_run in self.stage_runs:
            if (stage_run.stage, stage_run.run_id) == (stage, run):
                return stage_run
        return None


@dataclass
class ReportSummary:
    path: str
    specs: list[str]
    trajectories: int
    charts: int

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "specs": self.specs, "trajectories": self.trajectories,
                "charts": self.charts}


def _in_time_order(scores: Sequence[TrajectoryScore], key) -> list:
    first: dict[Any, tuple[str, int]] = {}
    for s in scores:
        value = key(s)
        stamp = (s.created_at or "", s.trajectory_id)
        if value not in first or stamp < first[value]:
            first[value] = stamp
    return sorted(first, key=lambda value: first[value])


def _spec_report(
    conn, store: TrajectoryStore, spec_id: str, weights: Weights, max_trajectories: int, max_runs: int,
    rewards: str,
) -> SpecReport:
    scores = score_trajectories(conn, spec_id=spec_id, rewards=rewards)
    agents = sorted({s.agent_name for s in scores})
    colours = {a: agent_colour(i) for i, a in enumerate(agents)}
    runs = _in_time_order(scores, lambda s: s.run_id)
    stages = _in_time_order(scores, lambda s: s.stage)

    stage_runs = []
    latest = runs[-max_runs:] if max_runs else []
    for run in latest:
        for stage in stages:
            group = [s for s in scores if s.run_id == run and s.stage == stage]
            if not group:
                continue
            result = judge(spec_id, agent_rewards(group), weights=weights, stage=stage, run_id=run)
            firsts: dict[str, int] = {}
            for s in group:
                firsts.setdefault(s.agent_name, s.trajectory_id)
            stage_runs.append(StageRun(stage, run, result, firsts))

    questions = {a: {e: 0 for e in EFFORT_LEVELS} for a in agents}
    for s in scores:
        for effort, count in s.questions.items():
            questions[s.agent_name][effort] += count

    agent_trends = trends(conn, spec_id, weights=weights, rewards=rewards).agents
    violations: dict[str, dict[str, int]] = {}
    link: dict[tuple[str, str], int] = {}
    for trend in agent_trends:
        for run in trend.runs:
            for preference, count in run.violations.items():
                row = violations.setdefault(preference, {})
                row[trend.agent_name] = row.get(trend.agent_name, 0) + count

    shown_ids = sorted((s.trajectory_id for s in scores), reverse=True)[:max_trajectories]
    trajectories = [t for t in (store.get_trajectory(i) for i in sorted(shown_ids)) if t is not None]
    for t in trajectories:
        for turn in t.turns:
            for v in turn.violations:
                link.setdefault((v.preference_name, t.agent_name), t.id)
    return SpecReport(
        spec_id=spec_id, agents=agents, colours=colours, stages=stages, runs=runs,
        stage_runs=stage_runs, consensus_runs=latest, trends=agent_trends, questions=questions,
        preferences=sorted(violations), violations=violations, violation_link=link,
        scores=scores, trajectories=trajectories, omitted=len(scores) - len(trajectories),
        run_labels=short_run_labels(runs),
    )


# --- charts ------------------------------------------------------------------------------

def _style(Style, colours: Sequence[str]):
    return Style(
        background="transparent", plot_background="#ffffff", foreground="#1f2937",
        foreground_strong="#111827", foreground_subtle="#e5e7eb", opacity="0.9",
        opacity_hover="1", colors=tuple(colours),
        font_family="system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif",
        label_font_size=13, major_label_font_size=13, legend_font_size=14, title_font_size=16,
        value_font_size=12, tooltip_font_size=12,
    )


def _render(chart) -> str:
    return chart.render(is_unicode=True)


def _common(**extra) -> dict[str, Any]:
    # js=[]: pygal's tooltips would load a script from the network; the page must not.
    return dict(js=[], disable_xml_declaration=True, explicit_size=False, **extra)


def _ticks(values: Sequence[float | None], *, count: int = 6) -> list[float]:
    """Round axis marks spanning the values and 0, about ``count`` of them.

    pygal's own choice crowds a narrow range with a label every 0.01; round
    steps keep every chart readable, and one scale for all agents keeps their
    charts comparable.
    """
    import math

    present = [v for v in values if v is not None] + [0.0]
    lo, hi = min(present), max(present)
    if hi - lo < 1e-9:
        hi = lo + 0.1
    raw = (hi - lo) / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.floor(lo / step) * step
    ticks, tick = [], start
    while tick < hi + step * 0.999:
        ticks.append(round(tick, 10) + 0.0)  # + 0.0: a tick at -0.0 is labelled 0, not -0
        tick += step
    return ticks


def _label(value: str | None, none: str) -> str:
    return none if value is None else value


_SEPARATORS = "-_.:/ "


def short_run_labels(runs: Sequence[str | None]) -> dict[str | None, str]:
    """Labels for chart axes: run ids without the prefix they all share (``demo-5f68-r1``
    and ``demo-5f68-r2`` become ``r1`` and ``r2``), cut where a separator ends it."""
    named = [r for r in runs if r is not None]
    prefix = os.path.commonprefix(named) if len(named) > 1 else ""
    cut = max((prefix.rfind(ch) for ch in _SEPARATORS), default=-1)
    prefix = prefix[: cut + 1]
    labels: dict[str | None, str] = {None: "no run"}
    for run in named:
        labels[run] = run[len(prefix):] or run
    return labels


def _charts(report: SpecReport, pygal, Style) -> dict[str, str]:
    charts: dict[str, str] = {}
    agents = report.agents
    agent_colours = [report.colours[a] for a in agents]

    if report.stage_runs:
        # Five agents a legend row; pygal leaves room for one row only, so each row
        # after the first gets height and bottom margin of its own.
        rows = -(-len(agents) // 5)
        chart = pygal.Bar(**_common(
            style=_style(Style, agent_colours), width=900, height=316 + 24 * rows,
            title="Final score per stage and run (best agent starred in the table)",
            legend_at_bottom=True, legend_at_bottom_columns=min(len(agents), 5),
            margin_bottom=20 + 10 * (rows - 1),
            # Side by side, more than six labels run into each other.
            x_label_rotation=0 if len(report.stage_runs) <= 6 else 30, truncate_label=40,
            print_values=False,
            y_labels=_ticks([a.final for sr in report.stage_runs for a in sr.result.agents]),
        ))
        chart.x_labels = [f"{_label(sr.stage, 'no stage')} · {report.run_labels[sr.run_id]}"
                          for sr in report.stage_runs]
        for agent in agents:
            values = []
            for sr in report.stage_runs:
                try:
                    values.append(sr.result.agent(agent).final)
                except KeyError:
                    values.append(None)
            chart.add(agent, values)
        charts["consensus"] = _render(chart)

    # One scale for every agent's chart, so that a higher line is a better run anywhere.
    marks = _ticks([v for t in report.trends for r in t.runs for v in (r.r_proact, r.r_pers, r.final)])
    for trend in report.trends:
        chart = pygal.Line(**_common(
            style=_style(Style, REWARD_COLOURS), width=440, height=320,
            title=trend.agent_name, legend_at_bottom=True, legend_at_bottom_columns=3,
            dots_size=5, stroke_style={"width": 3}, truncate_label=14, x_label_rotation=0,
            range=(marks[0], marks[-1]), y_labels=marks, show_minor_y_labels=True,
        ))
        chart.x_labels = [report.run_labels[r.run_id] for r in trend.runs]
        chart.add("R_Proact", [r.r_proact for r in trend.runs])
        chart.add("R_Pers", [r.r_pers for r in trend.runs])
        chart.add("final", [r.final for r in trend.runs])
        charts[f"trend:{trend.agent_name}"] = _render(chart)

    if agents:
        chart = pygal.HorizontalStackedBar(**_common(
            style=_style(Style, [EFFORT_COLOURS[e] for e in EFFORT_LEVELS]), width=600,
            height=max(260, 100 + 50 * len(agents)), title="Questions asked, by effort",
            legend_at_bottom=True, legend_at_bottom_columns=3, print_values=True,
            print_zeroes=False, truncate_label=30,
        ))
        # Listed top to bottom in name order: pygal draws the first label at the bottom.
        chart.x_labels = list(reversed(agents))
        for effort in EFFORT_LEVELS:
            chart.add(effort, [report.questions[a][effort] or None for a in reversed(agents)])
        charts["questions"] = _render(chart)
    return charts


# --- the page ----------------------------------------------------------------------------

def _template(jinja2):
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("ppp_otel", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined,
    )
    # Four digits after the point, as the CLI's score tables print them: the same run
    # reads the same in both, and a column of scores lines up.
    env.filters["num"] = lambda v: "–" if v is None else f"{v:.4f}"
    env.filters["signed"] = lambda v: "" if v is None else ("±0" if v == 0 else f"{v:+.4f}")
    # 2026-01-02T10:00:00.123Z -> 2026-01-02 10:00:00 (UTC, as stored)
    env.filters["when"] = lambda v: "–" if not v else v.replace("T", " ")[:19]
    return env.get_template("report.html.j2")


def build_report(
    db: str | os.PathLike,
    *,
    spec_id: str | None = None,
    phoenix_url: str | None = None,
    weights: Weights | Sequence[float] | Mapping[str, float] | None = None,
    config: Any = None,
    max_trajectories: int = DEFAULT_MAX_TRAJECTORIES,
    max_runs: int | None = None,
    rewards: str | None = None,
) -> tuple[str, list[SpecReport]]:
    """The page's HTML and what it shows; every spec of the database unless ``spec_id``.

    ``rewards`` is the reward profile; left out, it is ``[ppp.scoring] rewards`` of
    ``config`` (with no ``config``, of the process's configuration), else ``spec``.
    """
    jinja2, pygal, Style = _libraries()
    w = resolve_weights(weights, config=config)
    profile = check_profile(rewards or rewards_profile(config if config is not None else process_config()))
    max_runs = DEFAULT_MAX_RUNS if max_runs is None else max_runs
    with open_store(db, must_exist=True) as store:
        conn = store  # scoring reads through the store, on either backend
        specs = [spec_id] if spec_id is not None else store.specs()
        if spec_id is not None and spec_id not in store.specs():
            raise ValueError(f"no trajectories of spec {spec_id} in {os.fspath(db)}")
        reports = [_spec_report(conn, store, s, w, max_trajectories, max_runs, profile) for s in specs]
    for report in reports:
        report.charts = _charts(report, pygal, Style)
    html = _template(jinja2).render(
        reports=reports, db_path=os.fspath(db), weights=w, rewards=profile, phoenix_url=phoenix_url,
        generated_at=datetime.now(tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        trace_url=(lambda trace_id: phoenix_trace_url(phoenix_url, trace_id)) if phoenix_url else None,
        effort_levels=EFFORT_LEVELS, effort_colours=EFFORT_COLOURS,
    )
    return html, reports


def write_report(db: str | os.PathLike, out: str | os.PathLike, **options: Any) -> ReportSummary:
    """Write the page to ``out`` (atomically: a reader never sees half a page)."""
    html, reports = build_report(db, **options)
    path = os.fspath(out)
    tmp = f"{path}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(html)
        os.replace(tmp, path)
    except OSError as exc:
        # Said of the page asked for: the temporary file is ours, not the caller's.
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise OSError(exc.errno, exc.strerror, path) from None
    return ReportSummary(path, [r.spec_id for r in reports],
                         sum(len(r.trajectories) for r in reports),
                         sum(len(r.charts) for r in reports))
