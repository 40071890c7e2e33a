"""Configuration: one TOML file, overridable by environment and by arguments.

Precedence, lowest to highest::

    defaults < file < environment < overrides (arguments)

The file is the ``path`` argument, else ``PPP_OTEL_CONFIG``, else there is none:
no file is picked up implicitly, so what a process runs with never depends on
which directory it happened to start in.

Everything is validated on load. A bad value raises :class:`ConfigError` whose
message names the dotted key and where the value came from, e.g.::

    ppp.weights.technical must be >= 0, got -0.1 (in /etc/ppp-otel.toml)

Every effective value remembers its source (``Config.source``), so that
``ppp-otel config`` can show not just what is in effect but why.

This is the one module that reads the environment: the other modules take a
:class:`Config` (or an ``env`` mapping) from their caller, or ask here
(:func:`environ`, :func:`env_value`, :func:`default_db_path`,
:func:`llm_endpoint_from_env`, :func:`process_config`).
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any, Iterator, Mapping

from ppp_otel.storage.sqlite.migrations import DEFAULT_BUSY_TIMEOUT_MS, DEFAULT_DB_PATH


def _toml() -> Any:
    # Imported when there is a file to read: every command's start loads the
    # configuration, and most run without a file.
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib
    return tomllib


__all__ = [
    "ArchivalConfig",
    "Config",
    "ConfigError",
    "PhoenixConfig",
    "QuestionClassifierConfig",
    "TrajectoryConfig",
    "WeightsConfig",
    "default_db_path",
    "display_value",
    "env_value",
    "environ",
    "load_config",
    "process_config",
    "unknown_variables",
]

CONFIG_ENV = "PPP_OTEL_CONFIG"
DB_ENV = "PPP_OTEL_DB"
INGEST_TOKEN_ENV = "PPP_OTEL_INGEST_TOKEN"
PHOENIX_API_KEY_ENV = "PHOENIX_API_KEY"

#: What a full recorder queue does with one more record.
ON_FULL = ("drop", "block")

DEFAULT = "default"
ARGUMENT = "argument"


class ConfigError(ValueError):
    """A configuration value, file or variable that cannot be used.

    ``key`` is the dotted key at fault (``None`` for file-level problems) and
    ``source`` where the bad value came from (``None`` when constructed
    directly), so callers can point at the culprit without parsing the message.
    """

    def __init__(self, message: str, *, key: str | None = None, source: str | None = None):
        super().__init__(message)
        self.key = key
        self.source = source


# --------------------------------------------------------------------------
# Settings are declared once, on the dataclasses; the type is the default's
# type and the rules ride in the field metadata, so the loader, the direct
# constructors and the `ppp-otel config` listing cannot drift apart.


def _setting(
    default: Any,
    *,
    minimum: float | None = None,
    above: float | None = None,
    choices: tuple[str, ...] | None = None,
    nonempty: bool = False,
    path: bool = False,
    secret: bool = False,
    url: bool = False,
) -> Any:
    return field(
        default=default,
        # A secret never reaches a log line through repr(config).
        repr=not secret,
        metadata={
            "minimum": minimum,
            "above": above,
            "choices": choices,
            "nonempty": nonempty,
            "path": path,
            "secret": secret,
            "url": url,
        },
    )


def _describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def _checked(key: str, value: Any, default: Any, meta: Mapping[str, Any]) -> Any:
    """The value as stored, or ConfigError (without a source) naming the key."""

    def bad(expected: str, shown: str | None = None) -> ConfigError:
        return ConfigError(f"{key} must be {expected}, got {shown or repr(value)}", key=key)

    kind = type(default)
    if kind is bool:
        if not isinstance(value, bool):
            raise bad("true or false", _describe(value))
    elif kind is int:
        # bool is an int subclass; `buffer_size = true` is a mistake, not 1.
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer", _describe(value))
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("a number", _describe(value))
        value = float(value)
        if not math.isfinite(value):
            raise bad("a finite number")
    elif kind is tuple:
        # A list of names; a tuple so the frozen config stays hashable.
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v.strip() for v in value):
            raise bad("a list of non-empty strings", _describe(value))
        value = tuple(value)
    elif kind is str:
        if meta.get("path") and isinstance(value, os.PathLike):
            value = os.fspath(value)
        if not isinstance(value, str):
            raise bad("a string", _describe(value))

    if meta.get("choices") and value not in meta["choices"]:
        raise bad("one of " + ", ".join(repr(c) for c in meta["choices"]))
    if meta.get("nonempty") and value.strip() == "":
        # "   " (a stray quote in a shell script) would name a file of spaces, or no host.
        raise bad("a non-empty string")
    if meta.get("url") and value and not value.lower().startswith(("http://", "https://")):
        # Without its scheme the exporter fails on every send, reported as Phoenix unreachable.
        raise bad("an http:// or https:// URL")
    if meta.get("minimum") is not None and value < meta["minimum"]:
        raise bad(f">= {meta['minimum']}")
    if meta.get("above") is not None and value <= meta["above"]:
        raise bad(f"> {meta['above']}")
    return value


def _validate(instance: Any, prefix: str) -> None:
    # Runs for direct construction too, so a TrajectoryConfig(buffer_size=0)
    # built in code fails as early as one read from a file.
    for f in fields(instance):
        if not f.init:
            continue
        value = _checked(f"{prefix}.{f.name}", getattr(instance, f.name), f.default, f.metadata)
        object.__setattr__(instance, f.name, value)


@dataclass(frozen=True)
class TrajectoryConfig:
    """``[ppp.trajectory]``: how the recorder queues and writes to SQLite."""

    buffer_size: int = _setting(10, minimum=1)
    flush_interval_ms: int = _setting(500, above=0)
    max_queue_size: int = _setting(20_000, minimum=1)
    # A full queue makes the producer wait up to block_timeout_ms for room
    # ("block"), or drops at once ("drop"); either way a lost record is counted.
    # Room comes when the writer takes its next batch. Beside a loop that never lets
    # go of the GIL, the writer gets it back only every switch interval (5 ms), so a
    # batch takes several of them, more on a busy machine: in a 200,000-turn tight
    # loop a 5 ms wait lost 0.1-0.2% of the turns, 20 ms a few, 50 ms none. The wait
    # ends as soon as there is room, and a writer that cannot write is not waited for.
    on_full: str = _setting("block", choices=ON_FULL)
    block_timeout_ms: float = _setting(50.0, above=0)
    enable_wal: bool = _setting(True)
    busy_timeout_ms: int = _setting(DEFAULT_BUSY_TIMEOUT_MS, above=0)
    # Tools through which the agent asks the user a question (see ppp_otel.dialects).
    question_tools: tuple = _setting(("ask_question", "ask_user", "AskUserQuestion", "request_user_input"))

    def __post_init__(self) -> None:
        _validate(self, "ppp.trajectory")


#: The recorder's defaults, for the signatures of TrajectorySpanProcessor and Recorder.
RECORDING = TrajectoryConfig()


@dataclass(frozen=True)
class QuestionClassifierConfig:
    """``[ppp.question_classifier]``: how question effort is classified."""

    method: str = _setting("heuristic", choices=("heuristic", "llm"))
    base_url: str = _setting("", url=True)
    model: str = _setting("")
    api_key: str = _setting("", secret=True)
    timeout_s: float = _setting(10.0, above=0)
    max_concurrency: int = _setting(4, minimum=1)
    cache_size: int = _setting(10_000, minimum=0)
    # Who judges the preferences rules cannot check (detailed, simple, blockers,
    # joke): "llm" the same endpoint, "llm_all" it judges every preference it
    # has a paper criterion for; "rules" leaves those four unjudged.
    preference_judge: str = _setting("rules", choices=("rules", "llm", "llm_all"))

    def __post_init__(self) -> None:
        _validate(self, "ppp.question_classifier")


@dataclass(frozen=True)
class WeightsConfig:
    """``[ppp.weights]``: final = technical * technical + interaction * (r_proact + r_pers)."""

    technical: float = _setting(0.7, minimum=0)
    interaction: float = _setting(0.3, minimum=0)

    def __post_init__(self) -> None:
        technical, interaction = check_weights(self.technical, self.interaction, in_config=True)
        object.__setattr__(self, "technical", technical)
        object.__setattr__(self, "interaction", interaction)


def check_weights(technical: Any, interaction: Any, *, in_config: bool = False) -> tuple[float, float]:
    """The weight rules, written once: each a finite number >= 0, not both 0.

    ``in_config`` names them as the file does (``ppp.weights.technical``);
    otherwise as an argument (``weight technical``), for consensus's ``Weights``.
    """
    checked = []
    for f, value in zip(fields(WeightsConfig), (technical, interaction)):
        key = f"ppp.weights.{f.name}" if in_config else f"weight {f.name}"
        checked.append(_checked(key, value, f.default, f.metadata))
    if checked[0] == 0 and checked[1] == 0:
        # Every agent would score 0 and the "best" one would be arbitrary.
        both = ("ppp.weights.technical and ppp.weights.interaction" if in_config
                else "weights technical and interaction")
        raise ConfigError(f"{both} are both 0; at least one must be > 0", key="ppp.weights")
    return checked[0], checked[1]


@dataclass(frozen=True)
class ScoringConfig:
    """``[ppp.scoring]``: the reward profile (``spec``, the default, or the PPP paper's ``paper``)."""

    rewards: str = _setting("spec", choices=("spec", "paper"))

    def __post_init__(self) -> None:
        _validate(self, "ppp.scoring")


_FIRST_DAY = datetime(1, 1, 1, tzinfo=timezone.utc)


def retention_problem(older_than_days: float, now: datetime | None = None) -> str | None:
    """Why ``older_than_days`` is no retention (it must be a finite number of days, not
    negative, that does not reach back before the calendar's year 1), or None."""
    if not math.isfinite(older_than_days):
        return "must be a finite number of days"
    if older_than_days < 0:
        return "must not be negative"
    now = now or datetime.now(tz=timezone.utc)
    try:
        now - timedelta(days=older_than_days)
    except OverflowError:
        return f"must be at most {(now - _FIRST_DAY).days} days (no date is longer ago than the year 1)"
    return None


@dataclass(frozen=True)
class ArchivalConfig:
    """``[ppp.archival]``: retention of old trajectories."""

    enabled: bool = _setting(False)
    retention_days: int = _setting(90, minimum=0)
    auto_cleanup: bool = _setting(False)
    archive_path: str = _setting("", path=True)  # "" = delete without archiving
    cleanup_interval_s: float = _setting(3600.0, above=0)

    def __post_init__(self) -> None:
        _validate(self, "ppp.archival")
        # Checked here as cleanup checks it, so a file's mistake names its key, not cleanup's argument.
        problem = retention_problem(self.retention_days)
        if problem:
            raise ConfigError(f"ppp.archival.retention_days {problem}, got {self.retention_days}",
                              key="ppp.archival.retention_days")


@dataclass(frozen=True)
class PhoenixConfig:
    """``[ppp.phoenix]``: forwarding spans to Phoenix over OTLP."""

    enabled: bool = _setting(False)
    endpoint: str = _setting("http://localhost:6006", nonempty=True, url=True)
    project_name: str = _setting("default", nonempty=True)
    api_key: str = _setting("", secret=True)
    protocol: str = _setting("http/protobuf", choices=("http/protobuf", "grpc"))

    def __post_init__(self) -> None:
        _validate(self, "ppp.phoenix")


# Section attribute -> class, in the order the file, the listing and the
# example present them.
_SECTIONS: dict[str, type] = {
    "trajectory": TrajectoryConfig,
    "question_classifier": QuestionClassifierConfig,
    "weights": WeightsConfig,
    "scoring": ScoringConfig,
    "archival": ArchivalConfig,
    "phoenix": PhoenixConfig,
}


@dataclass(frozen=True)
class Config:
    """The effective configuration. ``Config()`` is the defaults."""

    enabled: bool = _setting(True)
    db_path: str = _setting(DEFAULT_DB_PATH, nonempty=True, path=True)
    trajectory: TrajectoryConfig = field(default_factory=TrajectoryConfig)
    question_classifier: QuestionClassifierConfig = field(default_factory=QuestionClassifierConfig)
    weights: WeightsConfig = field(default_factory=WeightsConfig)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    archival: ArchivalConfig = field(default_factory=ArchivalConfig)
    phoenix: PhoenixConfig = field(default_factory=PhoenixConfig)
    # The file that was read, if any; informational, not part of equality.
    file: str | None = field(default=None, compare=False)
    _sources: Mapping[str, str] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        for name in ("enabled", "db_path"):
            f = _SPECS_TOP[name]
            object.__setattr__(
                self, name, _checked(f"ppp.{name}", getattr(self, name), f.default, f.metadata)
            )
        for name, cls in _SECTIONS.items():
            if not isinstance(getattr(self, name), cls):
                raise ConfigError(
                    f"ppp.{name} must be a {cls.__name__}, got {_describe(getattr(self, name))}",
                    key=f"ppp.{name}",
                )

    def source(self, key: str) -> str:
        """Where the effective value of ``key`` came from.

        One of ``"default"``, ``"file:<path>"``, ``"env:<VAR>"``, ``"argument"``.
        ``key`` is dotted, with or without the leading ``ppp.``.
        """
        full = _full_key(key)
        if full not in _SPECS:
            raise KeyError(f"unknown configuration key {key!r}")
        return self._sources.get(full, DEFAULT)

    def value(self, key: str) -> Any:
        """The effective value of a dotted key (with or without ``ppp.``)."""
        full = _full_key(key)
        if full not in _SPECS:
            raise KeyError(f"unknown configuration key {key!r}")
        obj: Any = self
        for part in full.split(".")[1:]:
            obj = getattr(obj, part)
        return obj

    def items(self) -> Iterator[tuple[str, Any, str]]:
        """(dotted key, value, source) for every key, in file order.

        Keys are spelled as in the file (``ppp.trajectory.buffer_size``).
        Values are raw: pass them through :func:`display_value` before showing.
        """
        for key in _SPECS:
            yield key, self.value(key), self.source(key)

    def to_dict(self, *, mask_secrets: bool = True) -> dict[str, Any]:
        """The configuration in the file's shape: ``{"ppp": {..., "weights": {...}}}``.

        Secrets are masked unless ``mask_secrets=False``, because the main use
        is printing (``ppp-otel config --json``), where a raw key would leak.
        """
        root: dict[str, Any] = {}
        for key in _SPECS:
            value = self.value(key)
            if mask_secrets:
                value = display_value(key, value)
            *parents, leaf = key.split(".")[1:]
            node = root
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value
        return {"ppp": root}


# Dotted key ("ppp.trajectory.buffer_size") -> its dataclass field, in file order.
_SPECS_TOP = {f.name: f for f in fields(Config) if f.name in ("enabled", "db_path")}
_SPECS: dict[str, Any] = {f"ppp.{name}": f for name, f in _SPECS_TOP.items()}
for _section, _cls in _SECTIONS.items():
    for _f in fields(_cls):
        _SPECS[f"ppp.{_section}.{_f.name}"] = _f
del _section, _cls, _f


def _full_key(key: str) -> str:
    return key if key == "ppp" or key.startswith("ppp.") else f"ppp.{key}"


def display_value(key: str, value: Any) -> Any:
    """``value`` as it may be shown to a person: secrets masked, others as is.

    An empty secret stays ``""`` so "not set" remains visible; a long one keeps
    its last four characters so you can tell which key is in effect.
    """
    spec = _SPECS.get(_full_key(key))
    is_secret = spec.metadata["secret"] if spec is not None else key.endswith("api_key")
    if not is_secret or not value:
        return value
    text = str(value)
    return "****" + text[-4:] if len(text) >= 16 else "****"


# --------------------------------------------------------------------------
# Loading


def _where(source: str) -> str:
    """A source as it reads at the end of an error message."""
    if source.startswith("file:"):
        return source[len("file:") :]
    if source.startswith("env:"):
        return "env " + source[len("env:") :]
    return source


def _unknown(key: str, source: str, *, section: bool = False) -> ConfigError:
    what = "section [" + key + "]" if section else "key " + key
    message = f"unknown {what} (in {_where(source)})"
    candidates = (
        [f"ppp.{name}" for name in _SECTIONS] if section else list(_SPECS)
    )
    import difflib

    close = difflib.get_close_matches(key, candidates, n=1)
    if close:
        message += f"; did you mean {close[0]}?"
    return ConfigError(message, key=key, source=source)


def _read_file(path: str, named_by: str) -> dict[str, Any]:
    tomllib = _toml()
    try:
        with open(path, "rb") as fh:
            # utf-8-sig: an editor's byte-order mark (Windows Notepad writes one) is no statement.
            return tomllib.loads(fh.read().decode("utf-8-sig"))
    except FileNotFoundError:
        raise ConfigError(
            f"config file not found: {path} (named by {_where(named_by)})", source=named_by
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML in {path}: {exc}", source=f"file:{path}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"invalid TOML in {path}: not UTF-8 ({exc})", source=f"file:{path}") from None
    except OSError as exc:
        raise ConfigError(
            f"cannot read config file {path}: {exc.strerror or exc}", source=f"file:{path}"
        ) from None


def _flatten_file(document: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The file's settings as {dotted key: value}; unknown names are errors."""
    flat: dict[str, Any] = {}
    for top, body in document.items():
        if top != "ppp":
            raise ConfigError(
                f"unknown section [{top}] (in {_where(source)}); settings go under [ppp]",
                key=top,
                source=source,
            )
        if not isinstance(body, dict):
            raise ConfigError(
                f"ppp must be a table, got {_describe(body)} (in {_where(source)})",
                key="ppp",
                source=source,
            )
        for name, value in body.items():
            key = f"ppp.{name}"
            if name in _SECTIONS:
                if not isinstance(value, dict):
                    raise ConfigError(
                        f"{key} must be a table, got {_describe(value)} (in {_where(source)})",
                        key=key,
                        source=source,
                    )
                for leaf, leaf_value in value.items():
                    leaf_key = f"{key}.{leaf}"
                    if leaf_key not in _SPECS:
                        raise _unknown(leaf_key, source)
                    flat[leaf_key] = leaf_value
            elif key in _SPECS:
                flat[key] = value
            elif isinstance(value, dict):
                raise _unknown(key, source, section=True)
            else:
                raise _unknown(key, source)
    return flat


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


def _env_bool(text: str) -> bool | str:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    return text  # left as a string so the type check reports it with its source


# (variable, dotted key, how the text becomes a value). Applied in order, so
# when two variables feed one key, the later one wins.
_ENV: tuple[tuple[str, str, Any], ...] = (
    ("PPP_OTEL_ENABLED", "ppp.enabled", _env_bool),
    ("PPP_OTEL_DB", "ppp.db_path", str),
    ("PPP_OTEL_LLM_BASE_URL", "ppp.question_classifier.base_url", str),
    ("PPP_OTEL_LLM_MODEL", "ppp.question_classifier.model", str),
    ("PPP_OTEL_LLM_API_KEY", "ppp.question_classifier.api_key", str),
    ("PHOENIX_COLLECTOR_ENDPOINT", "ppp.phoenix.endpoint", str),
    # Naming a collector is the phoenix-otel way of asking for export.
    ("PHOENIX_COLLECTOR_ENDPOINT", "ppp.phoenix.enabled", lambda _text: True),
    ("PHOENIX_PROJECT_NAME", "ppp.phoenix.project_name", str),
    ("PHOENIX_API_KEY", "ppp.phoenix.api_key", str),
)

# The OpenAI SDK's own variables are fallbacks, not overrides: they are
# usually set for other tools, so they fill a value that is still empty but
# never replace one the file or a PPP_OTEL_* variable chose on purpose.
_ENV_FALLBACKS: tuple[tuple[str, str], ...] = (
    ("OPENAI_BASE_URL", "ppp.question_classifier.base_url"),
    ("OPENAI_API_KEY", "ppp.question_classifier.api_key"),
)


def unknown_variables(env: Mapping[str, str] | None = None) -> list[str]:
    """What to say about each ``PPP_OTEL_*`` variable ppp-otel does not read: a misspelt
    ``PPP_OTEL_DATABASE`` is otherwise ignored without a word."""
    known = sorted({CONFIG_ENV, INGEST_TOKEN_ENV, *(var for var, _key, _parse in _ENV if var.startswith("PPP_OTEL_"))})
    # The benchmarks' own variables are read by benchmarks/, not by the package.
    return [f"{name} is not a ppp-otel variable and is ignored (those are {', '.join(known)})"
            for name in sorted(environ(env))
            if name.startswith("PPP_OTEL_") and name not in known and not name.startswith("PPP_OTEL_BENCH_")]


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Build the effective :class:`Config`: defaults < file < environment < overrides.

    ``path``: the TOML file; when ``None``, ``PPP_OTEL_CONFIG`` names it; when
    neither, no file is read.

    ``env``: the environment to read, ``os.environ`` when ``None`` (pass ``{}``
    to ignore it). An empty variable counts as unset.

    ``overrides``: dotted keys, with or without ``ppp.`` (``"db_path"``,
    ``"trajectory.buffer_size"``), to typed values. A ``None`` value means "not
    given", so optional command-line flags can be passed straight through.

    Raises :class:`ConfigError` naming the key and the source at fault.
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    values: dict[str, Any] = {key: spec.default for key, spec in _SPECS.items()}
    sources: dict[str, str] = {}

    file: str | None = None
    if path is not None:
        file, named_by = os.fspath(path), ARGUMENT
    elif environ.get(CONFIG_ENV):
        file, named_by = environ[CONFIG_ENV], f"env:{CONFIG_ENV}"
    if file is not None and not file.strip():
        raise ConfigError(f"config file name is blank: {file!r} (named by {_where(named_by)})",
                          source=named_by)
    if file is not None:
        source = f"file:{file}"
        for key, value in _flatten_file(_read_file(file, named_by), source).items():
            values[key], sources[key] = value, source

    for var, key, parse in _ENV:
        text = environ.get(var)
        if text:
            values[key], sources[key] = parse(text), f"env:{var}"
    for var, key in _ENV_FALLBACKS:
        text = environ.get(var)
        if text and values[key] == "":
            values[key], sources[key] = text, f"env:{var}"

    for raw_key, value in (overrides or {}).items():
        key = _full_key(raw_key)
        if key not in _SPECS:
            raise _unknown(raw_key, ARGUMENT)
        if value is not None:
            values[key], sources[key] = value, ARGUMENT

    for key, spec in _SPECS.items():
        source = sources.get(key, DEFAULT)
        try:
            values[key] = _checked(key, values[key], spec.default, spec.metadata)
        except ConfigError as exc:
            raise ConfigError(f"{exc} (in {_where(source)})", key=key, source=source) from None

    sections = {}
    for name, cls in _SECTIONS.items():
        prefix = f"ppp.{name}."
        try:
            sections[name] = cls(
                **{k[len(prefix) :]: v for k, v in values.items() if k.startswith(prefix)}
            )
        except ConfigError as exc:
            # Rules across keys get here (each key passed alone above): name every place
            # the section's values came from, in key order; a rule of one key, its place.
            involved = [sources.get(exc.key, DEFAULT)] if exc.key in _SPECS else list(
                dict.fromkeys(sources.get(k, DEFAULT) for k in values if k.startswith(prefix))
            )
            raise ConfigError(
                f"{exc} (in {', '.join(_where(s) for s in involved)})",
                key=exc.key,
                source=", ".join(involved),
            ) from None

    config = Config(
        enabled=values["ppp.enabled"], db_path=values["ppp.db_path"], file=file, **sections
    )
    object.__setattr__(config, "_sources", MappingProxyType(dict(sources)))
    return config


# --------------------------------------------------------------------------
# The environment, read here only


def environ(env: Mapping[str, str] | None = None) -> Mapping[str, str]:
    """``env`` when given (``{}`` ignores the environment), else the process's."""
    return os.environ if env is None else env


def env_value(name: str, env: Mapping[str, str] | None = None) -> str | None:
    """A variable's text; None when it is unset or empty (an empty variable counts as unset)."""
    return environ(env).get(name) or None


def default_db_path(env: Mapping[str, str] | None = None, *, read_file: bool = True) -> str:
    """``$PPP_OTEL_DB``, else the config file's ``db_path`` (unless ``read_file``
    is False), else the default name."""
    # The variable first, so a broken config file does not stop a command
    # that was told where the database is.
    chosen = env_value(DB_ENV, env)
    if chosen:
        spec = _SPECS["ppp.db_path"]
        try:
            return _checked("ppp.db_path", chosen, spec.default, spec.metadata)
        except ConfigError as exc:
            raise ConfigError(f"{exc} (in env {DB_ENV})", key="ppp.db_path", source=f"env:{DB_ENV}") from None
    if read_file:
        return process_config(env).db_path or DEFAULT_DB_PATH
    return DEFAULT_DB_PATH


def llm_endpoint_from_env(env: Mapping[str, str] | None = None) -> tuple[str | None, str | None, str | None]:
    """(base_url, model, api_key) for the LLM classifier from the environment alone,
    with :func:`load_config`'s rules (``PPP_OTEL_LLM_*`` first, ``OPENAI_*`` as fallbacks)."""
    values: dict[str, str | None] = {}
    for var, key, _parse in _ENV:
        if key.startswith("ppp.question_classifier.") and env_value(var, env):
            values[key] = env_value(var, env)
    for var, key in _ENV_FALLBACKS:
        if not values.get(key) and env_value(var, env):
            values[key] = env_value(var, env)
    prefix = "ppp.question_classifier."
    return (values.get(prefix + "base_url"), values.get(prefix + "model"), values.get(prefix + "api_key"))


def process_config(env: Mapping[str, str] | None = None) -> Config:
    """The process's configuration: the file ``PPP_OTEL_CONFIG`` names, and the environment.

    For entry points (the CLI, ``register()``) and for API functions whose
    caller passed no configuration.
    """
    return load_config(env=env)
