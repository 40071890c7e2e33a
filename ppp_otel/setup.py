"""``register()``: one call sets up recording (and, if asked, Phoenix).

Every default is readable here and every one can be changed by the config
file, by the environment or by an argument, in that order of precedence.
"""

from __future__ import annotations

import logging
import os
from typing import Mapping

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from . import instrument
from .config import Config, PhoenixConfig, load_config
from .processor import TrajectorySpanProcessor

logger = logging.getLogger(__name__)

DEFAULT_SERVICE_NAME = "ppp-otel"
# Phoenix files spans under the project named by this resource attribute.
PROJECT_NAME_ATTRIBUTE = "openinference.project.name"


def _parse_headers(text: str | None) -> dict[str, str]:
    """``OTEL_EXPORTER_OTLP_HEADERS`` syntax: ``k1=v1,k2=v2`` (values URL-encoded)."""
    from urllib.parse import unquote

    headers = {}
    for part in (text or "").split(","):
        if "=" in part:
            key, value = part.split("=", 1)
            headers[key.strip().lower()] = unquote(value.strip())
    return headers


def phoenix_exporter_settings(
    phoenix: bool | str | None, settings: PhoenixConfig, env: Mapping[str, str]
) -> tuple[str, str, dict[str, str]] | None:
    """(protocol, endpoint, headers) for forwarding to Phoenix, or None when off.

    The endpoint is, first to last: the ``phoenix`` argument when it is a URL,
    ``PHOENIX_COLLECTOR_ENDPOINT``, ``OTEL_EXPORTER_OTLP_ENDPOINT``, the
    config file's ``[ppp.phoenix] endpoint``.
    """
    if phoenix is False:
        return None
    if phoenix is None and not settings.enabled:
        return None
    if isinstance(phoenix, str):
        endpoint = phoenix
    else:
        endpoint = (
            env.get("PHOENIX_COLLECTOR_ENDPOINT")
            or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
            or settings.endpoint
        )
    endpoint = endpoint.rstrip("/")
    protocol = settings.protocol
    if env.get("OTEL_EXPORTER_OTLP_PROTOCOL") in ("grpc", "http/protobuf"):
        protocol = env["OTEL_EXPORTER_OTLP_PROTOCOL"]
    if protocol == "http/protobuf" and not endpoint.endswith("/v1/traces"):
        endpoint += "/v1/traces"
    headers = _parse_headers(env.get("OTEL_EXPORTER_OTLP_HEADERS"))
    api_key = env.get("PHOENIX_API_KEY") or settings.api_key
    if api_key:
        headers["authorization"] = f"Bearer {api_key}"
    return protocol, endpoint, headers


def _otlp_exporter(protocol: str, endpoint: str, headers: dict[str, str]):
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        insecure = endpoint.startswith("http://")
        target = endpoint.split("://", 1)[-1]
        return OTLPSpanExporter(endpoint=target, headers=tuple(headers.items()) or None, insecure=insecure)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=endpoint, headers=headers or None)


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
    """Set up tracing into the SQLite trajectory database and return the provider.

    - ``db_path``: the database file; default ``$PPP_OTEL_DB``, the config's
      ``db_path``, else ``ppp_trajectories.db`` in the working directory.
    - ``config``: a :class:`Config` or a TOML file; default ``$PPP_OTEL_CONFIG``.
    - ``phoenix``: ``True`` forwards spans to Phoenix over OTLP, a string is the
      endpoint, ``None`` follows ``[ppp.phoenix] enabled`` (or
      ``PHOENIX_COLLECTOR_ENDPOINT`` being set), ``False`` never forwards.
    - ``project_name``: the Phoenix project; default ``$PHOENIX_PROJECT_NAME``,
      the config's ``project_name``.
    - ``set_global``: also make it the global OpenTelemetry tracer provider.
    - ``tracer_provider``: add the processors to this provider instead of a new one.
    """
    env = os.environ if env is None else env
    if not isinstance(config, Config):
        overrides = {"db_path": os.fspath(db_path)} if db_path is not None else None
        config = load_config(config, env=env, overrides=overrides)
    path = os.fspath(db_path) if db_path is not None else config.db_path
    project = project_name or config.phoenix.project_name

    if tracer_provider is None:
        resource = Resource.create({PROJECT_NAME_ATTRIBUTE: project})
        tracer_provider = TracerProvider(resource=resource)

    if config.enabled:
        settings = config.trajectory
        classifier = None
        if config.question_classifier.method != "heuristic":
            from .llm_classifier import make_effort_classifier

            qc = config.question_classifier
            classifier = make_effort_classifier(
                qc.method, base_url=qc.base_url or None, model=qc.model or None,
                api_key=qc.api_key or None, timeout_s=qc.timeout_s,
                max_concurrency=qc.max_concurrency, cache_size=qc.cache_size,
            )
        tracer_provider.add_span_processor(
            TrajectorySpanProcessor(
                path,
                buffer_size=settings.buffer_size,
                flush_interval_ms=settings.flush_interval_ms,
                max_queue_size=settings.max_queue_size,
                on_full=settings.on_full,
                block_timeout_ms=settings.block_timeout_ms,
                wal=settings.enable_wal,
                busy_timeout_ms=settings.busy_timeout_ms,
                classifier=classifier,
            )
        )
        archival = config.archival
        if archival.enabled and archival.auto_cleanup:
            from .archival import ArchivalScheduler

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

    forwarding = phoenix_exporter_settings(phoenix, config.phoenix, env)
    if forwarding is not None:
        protocol, endpoint, headers = forwarding
        # Its own batch processor and thread: Phoenix being slow never delays SQLite.
        tracer_provider.add_span_processor(BatchSpanProcessor(_otlp_exporter(protocol, endpoint, headers)))
        logger.info("ppp-otel: forwarding spans to %s (%s), project %s", endpoint, protocol, project)

    instrument.set_tracer_provider(tracer_provider)
    if set_global:
        trace.set_tracer_provider(tracer_provider)
    return tracer_provider
