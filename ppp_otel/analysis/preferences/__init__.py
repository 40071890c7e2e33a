"""Interaction preferences and the detectors that find a turn going against them.

A trajectory names its user's preferences in the span attribute
``ppp.preferences``, a list of *preference specs*. A spec is a preference name,
optionally followed by parameters in parentheses::

    no_questions
    max_questions_per_turn(limit=2)
    short_questions(max_words=10)
    max_words(limit=150)

Names are lowercase ``snake_case``. Parameters are ``key=value`` pairs separated
by commas; a value is read as the type of the parameter's default (an integer,
a number, ``true``/``false`` or bare text), and a parameter left out keeps its
default. Integer parameters are counts and limits, so they may not be negative.

The built-in preferences are the twenty of the PPP paper's user simulator
(UserVille, Sun et al. 2025, arXiv 2511.02208, Section 4.2), plus two plain
limits (``max_words`` and ``max_questions``). Sixteen of the paper's
preferences can be checked from the text and the turn history and have a
detector here (``min_questions`` when the trajectory ends, by counting its
asking turns; ``expert_questions`` is never violated, as the paper gives it no
penalty); the other four need judgment (is a question detailed enough, simple
enough, a real blocker, funny) and are listed in :data:`JUDGMENT_PREFERENCES`.
The LLM preference judge (:mod:`ppp_otel.analysis.preference_judge`) checks those, by
the paper's own criteria; without it, report their violations by hand with
``turn.violation(...)``, or register a detector of your own under that name.

The paper's preferences are about how the agent *asks*: its user simulator only
ever sees the agent's questions. So every detector here looks only at turns
that ask at least one question, and format detectors (commas, JSON, capitals,
sentences, length) read the whole response of such a turn, since that is the
message the user reads.

Severities follow the size of the penalty the paper's reward gives each
preference: a penalty of 1 (asking at all when the user wants no questions,
asking after the first turn, spreading questions over turns) is ``critical``,
0.5 (one question per turn, multiple choice, language and format rules) is
``major``, and 0.1 (very short questions) is ``minor``. The two limits that are
not in the paper are ``major``, like the paper's other format rules.

Language identification is lingua's (the ``languages`` extra), a model made
for short and mixed-language text, over twenty languages; a question too short
for it to tell (one word, "Ok?") is given the benefit of the doubt, and a
mixed message is told phrase by phrase. Sentence boundaries are pysbd's
(abbreviations, "e.g.", version numbers), with a wrapped line joined first.

A detector is a function ``check(turn, history, **params)`` that returns
``None`` when the turn follows the preference, or a pair ``(expected, actual)``
of short human-readable texts: what the preference asks ("at most 1 question
per turn") and what the turn did ("3 questions"). Register one with::

    @register_preference("no_emoji", "Questions without emoji", severity="minor")
    def no_emoji(turn, history):
        ...

A detector that raises is logged, counted in :data:`detector_errors` and
skipped; the other detectors of the turn still run.
"""

from ppp_otel.analysis.preferences.registry import (
    JUDGMENT_PREFERENCES,
    Detector,
    Preference,
    detect_at_end,
    detect_violations,
    detector_errors,
    get_preference,
    list_preferences,
    parse_preference,
    register_preference,
    unregister_preference,
)
from ppp_otel.analysis.preferences import builtin  # noqa: F401  (registers the built-in detectors)

__all__ = [
    "JUDGMENT_PREFERENCES",
    "Detector",
    "Preference",
    "detect_at_end",
    "detect_violations",
    "detector_errors",
    "get_preference",
    "list_preferences",
    "parse_preference",
    "register_preference",
    "unregister_preference",
]
