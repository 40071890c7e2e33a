"""Span names and attribute keys: the one place where they are spelled.

OpenInference names are used wherever one exists so that Phoenix renders the
data natively (span kind badges, input/output panes, sessions, token counts).
"""

# Span names
TRAJECTORY_SPAN = "ppp.trajectory"
TURN_SPAN = "ppp.turn"
CONSENSUS_SPAN = "ppp.consensus"

# Event names on a turn span
QUESTION_EVENT = "ppp.question"
VIOLATION_EVENT = "ppp.violation"

# OpenInference
SPAN_KIND = "openinference.span.kind"
KIND_AGENT = "AGENT"
KIND_LLM = "LLM"
KIND_CHAIN = "CHAIN"
KIND_EVALUATOR = "EVALUATOR"
SESSION_ID = "session.id"
INPUT_VALUE = "input.value"
OUTPUT_VALUE = "output.value"
INPUT_MIME_TYPE = "input.mime_type"
OUTPUT_MIME_TYPE = "output.mime_type"
TOKEN_COUNT_TOTAL = "llm.token_count.total"
TOKEN_COUNT_PROMPT = "llm.token_count.prompt"
TOKEN_COUNT_COMPLETION = "llm.token_count.completion"
# OpenInference metadata (a JSON object) and tags: Phoenix's trace list shows both.
METADATA = "metadata"
TAGS = "tag.tags"
LLM_INPUT_MESSAGES = "llm.input_messages"
LLM_OUTPUT_MESSAGES = "llm.output_messages"
MODEL_NAME = "llm.model_name"
# The resource attribute Phoenix files spans under (the project).
PROJECT_NAME = "openinference.project.name"

# ppp attributes on the trajectory span
SPEC_ID = "ppp.spec_id"
AGENT_NAME = "ppp.agent_name"
RUN_ID = "ppp.run_id"
STAGE = "ppp.stage"  # the spec's stage: plan, tasks, implement, validate, ...
PREFERENCES = "ppp.preferences"
USER_CONTEXT = "ppp.user_context"  # what the user knows (the full request), for a judge
TECHNICAL_SCORE = "ppp.technical_score"

# ppp attributes on the turn span
TURN_NUMBER = "ppp.turn.number"

# Event attributes
QUESTION_TEXT = "text"
QUESTION_EFFORT = "effort"
VIOLATION_PREFERENCE = "preference"
VIOLATION_EXPECTED = "expected"
VIOLATION_ACTUAL = "actual"
VIOLATION_SEVERITY = "severity"

# Consensus span
CONSENSUS_BEST_AGENT = "ppp.consensus.best_agent"
CONSENSUS_CONFIDENCE = "ppp.consensus.confidence"
# Not ppp.spec_id: a span carrying that is taken for a trajectory by the
# recorder and by ingest, and the consensus span would be stored as one.
CONSENSUS_SPEC_ID = "ppp.consensus.spec_id"
CONSENSUS_RUN_ID = "ppp.consensus.id"  # its row in consensus_runs
# The stage and run judged, when the consensus was limited to one.
CONSENSUS_STAGE = "ppp.consensus.stage"
CONSENSUS_JUDGED_RUN = "ppp.consensus.run_id"
CONSENSUS_W_TECHNICAL = "ppp.consensus.weights.technical"
CONSENSUS_W_INTERACTION = "ppp.consensus.weights.interaction"
CONSENSUS_REWARDS = "ppp.consensus.rewards"  # the reward profile: spec or paper
# On each link from a consensus span to a judged trajectory span
LINK_TRAJECTORY_ID = "ppp.trajectory.id"
# Phoenix span annotations written on each judged trajectory span
ANNOTATION_R_PROACT = "ppp.r_proact"
ANNOTATION_R_PERS = "ppp.r_pers"
ANNOTATION_FINAL = "ppp.final"
# Phoenix span annotations written on each judged turn span
ANNOTATION_QUESTIONS = "ppp.questions"
ANNOTATION_VIOLATIONS = "ppp.violations"
ANNOTATION_VIOLATION_PREFIX = "ppp.violation."  # + the preference's name
# Per-agent scores: ppp.consensus.agent.<name>.<field>
CONSENSUS_AGENT_PREFIX = "ppp.consensus.agent."

# Domain vocabularies, ordered from least to most costly
EFFORT_LEVELS = ("low", "medium", "high")
SEVERITIES = ("minor", "major", "critical")


def trajectory_span_name(agent_name: str, stage: str | None = None) -> str:
    """What ``trajectory()`` names its span: the agent (and the stage) first,
    because Phoenix's trace list shows the span name (and neither metadata
    nor tags) by default."""
    if stage:
        return f"{agent_name}: {stage} ({TRAJECTORY_SPAN})"
    return f"{agent_name} ({TRAJECTORY_SPAN})"


def trajectory_metadata(spec_id: str, agent_name: str, run_id: str | None = None,
                        stage: str | None = None) -> dict[str, str]:
    """The trajectory span's OpenInference ``metadata``, which Phoenix shows with the span."""
    found = (("agent", agent_name), ("spec", spec_id), ("stage", stage), ("run", run_id))
    return {key: value for key, value in found if value is not None}


def default_session_id(agent_name: str, trace_id: str) -> str:
    """A trajectory's Phoenix session id unless one is given: readable in the
    session list, and found again from the database (agent and trace id) for
    session annotations and replays."""
    return f"{agent_name}-{trace_id}"


def turn_message(prompt: str | None = None, response: str | None = None) -> dict[str, str]:
    """A turn's prompt and response as OpenInference's one user and one assistant
    message, so that Phoenix shows a turn as it shows any LLM call: as messages
    with their roles (``input.value`` alone is a plain text box)."""
    found: dict[str, str] = {}
    if prompt is not None:
        found[f"{LLM_INPUT_MESSAGES}.0.message.role"] = "user"
        found[f"{LLM_INPUT_MESSAGES}.0.message.content"] = prompt
    if response is not None:
        found[f"{LLM_OUTPUT_MESSAGES}.0.message.role"] = "assistant"
        found[f"{LLM_OUTPUT_MESSAGES}.0.message.content"] = response
    return found


def is_trajectory_span(name: str, attributes) -> bool:
    """A span opens a trajectory when it is named so or carries a spec id.

    Anywhere in a trace: a trajectory inside another is a subagent's. A turn
    span is never one (and is not looked into: this runs on the app thread).
    """
    if name == TRAJECTORY_SPAN:
        return True
    return name != TURN_SPAN and attributes is not None and SPEC_ID in attributes
