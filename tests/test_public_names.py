"""The public names in DESIGN.md, and the import paths earlier READMEs documented, keep working."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest


def test_the_design_names_are_importable_from_the_package():
    import ppp_otel

    for name in ("register", "trajectory", "turn", "TrajectorySpanProcessor", "extract_questions", "classify_effort"):
        assert callable(getattr(ppp_otel, name)), name
    assert ppp_otel.classify_effort("Which shell were you in when it failed?") in ("low", "medium", "high")


@pytest.mark.parametrize("old, new, name", [
    ("ppp_otel.store", "ppp_otel.storage", "TrajectoryStore"),
    ("ppp_otel.astore", "ppp_otel.storage", "AsyncTrajectoryStore"),
    ("ppp_otel.ascoring", "ppp_otel.scoring.arewards", "score_spec"),
    ("ppp_otel.consensus", "ppp_otel.scoring.consensus", "consensus"),
    ("ppp_otel.consensus", "ppp_otel.scoring.consensus", "run_spec_consensus_weighted"),
    ("ppp_otel.preferences", "ppp_otel.analysis.preferences", "register_preference"),
])
def test_an_earlier_import_path_gives_the_same_object_as_the_current_one(old, new, name):
    assert getattr(importlib.import_module(old), name) is getattr(importlib.import_module(new), name)


def test_every_public_name_is_listed_by_dir_and_imports_from_the_package():
    import ppp_otel

    for name in ppp_otel.__all__:
        assert name in dir(ppp_otel), name
        exec(f"from ppp_otel import {name}", {})
    with pytest.raises(AttributeError, match="no_such_name"):
        ppp_otel.no_such_name  # noqa: B018


def test_importing_the_package_or_building_the_command_line_loads_no_recorder():
    # Every command's start pays for what the package and the parser import:
    # the OpenTelemetry SDK and the recorder load only where something records.
    probe = ("import sys, ppp_otel, ppp_otel.cli; ppp_otel.cli.build_parser(); "
             "print(sorted(m for m in sys.modules if m.startswith(('opentelemetry.sdk', 'ppp_otel.recorder', "
             "'ppp_otel.capture', 'ppp_otel.ingest.wire', 'google.protobuf'))))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def _commands(parser, path=("ppp-otel",)):
    import argparse

    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subparsers:
        yield " ".join(path), parser
    for action in subparsers:
        for name, command in action.choices.items():
            yield from _commands(command, (*path, name))


def test_every_subcommand_takes_db_path_and_json():
    from ppp_otel.cli import build_parser

    commands = dict(_commands(build_parser()))
    assert len(commands) > 10
    for name, command in commands.items():
        options = {option for action in command._actions for option in action.option_strings}
        assert {"--db", "--json"} <= options, name
