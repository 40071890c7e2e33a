"""What a consensus found: each agent's score and rank (:class:`AgentScore`) and the
judgment as a whole (:class:`ConsensusResult`), as judged now or read from history."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from ppp_otel.scoring.rewards import TrajectoryScore
from ppp_otel.scoring.technical import Weights

# Where an agent's technical score came from.
GIVEN = "given"  # the caller: argument, --technical, --technical-file
ATTRIBUTE = "attribute"  # the trajectories' ppp.technical_score
NONE = "none"  # nowhere; the technical term counts 0


def _scope_label(values: Sequence[str | None], *, shown: int = 5) -> str:
    names = ["(none)" if v is None else v for v in values]
    if len(names) > shown:  # a spec run nightly for a year must not print 365 names
        return f"{', '.join(names[:shown])} and {len(names) - shown} more"
    return ", ".join(names)


@dataclass
class AgentScore:
    agent_name: str
    technical: float | None
    r_proact: float | None  # None: no trajectory of the spec (technical_only)
    r_pers: float | None
    final: float
    trajectory_ids: list[int] = field(default_factory=list)
    technical_only: bool = False
    technical_source: str = NONE
    rank: int = 0  # 1 is the best agent

    def to_dict(self) -> dict[str, Any]:
        return {
            "agent_name": self.agent_name,
            # The name every --json gives a technical score (score, trajectories, show, trends);
            # "technical" is its earlier name here, kept for the scripts that read it.
            "technical_score": self.technical,
            "technical": self.technical,
            "r_proact": self.r_proact,
            "r_pers": self.r_pers,
            "final": self.final,
            "trajectory_ids": list(self.trajectory_ids),
            "technical_only": self.technical_only,
            "technical_source": self.technical_source,
            "rank": self.rank,
        }


@dataclass
class ConsensusResult:
    spec_id: str
    best_agent: str
    confidence: float
    weights: Weights
    agents: list[AgentScore]  # best first
    #: The judged trajectories (for span links and annotations); empty when read from history.
    trajectories: list[TrajectoryScore] = field(default_factory=list, repr=False)
    consensus_id: int | None = None  # its row in consensus_runs, once stored
    created_at: str | None = None
    trace_id: str | None = None  # of the ppp.consensus span, once emitted
    span_id: str | None = None
    #: The stage and run asked for (None: not limited to one).
    stage: str | None = None
    run_id: str | None = None
    #: The stages and runs the judged trajectories covered (None: a trajectory without one).
    stages: list[str | None] = field(default_factory=list)
    runs: list[str | None] = field(default_factory=list)
    rewards: str = "spec"  # the reward profile r_proact and r_pers come from

    @property
    def mixed(self) -> bool:
        """True when agents were averaged over more than one run or stage."""
        return len(self.runs) > 1 or len(self.stages) > 1

    @property
    def scope(self) -> str:
        """What was judged, in words: ``spec S, stage plan, run r1``."""
        parts = [f"spec {self.spec_id}"]
        if self.stage is not None:
            parts.append(f"stage {self.stage}")
        elif len(self.stages) == 1 and self.stages[0] is not None:
            parts.append(f"stage {self.stages[0]}")
        elif len(self.stages) > 1:
            parts.append(f"{len(self.stages)} stages")
        if self.run_id is not None:
            parts.append(f"run {self.run_id}")
        elif len(self.runs) == 1 and self.runs[0] is not None:
            parts.append(f"run {self.runs[0]}")
        elif len(self.runs) > 1:
            parts.append(f"{len(self.runs)} runs")
        return ", ".join(parts)

    @property
    def warning(self) -> str | None:
        """Says what was averaged when several runs or stages were; None otherwise."""
        mixed = []
        if len(self.runs) > 1:
            mixed.append(f"{len(self.runs)} runs ({_scope_label(self.runs)})")
        if len(self.stages) > 1:
            mixed.append(f"{len(self.stages)} stages ({_scope_label(self.stages)})")
        if not mixed:
            return None
        give = " and ".join(
            word for word, many in (("a run", len(self.runs) > 1), ("a stage", len(self.stages) > 1)) if many
        )
        return (f"consensus on spec {self.spec_id} averaged each agent over {' and '.join(mixed)}; "
                f"give {give} to judge one")

    def agent(self, name: str) -> AgentScore:
        for score in self.agents:
            if score.agent_name == name:
                return score
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "spec_id": self.spec_id,
            "best_agent": self.best_agent,
            "confidence": self.confidence,
            "weights": self.weights.to_dict(),
            "rewards": self.rewards,
            "agents": [a.to_dict() for a in self.agents],
            "consensus_id": self.consensus_id,
            "created_at": self.created_at,
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "stage": self.stage,
            "run_id": self.run_id,
            "judged": {"scope": self.scope, "stages": list(self.stages), "runs": list(self.runs),
                       "mixed": self.mixed},
            "warnings": [self.warning] if self.warning else [],
        }
