"""How often the preference detectors agree with labelled cases, today's against the earlier ones.

    python benchmarks/preference_agreement.py            # both, per preference
    python benchmarks/preference_agreement.py --json
    python benchmarks/preference_agreement.py --errors   # list the disagreements

Each case in tests/data/preference_cases*.jsonl is one message of an agent
(with the agent's earlier messages), labelled by the PPP paper's reward
criterion for one preference: does the message follow it ([Reward 1]) or not.
A detector agrees when it flags exactly the cases labelled as not following.
The questions of each message are found by the same version's
``extract_questions``, as the recorder does.

The baseline is the stopword-and-punctuation version of the detectors (and of
question extraction), read from git at the commit named by ``BASELINE``; the
current version uses pysbd for sentence boundaries and lingua for language
identification. Both run in this process on the same cases.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = sorted((ROOT / "tests" / "data").glob("preference_cases*.jsonl"))
#: The last commit before the detectors were rebuilt on pysbd and lingua.
BASELINE = "3cc0ab3"


def load_cases() -> list[dict]:
    cases = []
    for path in DATA:
        with path.open(encoding="utf-8") as lines:
            cases += [json.loads(line) for line in lines if line.strip()]
    return cases


def _module_from_git(name: str, path: str, package: str):
    source = subprocess.run(["git", "show", f"{BASELINE}:{path}"], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout
    spec = importlib.util.spec_from_loader(f"{package}.{name}", loader=None)
    module = importlib.util.module_from_spec(spec)
    module.__package__ = package
    sys.modules[spec.name] = module
    exec(compile(source, f"{BASELINE}:{path}", "exec"), module.__dict__)
    return module


def baseline_version() -> tuple[types.ModuleType, types.ModuleType]:
    """(questions, preferences) as they were at BASELINE, under a package of their own."""
    import ppp_otel.model  # noqa: F401  (the baseline's relative imports resolve to it)

    package = "ppp_otel"
    questions = _module_from_git("_baseline_questions", "ppp_otel/questions.py", package)
    # The baseline preferences import `.model` only; its registry is its own module's.
    preferences = _module_from_git("_baseline_preferences", "ppp_otel/preferences.py", package)
    return questions, preferences


def current_version() -> tuple[types.ModuleType, types.ModuleType]:
    from ppp_otel.analysis import preferences as preferences
    from ppp_otel.analysis import questions as questions

    return questions, preferences


def evaluate(cases: list[dict], questions, preferences) -> dict:
    from ppp_otel.model import TurnText

    agree, errors, by_preference = 0, [], {}
    started = time.perf_counter()
    for case in cases:
        history = [TurnText(i + 1, "", text, tuple(questions.extract_questions(text)))
                   for i, text in enumerate(case["history"])]
        response = case["response"]
        turn = TurnText(len(history) + 1, "", response, tuple(questions.extract_questions(response)))
        flagged = bool(preferences.detect_violations([case["preference"]], turn, history))
        ok = flagged != case["follows"]
        agree += ok
        mine = by_preference.setdefault(case["preference"], [0, 0])
        mine[0] += ok
        mine[1] += 1
        if not ok:
            errors.append({"preference": case["preference"], "note": case["note"],
                           "expected": "follows" if case["follows"] else "violates",
                           "detector": "violates" if flagged else "follows"})
    elapsed = time.perf_counter() - started
    return {
        "n": len(cases),
        "agreement": agree / len(cases) if cases else None,
        "by_preference": {name: f"{a}/{n}" for name, (a, n) in sorted(by_preference.items())},
        "ms_per_case": 1000 * elapsed / len(cases) if cases else None,
        "errors": errors,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--errors", action="store_true", help="list the disagreements")
    args = parser.parse_args(argv)
    cases = load_cases()
    results = {
        f"baseline ({BASELINE}: stopwords and punctuation)": evaluate(cases, *baseline_version()),
        "current (pysbd and lingua)": evaluate(cases, *current_version()),
    }
    if args.json:
        if not args.errors:
            for result in results.values():
                del result["errors"]
        json.dump(results, sys.stdout, indent=2)
        print()
        return 0
    for name, result in results.items():
        print(f"{name}: n={result['n']} agreement={result['agreement']:.3f} "
              f"({result['ms_per_case']:.2f} ms/case)")
        for preference, score in result["by_preference"].items():
            print(f"  {preference:<30} {score}")
        if args.errors:
            for error in result["errors"]:
                print(f"  - [{error['preference']}: {error['expected']}, detector says {error['detector']}] "
                      f"{error['note']}")
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
