"""How much effort a question asks of the user: low, medium or high, as the PPP paper defines them (DESIGN.md, "Scoring")."""

import json
from pathlib import Path

import pytest

from ppp_otel.conventions import EFFORT_LEVELS
from ppp_otel.analysis.questions import classify_effort, effort_scores

LABELLED = Path(__file__).parent / "data" / "effort_questions.jsonl"


@pytest.mark.parametrize(
    "question",
    [
        "Which of the two layouts do you prefer?",
        "Do you prefer tabs or spaces?",
        "Would you like me to add a changelog entry?",
        "Can you choose one of the three names above?",
    ],
)
def test_choices_named_by_the_spec_keywords_are_low(question):
    assert classify_effort(question) == "low"


@pytest.mark.parametrize(
    "question",
    [
        "Should I push the fix now?",
        "Is it okay if I delete the old branch?",
        "Postgres or SQLite?",
        "Does that plan sound good to you?",
        "Shall we keep the current name?",
    ],
)
def test_confirmations_and_either_or_choices_are_low(question):
    assert classify_effort(question) == "low"


@pytest.mark.parametrize(
    "question",
    [
        "Could you investigate why the job hangs?",
        "Can you research which providers offer EU hosting?",
        "Would you analyze last week's error logs?",
        "Can you determine which release introduced the leak?",
        "Before proceeding, can you take a snapshot of the volume?",
    ],
)
def test_requests_named_by_the_spec_keywords_are_high(question):
    assert classify_effort(question) == "high"


@pytest.mark.parametrize(
    "question",
    [
        "Could you dig through the git history to find when this broke?",
        "Can you run the benchmark on your production hardware and send me the numbers?",
        "Could you ask your ops team how the load balancer is configured?",
        "Can you try the build on a fresh checkout and tell me what fails?",
    ],
)
def test_work_for_the_user_is_high_without_any_spec_keyword(question):
    assert classify_effort(question) == "high"


@pytest.mark.parametrize(
    "question",
    [
        "Which version are you running in production?",
        "What error message do you get?",
        "Which shell were you in when it failed?",
        "Are you on the free plan?",
        "Did it break before or after the upgrade?",
    ],
)
def test_what_the_user_did_saw_or_has_is_low(question):
    # The paper: the user answers from their own request and experience at once.
    assert classify_effort(question) == "low"


@pytest.mark.parametrize(
    "question",
    [
        "Where in the code is the retry set?",
        "Which file defines the TimeSeries class?",
        "Which function raises this error?",
        "Could you grep the server logs for this request id?",
        "Which page of the school's website mentions the ceremony?",
    ],
)
def test_where_in_the_code_or_which_document_is_high(question):
    # The paper's simulator prices an answer from the file or function to edit,
    # or from the source document, highest.
    assert classify_effort(question) == "high"


@pytest.mark.parametrize(
    "question",
    [
        "What does the documentation say about this parameter?",
        "What does the README say about installation?",
        "What does the API reference say the default timeout is?",
        "Can you send me the URL of the page that has the answer?",
        "Do you have a link to the relevant documentation page?",
    ],
)
def test_what_a_document_says_or_a_link_to_it_is_high(question):
    # The user has to find the document and read it to answer.
    assert classify_effort(question) == "high"


@pytest.mark.parametrize("question", ["What's the URL of the staging site?", "What does the error say?"])
def test_a_url_or_a_message_the_user_has_at_hand_stays_low(question):
    assert classify_effort(question) == "low"


@pytest.mark.parametrize(
    "question",
    [
        "Do you have a feeling for why it broke?",
        "How would you design this module?",
        "What is the best way to roll this out to all regions?",
        "How should I structure the configuration files?",
        "What design would you pick for the sync protocol?",
        "What's the ideal caching policy for this service?",
        "Which database should we adopt? Please weigh the pros and cons for your team.",
        "Do you know why the validator compares the names that way?",
        "Can you tell me more about the problem?",
    ],
)
def test_what_the_user_cannot_really_answer_is_medium(question):
    # Speculation, design opinions, vague questions: "I don't know" or a general answer.
    assert classify_effort(question) == "medium"


@pytest.mark.parametrize(
    "question",
    [
        "Are you using npm or yarn?",
        "Do you run Docker or Podman locally?",
        "Is your database Postgres or MySQL?",
        "Is the service deployed on Heroku or Fly?",
        "Which shell do you use, bash or zsh?",
        "Where are the backups stored, S3 or on-prem?",
    ],
)
def test_an_or_question_about_the_users_own_setup_is_low(question):
    assert classify_effort(question) == "low"


@pytest.mark.parametrize(
    "question",
    [
        "Do you want the export in CSV or JSON?",
        "Which format do you want the output in, CSV or JSON?",
        "Is the first draft okay, or would you prefer a shorter one?",
    ],
)
def test_an_or_question_offering_options_stays_low(question):
    assert classify_effort(question) == "low"


@pytest.mark.parametrize(
    "question",
    [
        "Delete the old branch too?",
        "Rename it to `helpers.py`?",
        "Go ahead with the migration?",
        "Proceed?",
        "Just to confirm: drop the staging tables?",
        "Given your note about the budget, shall we skip the premium tier?",
        "I'll merge it after lunch, okay?",
        "So you want the report by Friday?",
        "Any objection to renaming the module?",
    ],
)
def test_a_proposal_or_confirmation_without_should_i_is_low(question):
    assert classify_effort(question) == "low"


@pytest.mark.parametrize("question", ["Install path?", "Update frequency?", "Order number?"])
def test_a_terse_fact_question_about_a_noun_is_low(question):
    assert classify_effort(question) == "low"


@pytest.mark.parametrize(
    "question",
    [
        "Can you speak with the vendor and get a quote?",
        "I need you to pull the invoices for March and reconcile them.",
        "It would help if you could talk to the DBA about the lock?",
        "Would you like to run the load test and send me the numbers?",
        "Could you put together a list of the affected customers?",
    ],
)
def test_work_asked_without_a_could_you_verb_is_high(question):
    assert classify_effort(question) == "high"


def test_which_alone_does_not_make_a_question_high():
    assert classify_effort("Which region is the bucket in?") == "low"


def test_a_design_decision_outweighs_a_polite_would_you_like():
    assert classify_effort("How would you like the permission model to be designed?") == "medium"


def test_a_proposal_by_the_agent_to_do_the_work_is_low():
    # The agent offers to investigate; the user only says yes or no.
    assert classify_effort("Should I investigate the memory leak next?") == "low"


def test_a_question_without_any_cue_is_low():
    assert classify_effort("What did the stack trace say?") == "low"


@pytest.mark.parametrize("question", ["", "   ", "???", "¿?", "x" * 10_000])
def test_any_string_gets_one_of_the_effort_levels(question):
    assert classify_effort(question) in EFFORT_LEVELS


def test_the_effort_is_the_level_with_most_evidence():
    question = "Can you run the load test and send me the p99?"
    scores = effort_scores(question)
    assert classify_effort(question) == max(scores, key=scores.get)


def test_classification_is_deterministic():
    question = "Could you check with your DBA what the replication lag was?"
    assert len({classify_effort(question) for _ in range(50)}) == 1


def test_none_is_a_type_error():
    with pytest.raises(TypeError):
        classify_effort(None)


def _labelled(split):
    with LABELLED.open(encoding="utf-8") as lines:
        return [row for row in map(json.loads, lines) if row["split"] == split]


def test_the_labelled_set_is_large_balanced_and_well_formed():
    rows = _labelled("train") + _labelled("heldout")
    assert len(rows) >= 360
    assert len({row["question"] for row in rows}) == len(rows)
    heldout = _labelled("heldout")
    assert len(heldout) >= 120
    # Relabelled by the paper's definitions, most facts of the user's became low.
    for level in EFFORT_LEVELS:
        assert sum(row["effort"] == level for row in heldout) >= 5


def test_held_out_accuracy_is_at_least_ninety_percent():
    heldout = _labelled("heldout")
    correct = sum(classify_effort(row["question"]) == row["effort"] for row in heldout)
    assert correct / len(heldout) >= 0.90


def test_accuracy_on_the_independently_written_set_is_at_least_ninety_percent():
    # Written and labelled by someone who never read the rules (DESIGN.md's definitions only).
    with (LABELLED.parent / "effort_questions_independent.jsonl").open(encoding="utf-8") as lines:
        rows = [json.loads(line) for line in lines if line.strip()]
    assert len(rows) >= 150
    correct = sum(classify_effort(row["question"]) == row["effort"] for row in rows)
    assert correct / len(rows) >= 0.90


def test_accuracy_on_the_fresh_independent_set_is_at_least_ninety_percent():
    with (LABELLED.parent / "effort_questions_independent_2.jsonl").open(encoding="utf-8") as lines:
        rows = [json.loads(line) for line in lines if line.strip()]
    assert len(rows) >= 150
    correct = sum(classify_effort(row["question"]) == row["effort"] for row in rows)
    assert correct / len(rows) >= 0.90


@pytest.mark.parametrize("name", ["effort_questions_paper.jsonl", "effort_questions_paper_2.jsonl"])
def test_accuracy_on_the_paper_sets_never_tuned_on_is_at_least_ninety_percent(name):
    # Coding and search questions labelled by the paper's definitions before the
    # rules were changed for them; the rules were tuned on the other sets only.
    with (LABELLED.parent / name).open(encoding="utf-8") as lines:
        rows = [json.loads(line) for line in lines if line.strip()]
    assert {row["domain"] for row in rows} == {"coding", "search"}
    correct = sum(classify_effort(row["question"]) == row["effort"] for row in rows)
    assert correct / len(rows) >= 0.90


# --- the cues' patterns, rewritten to start with their letter ------------------------------

import re  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from ppp_otel.analysis import effort as effort_module  # noqa: E402

_REWRITTEN = [
    r"\bunder the hood\b|\bknown (?:issue|bug)\b|^how does\b",
    r"\b(?:do|did|would) you (?:think|guess)\b|\bhunch\b",
    r"\b(?:better|good) (?:approach|way)\b|\bbest for\b|what(?:'s| is) the answer\b",
    r"\bs?he\b|\b(?:a|b)?c\b",  # quantified starts are left as they are
]
_WORDS = ["under", "the", "hood", "known", "issue", "bug", "how", "does", "do", "did", "would", "you",
          "think", "guess", "hunch", "better", "good", "approach", "way", "best", "for", "what's", "what",
          "is", "answer", "he", "she", "c", "ac", "bc", "x", "_", "-", "'", "9"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_WORDS), max_size=8), st.sampled_from(["", " ", "", "_", "x"]))
def test_a_cue_rewritten_to_start_with_its_letter_matches_where_the_original_does(words, glue):
    text = glue.join(words) if glue in ("_", "x") else " ".join(words)
    for pattern in _REWRITTEN:
        fast = effort_module._word_start_first(pattern)
        assert bool(re.search(fast, text)) == bool(re.search(pattern, text)), (pattern, fast, text)
