"""A person's view: headless Chromium loads Phoenix's sessions page of the demo.

Uses the distribution's Chromium (``apt-get install chromium``; `.ci/run`
installs it); skipped, saying so, where none is installed. The page is
rendered by Phoenix's own UI and read back as the DOM Chromium built.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
import uuid

import pytest

from ppp_otel.cli import main

pytestmark = [pytest.mark.needs_phoenix, pytest.mark.slow]

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no Chromium installed (Debian: apt-get install -y chromium); the browser test needs one")


def project_id(phoenix, name: str) -> str:
    body = json.dumps({"query": "query { projects { edges { node { id name } } } }"}).encode()
    request = urllib.request.Request(f"{phoenix.url}/graphql", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        edges = json.loads(response.read())["data"]["projects"]["edges"]
    return next(e["node"]["id"] for e in edges if e["node"]["name"] == name)


def rendered(browser: str, url: str, profile) -> str:
    """The DOM of ``url`` after Phoenix's UI had its requests answered."""
    result = subprocess.run(
        [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size=1600,1000",
         "--virtual-time-budget=20000", "--dump-dom", url],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_phoenix_sessions_page_shows_the_demo_conversation_and_its_scores(tmp_path, phoenix, capsys):
    browser = chromium()
    project = f"browser-{uuid.uuid4().hex[:8]}"
    assert main(["demo", "--db", str(tmp_path / "demo.db"), "--phoenix", phoenix.url, "--project", project]) == 0
    capsys.readouterr()
    url = f"{phoenix.url}/projects/{project_id(phoenix, project)}/sessions"
    dom = ""
    for attempt in range(3):  # Phoenix may still be inserting the last spans and annotations
        dom = rendered(browser, url, tmp_path / f"profile-{attempt}")
        if "ppp.final" in dom and "The test_upload test fails" in dom:
            break
    assert "The test_upload test fails" in dom  # the first input of each session
    assert "Done: test_upload now retries" in dom  # careful-agent's last output
    assert "ppp.final" in dom  # an annotation, with its score beside it
    assert "0.60" in dom  # careful-agent's final score, 0.604
