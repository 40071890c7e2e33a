"""Preference detectors: what each one flags, what it lets pass, and the registry around them."""

from __future__ import annotations

import json
import logging

import pytest

from ppp_otel.analysis import preferences as preferences
from ppp_otel.model import TurnText
from ppp_otel.analysis.preferences import (
    JUDGMENT_PREFERENCES,
    detect_at_end,
    detect_violations,
    get_preference,
    list_preferences,
    parse_preference,
    register_preference,
    unregister_preference,
)


def turn(response: str, *questions: str, number: int = 1, prompt: str = "fix the bug") -> TurnText:
    return TurnText(number=number, prompt=prompt, response=response, questions=tuple(questions))


def asking(question: str, number: int = 1) -> TurnText:
    """A turn whose whole response is one question."""
    return turn(question, question, number=number)


ANSWER = turn("Done: the parser now skips blank lines.", number=2)


def violations(spec: str, current: TurnText, history=()) -> list:
    return detect_violations([spec], current, history)


@pytest.fixture
def scratch_preferences():
    """Names registered by a test are removed after it."""
    before = {p.name for p in list_preferences()}
    yield
    for preference in list_preferences():
        if preference.name not in before:
            unregister_preference(preference.name)


# --- every detector: one turn that violates, one that does not -------------------------


def test_no_preference_is_never_violated():
    assert violations("no_preference", turn("What? Why? How? Where?", "What?", "Why?", "How?")) == []


def test_short_questions_flags_a_question_longer_than_the_limit():
    long = "Could you tell me which of the configuration files you edited just before the crash started?"
    [found] = violations("short_questions", asking(long))
    assert (found.expected, found.actual) == (
        "questions of at most 15 words", "1 longer question, the longest 16 words",
    )


def test_short_questions_lets_a_short_question_pass():
    assert violations("short_questions", asking("Which file?")) == []


def test_short_questions_takes_its_limit_from_the_spec():
    assert violations("short_questions(max_words=2)", asking("Which config file?")) != []


def test_questions_only_at_start_flags_a_question_after_the_first_turn():
    [found] = violations("questions_only_at_start", asking("Which branch?", number=3), [asking("Which OS?")])
    assert (found.expected, found.actual) == ("questions only in the first turn", "1 question in turn 3")


def test_questions_only_at_start_lets_first_turn_questions_pass():
    assert violations("questions_only_at_start", asking("Which OS?")) == []


def test_questions_only_at_start_lets_later_turns_without_questions_pass():
    assert violations("questions_only_at_start", ANSWER, [asking("Which OS?")]) == []


def test_no_questions_flags_any_question():
    [found] = violations("no_questions", turn("Which OS? Which version?", "Which OS?", "Which version?"))
    assert (found.expected, found.actual, found.severity) == ("no questions", "2 questions", "critical")


def test_no_questions_lets_a_turn_without_questions_pass():
    assert violations("no_questions", ANSWER) == []


def test_multiple_choice_flags_an_open_question():
    [found] = violations("multiple_choice", asking("Which database do you use?"))
    assert found.actual == "1 question without options"


def test_multiple_choice_lets_numbered_options_pass():
    response = "Which database do you use?\n1. SQLite\n2. PostgreSQL"
    assert violations("multiple_choice", turn(response, "Which database do you use?")) == []


def test_multiple_choice_flags_an_open_question_besides_the_options():
    response = "Which database do you use?\nA) SQLite\nB) PostgreSQL\n\nAnd what is the deadline?"
    [found] = violations("multiple_choice", turn(response, "Which database do you use?", "And what is the deadline?"))
    assert found.actual == "an open question besides the options: 'And what is the deadline?'"


def test_multiple_choice_lets_lettered_options_pass():
    response = "Which database do you use?\nA) SQLite\nB) PostgreSQL\nC) something else"
    assert violations("multiple_choice", turn(response, "Which database do you use?")) == []


def test_multiple_choice_accepts_options_in_parentheses_on_one_line():
    response = "Which database do you use? (a) SQLite (b) PostgreSQL"
    assert violations("multiple_choice", turn(response, "Which database do you use?")) == []


def test_all_questions_in_one_turn_flags_questions_in_a_second_turn():
    history = [asking("Which OS?", 1), turn("Thanks.", number=2)]
    [found] = violations("all_questions_in_one_turn", asking("Which version?", 3), history)
    assert found.actual == "questions in turn 3 after questions in turn 1"


def test_all_questions_in_one_turn_lets_a_single_asking_turn_pass():
    history = [turn("Looking into it.", number=1)]
    assert violations("all_questions_in_one_turn", asking("Which OS? Which version?", 2), history) == []


def test_max_questions_per_turn_flags_more_than_one_question_by_default():
    [found] = violations("max_questions_per_turn", turn("A? B? C?", "A?", "B?", "C?"))
    assert (found.expected, found.actual) == ("at most 1 question per turn", "3 questions")


def test_max_questions_per_turn_lets_one_question_pass():
    assert violations("max_questions_per_turn", asking("Which OS?")) == []


def test_max_questions_per_turn_takes_its_limit_from_the_spec():
    assert violations("max_questions_per_turn(limit=3)", turn("A? B? C?", "A?", "B?", "C?")) == []


def test_italian_only_flags_an_english_question():
    [found] = violations("italian_only", asking("Which file should I edit?"))
    assert found.actual.startswith("1 question not in Italian")


def test_italian_only_flags_a_spanish_question():
    assert violations("italian_only", asking("¿Qué archivo quieres que cambie?")) != []


def test_italian_only_lets_an_italian_question_pass():
    assert violations("italian_only", asking("Quale file vuoi che modifichi?")) == []


def test_italian_only_reads_past_code_in_the_question():
    assert violations("italian_only", asking("Posso modificare `parse_config()` in questo file?")) == []


def test_multilingual_flags_a_message_in_one_language():
    [found] = violations("multilingual", asking("Which file should I edit and why is it failing?"))
    assert found.actual == "1 language (english)"


def test_multilingual_lets_five_languages_pass():
    response = (
        "Which file should I edit for you? Quale file vuoi che modifichi? "
        "¿Qué archivo quieres que cambie y por qué? Welche Datei soll ich für dich ändern? "
        "Какой файл нужно изменить?"
    )
    assert violations("multilingual", turn(response, "Which file should I edit for you?")) == []


def test_english_all_caps_flags_lowercase_words():
    [found] = violations("english_all_caps", asking("Which file should I edit?"))
    assert "in lowercase" in found.actual


def test_english_all_caps_flags_a_capitalised_question_in_another_language():
    [found] = violations("english_all_caps", asking("QUALE FILE VUOI CHE MODIFICHI?"))
    assert found.actual.startswith("1 question not in English")


def test_english_all_caps_lets_an_english_question_in_capitals_pass():
    assert violations("english_all_caps", asking("WHICH FILE SHOULD I EDIT IN `src/app.py`?")) == []


def test_no_commas_flags_a_comma():
    [found] = violations("no_commas", asking("Which file, and which line?"))
    assert (found.expected, found.actual, found.severity) == ("no commas", "1 comma", "major")


def test_no_commas_lets_a_message_without_commas_pass():
    assert violations("no_commas", asking("Which file and which line?")) == []


def test_no_commas_ignores_commas_in_turns_that_ask_nothing():
    assert violations("no_commas", turn("Fixed it, tests pass, done.")) == []


def test_json_only_flags_text_around_the_json():
    response = 'Here you go: {"question": "Which file?"}'
    [found] = violations("json_only", turn(response, "Which file?"))
    assert found.actual.startswith("not valid JSON")


def test_json_only_lets_a_json_object_pass():
    response = json.dumps({"question": "Which file?", "options": ["a.py", "b.py"]})
    assert violations("json_only", turn(response, "Which file?")) == []


def test_json_only_flags_a_bare_json_string():
    [found] = violations("json_only", turn('"Which file?"', "Which file?"))
    assert "not an object or array" in found.actual


def test_code_snippet_with_reference_flags_a_plain_question():
    [found] = violations("code_snippet_with_reference", asking("Which function fails?"))
    assert found.actual == "no code or documentation snippet; no file or URL reference"


def test_code_snippet_with_reference_flags_a_snippet_without_its_file():
    response = "Is this the call that fails?\n```python\nfor line in lines:\n    parse(line)\nreturn out\n```"
    [found] = violations("code_snippet_with_reference", turn(response, "Is this the call that fails?"))
    assert found.actual == "no file or URL reference"


def test_code_snippet_with_reference_lets_a_snippet_with_its_file_pass():
    response = ("In src/parser.py:\n```python\nfor line in lines:\n    parse(line)\nreturn out\n```\n"
                "Is this the call that fails?")
    assert violations("code_snippet_with_reference", turn(response, "Is this the call that fails?")) == []


def test_code_snippet_with_reference_flags_a_snippet_under_three_lines():
    response = "In src/parser.py:\n```python\nparse(line)\n```\nIs this the call that fails?"
    [found] = violations("code_snippet_with_reference", turn(response, "Is this the call that fails?"))
    assert found.actual == "a snippet of 1 line, not 3"


def test_code_snippet_with_reference_accepts_a_quoted_doc_with_a_url():
    response = ("> Returns None on EOF.\n> Raises OSError when the file is closed.\n> Blocks until data arrive.\n"
                "(https://docs.python.org/3/library/io.html) Is that what you see?")
    assert violations("code_snippet_with_reference", turn(response, "Is that what you see?")) == []


def test_exact_sentences_flags_a_message_of_one_sentence():
    [found] = violations("exact_sentences", asking("Which file?"))
    assert (found.expected, found.actual) == ("exactly 3 sentences", "1 sentence")


def test_exact_sentences_lets_three_sentences_pass():
    response = "I found two parsers. They differ in version 2.1 of app.py. Which one do you use?"
    assert violations("exact_sentences", turn(response, "Which one do you use?")) == []


def test_max_words_flags_a_long_message():
    response = "word " * 20 + "Which file?"
    [found] = violations("max_words(limit=10)", turn(response, "Which file?"))
    assert (found.expected, found.actual) == ("at most 10 words", "22 words")


def test_max_words_lets_a_short_message_pass():
    assert violations("max_words(limit=10)", asking("Which file?")) == []


def test_max_questions_flags_the_turn_that_goes_over_the_conversation_limit():
    history = [turn("A? B?", "A?", "B?", number=1)]
    [found] = violations("max_questions(limit=2)", asking("C?", number=2), history)
    assert (found.expected, found.actual) == ("at most 2 questions in the conversation", "3 questions by turn 2")


def test_max_questions_lets_a_conversation_within_the_limit_pass():
    history = [asking("A?", 1)]
    assert violations("max_questions(limit=2)", asking("B?", number=2), history) == []


def test_expert_questions_is_never_violated():
    # The paper's "professional" user answers technical questions; its reward function is None.
    assert violations("expert_questions", asking("What's the amortized cost of the B-tree split?")) == []


def test_min_questions_is_checked_when_the_trajectory_ends_by_counting_asking_turns():
    turns = [asking("A? B?", 1), ANSWER, asking("C?", 3)]
    [found] = detect_at_end(["min_questions"], turns)
    assert (found.preference, found.expected, found.actual) == (
        "min_questions", "at least 3 asking turns", "2 asking turns")
    assert detect_at_end(["min_questions(limit=2)"], turns) == []


def test_min_questions_is_not_checked_turn_by_turn():
    assert violations("min_questions", asking("Only one?")) == []


def test_every_registered_preference_is_covered_by_a_test_here():
    tested = {
        "no_preference", "expert_questions", "min_questions", "short_questions", "questions_only_at_start", "no_questions",
        "multiple_choice", "all_questions_in_one_turn", "max_questions_per_turn", "italian_only",
        "multilingual", "english_all_caps", "no_commas", "json_only", "code_snippet_with_reference",
        "exact_sentences", "max_words", "max_questions",
    }
    assert {p.name for p in list_preferences()} == tested


# --- detection as a whole ---------------------------------------------------------------


def test_detect_violations_reports_each_selected_preference_with_its_severity():
    found = detect_violations(["no_questions", "no_commas", "short_questions"], asking("Which file, please?"))
    assert [(v.preference, v.severity) for v in found] == [("no_questions", "critical"), ("no_commas", "major")]


def test_detect_violations_skips_judgment_preferences():
    assert detect_violations(["detailed_questions", "question_with_joke"], asking("Which?")) == []


def test_detect_violations_rejects_an_unknown_preference_before_running_any():
    with pytest.raises(ValueError, match="unknown preference 'no_question'"):
        detect_violations(["no_questions", "no_question"], asking("Which?"))


def test_detect_violations_reports_a_spec_given_twice_once():
    assert len(detect_violations(["no_questions", "no_questions"], asking("Which?"))) == 1


def test_a_failing_detector_does_not_stop_the_others(scratch_preferences, caplog):
    @register_preference("always_fails", "A detector with a bug")
    def always_fails(turn, history):
        raise RuntimeError("bug")

    errors_before = preferences.detector_errors["always_fails"]
    with caplog.at_level(logging.WARNING, logger="ppp_otel.analysis.preferences"):
        found = detect_violations(["always_fails", "no_questions"], asking("Which?"))
    assert [v.preference for v in found] == ["no_questions"]
    assert preferences.detector_errors["always_fails"] == errors_before + 1
    assert "always_fails" in caplog.text


def test_a_detector_returning_the_wrong_shape_counts_as_failing(scratch_preferences):
    @register_preference("returns_text", "A detector that returns a bare string")
    def returns_text(turn, history):
        return "oops"

    errors_before = preferences.detector_errors["returns_text"]
    assert detect_violations(["returns_text"], asking("Which?")) == []
    assert preferences.detector_errors["returns_text"] == errors_before + 1


# --- registering your own ----------------------------------------------------------------


def test_a_user_can_register_a_detector_and_select_it_by_spec(scratch_preferences):
    @register_preference("no_emoji", "Questions without emoji", severity="minor", params={"allowed": 0})
    def no_emoji(turn, history, allowed):
        count = sum(1 for q in turn.questions for c in q if ord(c) > 0x1F000)
        return None if count <= allowed else (f"at most {allowed} emoji", f"{count} emoji")

    [found] = detect_violations(["no_emoji"], asking("Which file? 🙂"))
    assert (found.preference, found.expected, found.actual, found.severity) == (
        "no_emoji", "at most 0 emoji", "1 emoji", "minor",
    )
    assert detect_violations(["no_emoji(allowed=1)"], asking("Which file? 🙂")) == []


def test_registering_a_taken_name_raises():
    with pytest.raises(ValueError, match="'no_questions' is already registered"):
        register_preference("no_questions", "again")(lambda turn, history: None)


def test_registering_a_taken_name_with_replace_replaces_it(scratch_preferences):
    original = get_preference("no_commas")
    try:
        register_preference("no_commas", "Never complains", replace=True)(lambda turn, history: None)
        assert detect_violations(["no_commas"], asking("A, B?")) == []
    finally:
        register_preference(
            original.name, original.description, severity=original.severity,
            params=dict(original.params), replace=True,
        )(original.check)


def test_a_judgment_preference_can_be_given_a_detector(scratch_preferences):
    register_preference("detailed_questions", "At least eight words")(
        lambda turn, history: ("detailed questions", "short") if turn.questions else None
    )
    assert [v.preference for v in detect_violations(["detailed_questions"], asking("Which?"))] == [
        "detailed_questions"
    ]


def test_registering_with_an_unknown_severity_raises():
    with pytest.raises(ValueError, match="severity"):
        register_preference("too_loud", "x", severity="fatal")


def test_registering_a_name_that_is_not_snake_case_raises():
    with pytest.raises(ValueError, match="snake_case"):
        register_preference("No-Emoji", "x")


def test_a_registered_preference_describes_itself():
    preference = get_preference("max_questions_per_turn")
    assert (preference.severity, dict(preference.params)) == ("major", {"limit": 1})
    assert preference.description


def test_get_preference_explains_a_judgment_preference():
    with pytest.raises(KeyError, match="needs judgment"):
        get_preference("detailed_questions")


def test_judgment_preferences_each_give_a_reason_and_have_no_built_in_detector():
    assert set(JUDGMENT_PREFERENCES) == {
        "detailed_questions", "simple_questions", "ask_only_on_blockers", "question_with_joke"}
    for name, reason in JUDGMENT_PREFERENCES.items():
        assert reason
        assert name not in {p.name for p in list_preferences()}


def test_the_paper_preferences_are_all_known():
    rule_based = {p.name for p in list_preferences()} - {"max_words", "max_questions"}
    assert len(rule_based) + len(JUDGMENT_PREFERENCES) == 20


# --- the spec syntax -------------------------------------------------------------------


def test_a_bare_name_parses_with_its_defaults():
    assert parse_preference("max_questions_per_turn") == ("max_questions_per_turn", {"limit": 1})


def test_parameters_in_parentheses_override_the_defaults():
    assert parse_preference(" max_words( limit = 150 ) ") == ("max_words", {"limit": 150})


def test_empty_parentheses_are_allowed():
    assert parse_preference("no_questions()") == ("no_questions", {})


def test_a_judgment_preference_is_a_valid_spec():
    assert parse_preference("detailed_questions") == ("detailed_questions", {})


def test_an_unknown_name_is_named_in_the_error():
    with pytest.raises(ValueError, match=r"spec 'no_question': unknown preference 'no_question'; known: "):
        parse_preference("no_question")


def test_an_unknown_parameter_is_named_with_the_ones_it_takes():
    with pytest.raises(ValueError, match=r"unknown parameter 'limt' for max_words; it takes limit"):
        parse_preference("max_words(limt=5)")


def test_a_parameter_on_a_preference_without_parameters_is_refused():
    with pytest.raises(ValueError, match="it takes no parameters"):
        parse_preference("no_questions(limit=1)")


def test_a_value_of_the_wrong_type_is_refused():
    with pytest.raises(ValueError, match=r"spec 'max_words\(limit=lots\)': parameter 'limit' takes an integer"):
        parse_preference("max_words(limit=lots)")


def test_a_negative_count_is_refused():
    with pytest.raises(ValueError, match="cannot be negative"):
        parse_preference("max_words(limit=-5)")


def test_a_parameter_given_twice_is_refused():
    with pytest.raises(ValueError, match="given twice"):
        parse_preference("max_words(limit=5, limit=6)")


def test_a_parameter_without_a_value_is_refused():
    with pytest.raises(ValueError, match="must be written key=value"):
        parse_preference("max_words(150)")


@pytest.mark.parametrize("spec", ["", "max_words:150", "max_words(limit=1", "Max_Words", "a b"])
def test_a_malformed_spec_is_refused(spec):
    with pytest.raises(ValueError, match="malformed"):
        parse_preference(spec)


def test_a_spec_that_is_not_text_is_refused():
    with pytest.raises(ValueError, match="must be a string"):
        parse_preference(None)


# --- the paper's criteria on ordinary text ------------------------------------------------


def test_exact_sentences_does_not_break_at_e_g_or_at_a_wrapped_line():
    response = "I found the test, e.g. test_remove. It checks the\ntime column. Should I keep 'time' first?"
    assert violations("exact_sentences", turn(response, "Should I keep 'time' first?")) == []


def test_multilingual_tells_five_languages_written_as_short_questions():
    response = ("Which file did you edit? ¿Qué archivo editaste? Quel fichier as-tu modifié? "
                "Welche Datei hast du bearbeitet? Quale file hai modificato?")
    assert violations("multilingual", turn(response, "Which file did you edit?")) == []


def test_italian_only_flags_a_french_question():
    [found] = violations("italian_only", asking("Quelle version de Python utilises-tu?"))
    assert found.preference == "italian_only"


def test_json_only_accepts_a_json_fence_and_flags_text_around_json():
    fenced = '```json\n{"question": "Which Python version are you on?"}\n```'
    assert violations("json_only", turn(fenced, "Which Python version are you on?")) == []
    [found] = violations("json_only", turn('Here: {"question": "Which version?"}'))
    assert found.actual.startswith("not valid JSON")


def test_the_detectors_agree_with_the_labelled_cases_nine_times_in_ten():
    from pathlib import Path

    from ppp_otel.analysis.questions import extract_questions

    path = Path(__file__).parent / "data" / "preference_cases.jsonl"
    cases = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    agree = 0
    for case in cases:
        history = [TurnText(i + 1, "", t, tuple(extract_questions(t))) for i, t in enumerate(case["history"])]
        current = TurnText(len(history) + 1, "", case["response"], tuple(extract_questions(case["response"])))
        agree += bool(detect_violations([case["preference"]], current, history)) != case["follows"]
    assert agree / len(cases) >= 0.9
