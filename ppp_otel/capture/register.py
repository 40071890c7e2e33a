"""``register()``: one call sets up recording (and, if asked, Phoenix).

Every default is readable here and every one can be changed by the config
file, by the environment or by an argument, in that order of precedence.
"""

from __future__ import annotations

import logging
import os
import weakref
from typing import Mapping

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from ppp_otel import conventions as c
from ppp_otel.capture import api as instrument
from ppp_otel.config.settings import (
    ARGUMENT, DB_ENV, Config, PhoenixConfig, default_db_path, env_value, environ, load_config, unknown_variables,
)
from ppp_otel.logs import LogLimiter
from ppp_otel.capture.processor import TrajectorySpanProcessor
from ppp_otel.storage import check_creatable, display_name

logger = logging.getLogger(__name__)

DEFAULT_SERVICE_NAME = "ppp-otel"
# Phoenix files spans under the project named by this resource attribute.
PROJECT_NAME_ATTRIBUTE = c.PROJECT_NAME
PHOENIX_DEFAULT_ENDPOINT = "http://localhost:6006"
PHOENIX_DEFAULT_GRPC_ENDPOINT = "http://localhost:4317"


def _parse_headers(text: str | None) -> dict[str, str]:
    """``OTEL_EXPORTER_OTLP_HEADERS`` syntax: ``k1=v1,k2=v2`` (values URL-encoded)."""
    from urllib.parse import unquote

    headers = {}
    for part in (text or "").split(","):
        if "=" in part:
            key, value = part.split("=", 1)
            headers[key.strip().lower()] = unquote(value.strip())
    return headers


# OTEL_* variables are often set for other tools: an unsupported one is said once, not fatal.
_unsupported_protocol = LogLimiter.once(logger)
# A misspelt PPP_OTEL_* variable: said once per process, however often register() runs.
_unknown_variable = LogLimiter.once(logger)


def phoenix_exporter_settings(
    phoenix: bool | str | None, settings: PhoenixConfig, env: Mapping[str, str]
) -> tuple[str, str, dict[str, str]] | None:
    """(protocol, endpoint, headers) for forwarding to Phoenix, or None when off.

    On when ``phoenix`` is True or a URL, or when it is None and either the
    config enables it or ``PHOENIX_COLLECTOR_ENDPOINT`` is set; ``False`` is off.

    The endpoint is, first to last: the ``phoenix`` argument when it is a URL,
    ``PHOENIX_COLLECTOR_ENDPOINT``, ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``
    (used as given, as the OTel spec says), ``OTEL_EXPORTER_OTLP_ENDPOINT``,
    the config file's ``[ppp.phoenix] endpoint``. Over HTTP a base URL gets
    ``/v1/traces`` appended. Headers come from ``OTEL_EXPORTER_OTLP_HEADERS``;
    an API key (``PHOENIX_API_KEY``, else the config's) becomes a bearer token.
    """
    if phoenix is False:
        return None
    if phoenix is None and not (settings.enabled or env.get("PHOENIX_COLLECTOR_ENDPOINT")):
        return None
    protocol = settings.protocol
    # As OpenTelemetry reads them: the traces' own variable beats the general one.
    for var in ("OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"):
        text = env.get(var)
        if text in ("grpc", "http/protobuf"):
            protocol = text
        elif text:
            _unsupported_protocol("ppp-otel: %s=%r is ignored: ppp-otel sends to Phoenix over grpc or "
                                  "http/protobuf only", var, text, key=(var, text))
    as_given = False
    if isinstance(phoenix, str):
        endpoint = phoenix
    elif env.get("PHOENIX_COLLECTOR_ENDPOINT"):
        endpoint = env["PHOENIX_COLLECTOR_ENDPOINT"]
    elif env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        endpoint, as_given = env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"], True
    else:
        endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or settings.endpoint
    endpoint = endpoint.rstrip("/")
    if protocol == "grpc" and endpoint == PHOENIX_DEFAULT_ENDPOINT:
        # Phoenix takes gRPC on its own port, not on the UI's.
        endpoint = PHOENIX_DEFAULT_GRPC_ENDPOINT
    if protocol == "http/protobuf" and not as_given and not endpoint.endswith("/v1/traces"):
        endpoint += "/v1/traces"
    headers = _parse_headers(env.get("OTEL_EXPORTER_OTLP_HEADERS"))
    api_key = env.get("PHOENIX_API_KEY") or settings.api_key
    if api_key:
        headers["authorization"] = f"Bearer {api_key}"
    return protocol, endpoint, headers


def phoenix_project_name(project_name: str | None, settings: PhoenixConfig, env: Mapping[str, str]) -> str:
    """The argument, else ``PHOENIX_PROJECT_NAME``, else the config's ``project_name``."""
    return project_name or env.get("PHOENIX_PROJECT_NAME") or settings.project_name


def _phoenix_forwarder(
    protocol: str, endpoint: str, headers: dict[str, str], env: Mapping[str, str],
    *, shutdown_timeout_s: float = 1.0,
) -> SpanProcessor:
    if protocol == "grpc":
        return BatchSpanProcessor(_otlp_exporter(protocol, endpoint, headers))
    # Quiet when Phoenix is down, and quick to shut down (see phoenix_exporter).
    from ppp_otel.publish.phoenix_exporter import DEFAULT_TIMEOUT_S, PhoenixForwarder, PhoenixSpanExporter

    timeout_s = DEFAULT_TIMEOUT_S
    text = env.get("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT") or env.get("OTEL_EXPORTER_OTLP_TIMEOUT")
    if text:
        try:
            timeout_s = float(text)
        except ValueError:
            logger.warning("ppp-otel: OTLP timeout %r is not a number of seconds; using %g", text, timeout_s)
    return PhoenixForwarder(PhoenixSpanExporter(endpoint, headers, timeout_s=timeout_s,
                                                shutdown_timeout_s=shutdown_timeout_s))


def _annotation_url(protocol: str, endpoint: str, settings: PhoenixConfig, env: Mapping[str, str]) -> str:
    """Phoenix's REST API: beside the OTLP/HTTP endpoint, or the UI's address when spans go by gRPC."""
    from ppp_otel.publish.phoenix_link import base_url

    if protocol != "grpc":
        return base_url(endpoint)
    return base_url(env.get("PHOENIX_COLLECTOR_ENDPOINT") or settings.endpoint or PHOENIX_DEFAULT_ENDPOINT)


def phoenix_rest_url(phoenix: bool | str | None, settings: PhoenixConfig, env: Mapping[str, str]) -> str | None:
    """Phoenix's REST API for the Phoenix that ``register(phoenix=...)`` forwards to; None when it forwards nowhere."""
    forwarding = phoenix_exporter_settings(phoenix, settings, env)
    if forwarding is None:
        return None
    protocol, endpoint, _ = forwarding
    return _annotation_url(protocol, endpoint, settings, env)


def phoenix_processors(
    phoenix: bool | str | None, settings: PhoenixConfig, env: Mapping[str, str],
    *, shutdown_timeout_s: float = 1.0,
) -> tuple[SpanProcessor, "PhoenixAnnotationSender"] | None:
    """(span forwarder, annotation sender) for Phoenix, or None when forwarding is off.

    Add the forwarder after the recorder and the sender after the forwarder,
    so that at shutdown the last spans leave before their annotations; give
    the recorder ``on_judged=sender.judged``. ``shutdown_timeout_s``: what
    each of them gives Phoenix at shutdown.
    """
    from ppp_otel.publish.phoenix_sender import PhoenixAnnotationSender

    forwarding = phoenix_exporter_settings(phoenix, settings, env)
    if forwarding is None:
        return None
    protocol, endpoint, headers = forwarding
    annotation_headers = {k: v for k, v in headers.items() if k == "authorization"}
    sender = PhoenixAnnotationSender(_annotation_url(protocol, endpoint, settings, env), headers=annotation_headers,
                                     shutdown_timeout_s=shutdown_timeout_s)
    return _phoenix_forwarder(protocol, endpoint, headers, env, shutdown_timeout_s=shutdown_timeout_s), sender


def _otlp_exporter(protocol: str, endpoint: str, headers: dict[str, str], *, timeout_s: float | None = None):
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        insecure = endpoint.startswith("http://")
        target = endpoint.split("://", 1)[-1]
        return OTLPSpanExporter(
            endpoint=target, headers=tuple(headers.items()) or None, insecure=insecure, timeout=timeout_s
        )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=endpoint, headers=headers or None, timeout=timeout_s)


# What register() added to each provider, by what it does (the database it records into,
# the Phoenix it forwards to), so that calling it again (a notebook cell run twice) adds
# nothing twice to the one provider OpenTelemetry lets be global.
_added: "weakref.WeakKeyDictionary[TracerProvider, dict[tuple, SpanProcessor]]" = weakref.WeakKeyDictionary()
# Annotation senders already given a recorder's judgments: each gets them from one recorder.
_fed: "weakref.WeakSet[SpanProcessor]" = weakref.WeakSet()


def spans_forwarded(provider: TracerProvider) -> int | None:
    """How many spans the Phoenix forwarders ``register()`` gave this provider delivered,
    or None when none of them counts (spans sent by gRPC): after ``shutdown()``, whether
    a span said to be sent reached Phoenix."""
    from ppp_otel.publish.phoenix_exporter import PhoenixForwarder

    counted = [p.phoenix_exporter.exported_spans for p in _added.get(provider, {}).values()
               if isinstance(p, PhoenixForwarder)]
    return sum(counted) if counted else None


def _feed_judgments(added: dict[tuple, SpanProcessor]) -> None:
    """Give every Phoenix annotation sender on a provider the judgments of the first live
    recorder on it, whichever call added which: a notebook that first records, then adds
    Phoenix, gets its turns' annotations too. One recorder per sender: two databases
    recording the same spans would send the same annotations twice."""
    recorders = [p for key, p in added.items() if key[0] == "trajectories" and not p.stopped]
    if not recorders:
        return
    for key, sender in added.items():
        if key[0] == "annotations" and sender not in _fed:
            recorders[0].add_judged_listener(sender.judged)
            _fed.add(sender)


def _global_provider() -> TracerProvider | None:
    """The SDK provider already set as the global one, unless register() saw it shut down.
    OpenTelemetry never replaces it: a new provider would record what trajectory() makes
    while the instrumentations bound to the global one record elsewhere, so their turns
    would be lost."""
    current = trace.get_tracer_provider()
    if not isinstance(current, TracerProvider):
        return None
    if any(getattr(p, "stopped", False) for p in _added.get(current, {}).values()):
        return None
    return current


def register(
    db_path: str | os.PathLike | None = None,
    *,
    config: Config | str | os.PathLike | None = None,
    phoenix: bool | str | None = None,
    project_name: str | None = None,
    set_global: bool = True,
    tracer_provider: TracerProvider | None = None,
    env: Mapping[str, str] | None = None,
) -> TracerProvider:
    """Set up tracing into the trajectory store (a SQLite file or a ``postgresql://`` URL) and return the provider.

    - ``db_path``: the database file, or a ``postgresql://`` URL (with the
      ``ppp-otel[postgres]`` extra); default ``$PPP_OTEL_DB``, the config's
      ``db_path``, else ``ppp_trajectories.db`` in the working directory.
    - ``config``: a :class:`Config` or a TOML file; default ``$PPP_OTEL_CONFIG``.
    - ``phoenix``: ``True`` forwards spans to Phoenix over OTLP, a string is the
      endpoint, ``None`` follows ``[ppp.phoenix] enabled`` (or
      ``PHOENIX_COLLECTOR_ENDPOINT`` being set), ``False`` never forwards.
    - ``project_name``: the Phoenix project; default ``$PHOENIX_PROJECT_NAME``,
      the config's ``project_name``.
    - ``set_global``: also make it the global OpenTelemetry tracer provider.
    - ``tracer_provider``: add the processors to this provider instead of a new one.

    With ``set_global`` and no ``tracer_provider``, a global SDK provider set before (by an
    earlier call, or by your code) is added to rather than replaced (OpenTelemetry keeps the
    first one); a call with the database or the Phoenix of an earlier one adds nothing for it.
    Phoenix added by a later call gets the judgments of the recorder an earlier call added;
    its project stays the provider's (a warning says so when another was asked for).
    """
    if db_path is not None and not isinstance(db_path, (str, os.PathLike)):
        raise ValueError(f"db_path must be a file path or a postgresql:// URL, got {db_path!r}")
    if config is not None and not isinstance(config, (Config, str, os.PathLike)):
        raise ValueError(f"config must be a Config or the path of a TOML file, got {config!r}")
    if isinstance(phoenix, str) and not phoenix.lower().startswith(("http://", "https://")):
        raise ValueError(f"phoenix must be True, False or an http:// or https:// URL, got {phoenix!r}")
    env = environ(env)
    for warning in unknown_variables(env):
        _unknown_variable("ppp-otel: %s", warning, key=warning)
    if not isinstance(config, Config):
        overrides = {"db_path": os.fspath(db_path)} if db_path is not None else None
        config = load_config(config, env=env, overrides=overrides)
    path = os.fspath(db_path) if db_path is not None else config.db_path
    if db_path is None and config.source("db_path") != ARGUMENT and env_value(DB_ENV, env):
        # A Config built in code has not read the environment: $PPP_OTEL_DB still comes
        # before its db_path, as for every command, so both find the same database.
        path = default_db_path(env, read_file=False)
    project = phoenix_project_name(project_name, config.phoenix, env)
    if tracer_provider is None and set_global:
        tracer_provider = _global_provider()
        if tracer_provider is not None:
            logger.info("ppp-otel: register() adds to the TracerProvider already set globally "
                        "(OpenTelemetry keeps the first one), so that instrumentations bound to it are recorded")
    added = _added.setdefault(tracer_provider, {}) if tracer_provider is not None else {}
    exporting = phoenix_exporter_settings(phoenix, config.phoenix, env)
    phoenix_key = ("phoenix", *exporting[:2]) if exporting is not None else None
    forwarding = phoenix_processors(phoenix, config.phoenix, env) if phoenix_key not in added else None
    forwarder, annotations = forwarding if forwarding is not None else (None, None)

    if tracer_provider is None:
        attributes = {PROJECT_NAME_ATTRIBUTE: project}
        if not env.get("OTEL_SERVICE_NAME"):
            attributes["service.name"] = DEFAULT_SERVICE_NAME
        resource = Resource.create(attributes)
        tracer_provider = TracerProvider(resource=resource)
        added = _added.setdefault(tracer_provider, {})

    recording_key = ("trajectories", os.path.abspath(path) if "://" not in path else path)
    if config.enabled and recording_key in added and not added[recording_key].stopped:
        logger.info("ppp-otel: %s is already recorded into through this provider", display_name(path))
    elif config.enabled:
        check_creatable(path)
        settings = config.trajectory
        from ppp_otel.analysis.judgment_stage import judges_from_config

        classifier, preference_judge = judges_from_config(config.question_classifier)
        recorder = TrajectorySpanProcessor(
            path,
            buffer_size=settings.buffer_size,
            flush_interval_ms=settings.flush_interval_ms,
            max_queue_size=settings.max_queue_size,
            on_full=settings.on_full,
            block_timeout_ms=settings.block_timeout_ms,
            wal=settings.enable_wal,
            busy_timeout_ms=settings.busy_timeout_ms,
            classifier=classifier,
            question_tools=settings.question_tools,
            preference_judge=preference_judge,
        )
        tracer_provider.add_span_processor(recorder)
        added[recording_key] = recorder
        archival = config.archival
        if archival.enabled and archival.auto_cleanup:
            from ppp_otel.storage.sqlite.retention import ArchivalScheduler

            # A span processor only so that provider shutdown stops it.
            tracer_provider.add_span_processor(
                ArchivalScheduler(
                    path,
                    retention_days=archival.retention_days,
                    interval_s=archival.cleanup_interval_s,
                    archive_path=archival.archive_path or None,
                )
            )
    else:
        logger.info("ppp-otel: recording is disabled by configuration ([ppp] enabled = false)")

    if forwarding is not None:
        # Its own batch processor and thread: Phoenix being slow never delays SQLite.
        tracer_provider.add_span_processor(forwarder)
        # After the forwarder: at shutdown the last spans leave before their annotations.
        tracer_provider.add_span_processor(annotations)
        added[phoenix_key] = forwarder
        added[("annotations", *phoenix_key[1:])] = annotations
        # Phoenix files spans under the provider's resource, fixed when it was made.
        resource = getattr(tracer_provider, "resource", None)
        sent_to = (resource.attributes.get(PROJECT_NAME_ATTRIBUTE) if resource is not None else None) or "default"
        if sent_to != project:
            logger.warning(
                "ppp-otel: spans go to Phoenix project %r, not %r: the project is part of the TracerProvider's "
                "resource, set when it was created (by the first register() call, or by your code); pass "
                "project_name=%r, or set PHOENIX_PROJECT_NAME, before the provider is created", sent_to, project,
                project)
            project = sent_to
        logger.info("ppp-otel: forwarding spans and judgments to Phoenix at %s, project %s",
                    annotations.url, project)
    # Each turn's judgment goes to Phoenix as span annotations.
    _feed_judgments(added)

    instrument.set_tracer_provider(tracer_provider)
    if set_global and trace.get_tracer_provider() is not tracer_provider:
        trace.set_tracer_provider(tracer_provider)
    return tracer_provider
