"""``ppp-otel report``: one self-contained HTML page, looked at in a real headless Chromium."""

from __future__ import annotations

import json
import re

import pytest

from ppp_otel.storage.sqlite import migrations as schema
from ppp_otel.cli import main
from ppp_otel.publish.report import build_report, phoenix_trace_url, short_run_labels, write_report
from browser import chromium  # noqa: F401  (a fixture)
from scoring_data import add_trajectory

pytest.importorskip("pygal", reason="the report needs the report extra: pip install -e '.[report]'")

AGENTS = ("alpha", "beta", "gamma")
BEST = {("plan", "r1"): "alpha", ("implement", "r1"): "beta",
        ("plan", "r2"): "gamma", ("implement", "r2"): "alpha"}


@pytest.fixture
def staged(db_path):
    """Two runs x two stages x three agents; beta keeps breaking the 'concise' preference."""
    conn = schema.connect(db_path)
    for run in ("r1", "r2"):
        for stage in ("plan", "implement"):
            for agent in AGENTS:
                add_trajectory(
                    conn, "spec", agent, run_id=run, stage=stage, turns=2,
                    questions=[] if BEST[stage, run] == agent else ["high", "low"],
                    violations=[("concise", "minor")] if agent == "beta" else [],
                )
    conn.close()
    return db_path


# --- what the page holds ------------------------------------------------------------------

def test_the_page_has_a_consensus_per_stage_and_run_with_its_best_agent(staged):
    html, (report,) = build_report(staged, weights=(0.7, 0.3))
    assert [(sr.stage, sr.run_id, sr.result.best_agent) for sr in report.stage_runs] == [
        ("plan", "r1", "alpha"), ("implement", "r1", "beta"),
        ("plan", "r2", "gamma"), ("implement", "r2", "alpha")]
    assert report.stages == ["plan", "implement"] and report.runs == ["r1", "r2"]


def test_the_page_counts_questions_by_effort_and_violations_by_preference_and_agent(staged):
    _, (report,) = build_report(staged, weights=(0.7, 0.3))
    assert report.questions["beta"] == {"low": 3, "medium": 0, "high": 3}
    assert report.violations == {"concise": {"beta": 4}}
    assert set(report.charts) == {"consensus", "questions", "trend:alpha", "trend:beta", "trend:gamma"}


def test_every_score_in_the_page_has_four_digits_after_the_point_as_the_cli_tables_do(staged):
    import re

    html, _ = build_report(staged, weights=(0.7, 0.3))
    cells = re.findall(r'<td class="num[^"]*">([^<]*)</td>', html)
    finals = re.findall(r'<span class="conf">final ([^<]*)</span>', html)
    scores = [c for c in cells + finals if re.fullmatch(r"[+-]?\d+\.\d+", c)]
    assert scores and finals
    assert all(re.fullmatch(r"[+-]?\d+\.\d{4}", c) for c in scores), sorted(set(scores))[:10]

def test_the_page_needs_nothing_from_the_network(staged):
    html, _ = build_report(staged, weights=(0.7, 0.3), phoenix_url="http://127.0.0.1:6006")
    assert not re.search(r"<script[^>]+src=", html)
    assert not re.search(r"<link[^>]+href=\"(?!data:)", html)
    assert "url(http" not in html and "@import" not in html


def test_every_trajectory_row_links_to_its_turns_on_the_page(staged):
    html, (report,) = build_report(staged, weights=(0.7, 0.3))
    targets = set(re.findall(r'href="#(trajectory-\d+)"', html))
    anchors = set(re.findall(r'id="(trajectory-\d+)"', html))
    assert len(anchors) == 12 and targets <= anchors and len(targets) == 12


def test_trajectories_link_to_phoenix_only_when_a_phoenix_url_is_given(staged):
    without, _ = build_report(staged, weights=(0.7, 0.3))
    assert "redirects/traces" not in without
    with_phoenix, (report,) = build_report(staged, weights=(0.7, 0.3), phoenix_url="http://127.0.0.1:6006/")
    trace_id = report.scores[0].trace_id
    assert f'href="http://127.0.0.1:6006/redirects/traces/{trace_id}"' in with_phoenix


def test_phoenix_trace_links_work_from_a_collector_endpoint_too():
    assert phoenix_trace_url("http://p:6006/v1/traces", "ab") == "http://p:6006/redirects/traces/ab"


def test_run_labels_drop_the_prefix_the_runs_share():
    assert short_run_labels(["demo-5f68-r1", "demo-5f68-r2"]) == {
        None: "no run", "demo-5f68-r1": "r1", "demo-5f68-r2": "r2"}
    assert short_run_labels(["nightly"])["nightly"] == "nightly"
    assert short_run_labels(["run1", "run2"]) == {None: "no run", "run1": "run1", "run2": "run2"}


def test_text_from_trajectories_is_escaped(db_path):
    conn = schema.connect(db_path)
    add_trajectory(conn, "<script>alert(1)</script>", "<b>agent</b>")
    conn.close()
    html, _ = build_report(db_path, weights=(0.7, 0.3))
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)" in html


def test_a_spec_the_database_does_not_have_is_an_error(staged):
    with pytest.raises(ValueError, match="no trajectories of spec nope"):
        build_report(staged, spec_id="nope", weights=(0.7, 0.3))


def test_cli_report_writes_the_file_and_says_what_it_holds(staged, tmp_path, capsys):
    out = tmp_path / "report.html"
    assert main(["report", "--db", str(staged), "--out", str(out), "--spec", "spec",
                 "--weights", "0.7,0.3", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary == {"path": str(out), "specs": ["spec"], "trajectories": 12, "charts": 5}
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_cli_report_of_a_missing_database_is_a_one_line_error(tmp_path, capsys):
    assert main(["report", "--db", str(tmp_path / "nope.db"), "--out", str(tmp_path / "r.html")]) == 2
    assert "no such database file" in capsys.readouterr().err


def test_cli_report_into_a_directory_that_does_not_exist_says_so(staged, tmp_path, capsys):
    out = tmp_path / "nowhere" / "r.html"
    assert main(["report", "--db", str(staged), "--out", str(out)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"ppp-otel: error: --out {out}: the directory {out.parent} does not exist; --out names the HTML file to write"
    ]


def test_cli_report_onto_a_directory_says_out_names_a_file(staged, tmp_path, capsys):
    assert main(["report", "--db", str(staged), "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"ppp-otel: error: --out {tmp_path}: it is a directory; --out names the HTML file to write"
    ]


def test_a_report_that_cannot_be_written_names_the_page_not_its_temporary_file(staged, tmp_path):
    out = tmp_path / "nowhere" / "r.html"
    with pytest.raises(FileNotFoundError) as error:
        write_report(staged, out, weights=(0.7, 0.3))
    assert error.value.filename == str(out)


def test_a_report_that_cannot_replace_its_target_leaves_no_temporary_file(staged, tmp_path):
    (tmp_path / "r.html").mkdir()
    with pytest.raises(OSError):
        write_report(staged, tmp_path / "r.html", weights=(0.7, 0.3))
    assert not (tmp_path / "r.html.tmp").exists()


# --- what a person sees ---------------------------------------------------------------------

CHART_CONTENT = """
[...document.querySelectorAll('figure.chart svg')].map(svg => {
  const box = svg.getBoundingClientRect();
  const drawn = [...svg.querySelectorAll('.series path, .series rect, .series circle')]
    .filter(el => { const b = el.getBBox(); return b.width > 0 || b.height > 0; });
  return {kind: svg.closest('figure').dataset.chart, width: box.width, height: box.height,
          drawn: drawn.length};
})
"""

BROKEN_ANCHORS = """
[...document.querySelectorAll('a[href^="#"]')]
  .map(a => a.getAttribute('href').slice(1)).filter(id => !document.getElementById(id))
"""


def test_the_report_opens_in_chromium_with_its_agents_charts_and_no_console_errors(staged, tmp_path, chromium):
    out = tmp_path / "report.html"
    write_report(staged, out, weights=(0.7, 0.3), phoenix_url="http://127.0.0.1:9")
    visit = chromium.open(out.as_uri())
    assert visit.console_errors == []
    assert visit.requests == [out.as_uri()]  # nothing else was fetched
    text = chromium.evaluate("document.body.innerText")
    for agent in AGENTS:
        assert agent in text
    assert "Consensus per stage" in text and "Violations by preference" in text
    charts = chromium.evaluate(CHART_CONTENT)
    assert sorted(c["kind"] for c in charts) == ["consensus", "questions", "trend", "trend", "trend"]
    for chart in charts:
        assert chart["width"] > 200 and chart["height"] > 100, chart
        assert chart["drawn"] > 0, chart
    assert chromium.evaluate(BROKEN_ANCHORS) == []
    shot = chromium.screenshot(tmp_path / "report.png", height=1600)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_a_link_from_a_row_scrolls_to_the_trajectorys_turns(staged, tmp_path, chromium):
    out = tmp_path / "report.html"
    write_report(staged, out, weights=(0.7, 0.3))
    chromium.open(out.as_uri())
    chromium.evaluate("document.querySelector('table.consensus a.chip').click()")
    target = chromium.evaluate("location.hash")
    assert re.fullmatch(r"#trajectory-\d+", target)
    shown = chromium.evaluate(
        f"(() => {{ const r = document.querySelector('{target}').getBoundingClientRect();"
        " return [r.top, innerHeight]; })()")
    assert -1 <= shown[0] < shown[1]  # at the top of the window (give or take a subpixel)
    assert "prompt 1" in chromium.evaluate(f"document.querySelector('{target}').innerText")


def test_a_database_with_no_trajectories_gives_a_page_that_says_so(db_path, tmp_path):
    schema.connect(db_path).close()
    html, reports = build_report(db_path, weights=(0.7, 0.3))
    assert reports == [] and "no trajectories yet" in html


def test_without_the_report_extra_the_command_says_what_to_install(staged, tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pygal", None)  # as if it were not installed
    assert main(["report", "--db", str(staged), "--out", str(tmp_path / "r.html")]) == 2
    assert "pip install 'ppp-otel[report]'" in capsys.readouterr().err


@pytest.mark.needs_phoenix
@pytest.mark.slow
def test_the_phoenix_link_of_a_trajectory_opens_its_trace_in_a_real_phoenix(staged, tmp_path, chromium, phoenix):
    import json as json_
    import time
    import urllib.error
    import urllib.request

    assert main(["export", "--db", str(staged), "--to", phoenix.url, "--project", "report-links",
                 "--json"]) == 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # until Phoenix has stored the replayed spans
        try:
            with urllib.request.urlopen(f"{phoenix.url}/v1/projects/report-links/spans?limit=100",
                                        timeout=5) as r:
                if len(json_.load(r)["data"]) >= 12 + 24:
                    break
        except urllib.error.HTTPError:  # 404 until the project exists
            pass
        time.sleep(0.3)
    out = tmp_path / "report.html"
    write_report(staged, out, weights=(0.7, 0.3), phoenix_url=phoenix.url)
    chromium.open(out.as_uri())
    link = chromium.evaluate("document.querySelector('article.trajectory a.phoenix').href")
    trace_id = link.rsplit("/", 1)[1]
    chromium.call("Page.navigate", url=link)
    deadline = time.monotonic() + 45
    path = ""
    while time.monotonic() < deadline:  # Phoenix's page looks the trace up, then moves on to it
        path = chromium.evaluate("location.pathname") or ""
        if "/redirects/" not in path and trace_id in path:
            break
        time.sleep(0.3)
    assert "/projects/" in path and path.endswith(f"/traces/{trace_id}"), path


def test_the_consensus_grid_shows_the_latest_runs_and_says_how_many_there_are(db_path):
    conn = schema.connect(db_path)
    for day in range(1, 7):
        add_trajectory(conn, "spec", "alpha", run_id=f"day{day}", stage="plan",
                       started_at=f"2026-11-0{day}T10:00:00.000Z")
    conn.close()
    html, (report,) = build_report(db_path, weights=(0.7, 0.3), max_runs=4)
    assert report.consensus_runs == ["day3", "day4", "day5", "day6"]
    assert [sr.run_id for sr in report.stage_runs] == ["day3", "day4", "day5", "day6"]
    assert len(report.trends[0].runs) == 6  # the rewards keep every run
    assert "The latest 4 of 6 runs" in html


def test_the_page_scores_with_the_profile_asked_for_and_says_which(staged):
    html, reports = build_report(staged, spec_id="spec", rewards="paper")
    assert "paper rewards" in html
    assert {s.rewards for s in reports[0].scores} == {"paper"}
    # No preferences: the paper's R_Pers is 0 where the spec profile gives +0.05 or less.
    assert {r.r_pers for trend in reports[0].trends for r in trend.runs} == {0}
    html, _ = build_report(staged, spec_id="spec", rewards="spec")
    assert "spec rewards" in html


def test_an_axis_mark_at_zero_is_labelled_0_not_minus_0():
    from ppp_otel.publish.report import _ticks

    for values in ([-0.135, 0.59, -0.6], [-0.3, 0.7], [-0.1, 0.05], [-0.55, 0.45]):
        assert all(str(tick) != "-0.0" for tick in _ticks(values)), values


# --- many agents, long names ---------------------------------------------------------------

MANY = [f"agent-{i:02d}" for i in range(13)] + ["an-agent-whose-name-goes-on-" + "and-on-" * 12 + "v2"]


@pytest.fixture
def crowded(db_path):
    """Fourteen agents, one with a very long name, under a very long spec id, each breaking a preference."""
    conn = schema.connect(db_path)
    for run in ("r1", "r2", "r3"):
        for agent in MANY:
            add_trajectory(conn, "spec-" + "x" * 150, agent, run_id=run, stage="implement",
                           questions=["low"], violations=[("concise", "minor")])
    conn.close()
    return db_path


def test_every_agent_has_a_colour_of_its_own_however_many_there_are(crowded):
    _, reports = build_report(crowded, weights=(0.7, 0.3))
    colours = [reports[0].colours[a] for a in reports[0].agents]
    assert len(colours) == len(MANY) and len(set(colours)) == len(MANY)


PAGE_WIDER_THAN_WINDOW = "document.documentElement.scrollWidth > innerWidth"

LEGEND_CUT_OFF = """
[...document.querySelectorAll('figure.chart svg')].flatMap(svg => {
  const bottom = svg.getBoundingClientRect().bottom;
  return [...svg.querySelectorAll('.legend text')]
    .filter(t => t.getBoundingClientRect().bottom > bottom + 0.5).map(t => t.textContent);
})
"""


def test_many_agents_and_long_names_neither_widen_the_page_nor_cut_a_legend(crowded, tmp_path, chromium):
    out = tmp_path / "report.html"
    write_report(crowded, out, weights=(0.7, 0.3))
    chromium.open(out.as_uri())
    assert chromium.evaluate(PAGE_WIDER_THAN_WINDOW) is False  # wide tables scroll in their own box
    assert chromium.evaluate(LEGEND_CUT_OFF) == []
