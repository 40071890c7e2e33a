"""The OTLP/HTTP trace wire format: bodies in, spans out, and spans back to bodies.

Both encodings of the OTLP specification are read: binary protobuf and JSON.
OTLP JSON is not protobuf's canonical JSON: trace and span ids are hex strings
rather than base64, so they are rewritten before ``json_format`` parses the
rest (which already accepts lowerCamelCase and snake_case field names, and
enums and 64-bit integers as numbers or strings).

Every problem with a body raises a :class:`BodyError` subclass whose message
is fit to send back to the client.
"""

from __future__ import annotations

import base64
import json
import zlib
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Sequence

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
MEDIA_TYPES = (PROTOBUF, JSON)
TRACES_PATH = "/v1/traces"


class BodyError(ValueError):
    """The body cannot be read as an OTLP trace export (HTTP 400)."""

    status = 400


class UnsupportedMediaType(BodyError):
    """A content type or encoding this receiver does not speak (HTTP 415)."""

    status = 415


class BodyTooLarge(BodyError):
    """The body, or what it inflates to, is over the limit (HTTP 413)."""

    status = 413


def media_type(content_type: str | None) -> str:
    """The bare media type (``application/json; charset=utf-8`` -> ``application/json``)."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media not in MEDIA_TYPES:
        shown = content_type or "none"
        raise UnsupportedMediaType(f"content type {shown!r} is not supported; use {PROTOBUF} or {JSON}")
    return media


def decompress(body: bytes, encoding: str | None, max_bytes: int) -> bytes:
    """Undo ``Content-Encoding``; the inflated size is limited too (a small gzip can hold gigabytes)."""
    encoding = (encoding or "identity").strip().lower()
    if encoding == "identity":
        return body
    if encoding != "gzip":
        raise UnsupportedMediaType(f"content encoding {encoding!r} is not supported; use gzip or none")
    # A gzip stream may hold several members one after another (RFC 1952): all are the body.
    parts: list[bytes] = []
    total = 0
    rest = body
    while True:
        inflater = zlib.decompressobj(wbits=31)
        try:
            data = inflater.decompress(rest, max_bytes + 1 - total)
        except zlib.error as exc:
            raise BodyError(f"gzip body does not inflate: {exc}") from None
        total += len(data)
        if total > max_bytes or inflater.unconsumed_tail:
            raise BodyTooLarge(f"body inflates to more than {max_bytes} bytes")
        if not inflater.eof:
            raise BodyError("gzip body is truncated")
        parts.append(data)
        rest = inflater.unused_data
        if not rest.strip(b"\0"):  # some writers pad the end with zeros
            return b"".join(parts)


# --- reading ----------------------------------------------------------------

_ID_FIELDS = {"traceId": 16, "trace_id": 16, "spanId": 8, "span_id": 8, "parentSpanId": 8, "parent_span_id": 8}


def _hex_ids_to_base64(obj: dict, where: str) -> None:
    for key in _ID_FIELDS:
        value = obj.get(key)
        if not isinstance(value, str):
            continue
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            raise BodyError(f"{where}.{key} is not a hex id: {value!r:.40}") from None
        obj[key] = base64.b64encode(raw).decode("ascii")


def _spans_in_json(document: Any) -> Iterator[tuple[dict, str]]:
    """Every span and link object in an OTLP JSON document, with where it is."""
    if not isinstance(document, dict):
        raise BodyError("JSON body must be an object with resourceSpans")
    for r, resource in enumerate(_list(document, "resourceSpans", "resource_spans")):
        scopes = _list(resource, "scopeSpans", "scope_spans") + _list(resource, "instrumentationLibrarySpans")
        for s, scope in enumerate(scopes):
            for i, span in enumerate(_list(scope, "spans")):
                where = f"resourceSpans[{r}].scopeSpans[{s}].spans[{i}]"
                if not isinstance(span, dict):
                    raise BodyError(f"{where} must be an object")
                yield span, where
                for j, link in enumerate(_list(span, "links")):
                    if isinstance(link, dict):
                        yield link, f"{where}.links[{j}]"


def _list(obj: Any, *keys: str) -> list:
    if not isinstance(obj, dict):
        return []
    for key in keys:
        value = obj.get(key)
        if value is not None:
            if not isinstance(value, list):
                raise BodyError(f"{key} must be a list")
            return value
    return []


def parse_request(body: bytes, media: str, counts: dict | None = None) -> ExportTraceServiceRequest:
    """The request in ``body``; ``counts["repaired_text"]`` is raised by the characters replaced."""
    request = ExportTraceServiceRequest()
    if media == PROTOBUF:
        try:
            request.ParseFromString(body)
        except (DecodeError, RuntimeError, ValueError) as exc:
            raise BodyError(f"protobuf body does not parse as ExportTraceServiceRequest: {exc or 'malformed'}") from None
        return request
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BodyError(f"JSON body does not parse: {exc}") from None
    except RecursionError:
        raise BodyError("JSON body is nested too deeply") from None
    for obj, where in list(_spans_in_json(document)):
        _hex_ids_to_base64(obj, where)
    # Exporters older than OTLP 0.15 call scope spans "instrumentation library spans".
    for resource in _list(document, "resourceSpans", "resource_spans"):
        legacy = resource.pop("instrumentationLibrarySpans", None) if isinstance(resource, dict) else None
        if legacy:
            resource.setdefault("scopeSpans", []).extend(legacy)
    try:
        json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        if "surrogate" not in str(exc):
            raise BodyError(f"JSON body is not an OTLP trace export: {exc}") from None
        # A lone surrogate (\ud83d with no partner: a stream cut mid-emoji) costs a
        # character, not the request: it becomes U+FFFD, counted on the request.
        request.Clear()
        document, repaired = _repaired(document)
        try:
            json_format.ParseDict(document, request, ignore_unknown_fields=True)
        except json_format.ParseError as exc2:
            raise BodyError(f"JSON body is not an OTLP trace export: {exc2}") from None
        if counts is not None:
            counts["repaired_text"] = counts.get("repaired_text", 0) + repaired
    except RecursionError:
        raise BodyError("JSON body is nested too deeply") from None
    return request


def _repaired(value: Any) -> tuple[Any, int]:
    from ppp_otel.textrepair import repair_text

    if isinstance(value, str):
        return repair_text(value)
    if isinstance(value, dict):
        total, out = 0, {}
        for k, v in value.items():
            out[k], n = _repaired(v)
            total += n
        return out, total
    if isinstance(value, list):
        items = [_repaired(v) for v in value]
        return [v for v, _ in items], sum(n for _, n in items)
    return value, 0


def any_value(value: AnyValue) -> Any:
    """An OTLP attribute value as the Python value the SDK would have held."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return key_values(value.kvlist_value.values)
    if which == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, which)


def key_values(pairs: Sequence[KeyValue]) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in pairs}


@dataclass(slots=True)
class OtlpSpan:
    """The parts of an OTLP span that recording needs, ids as lowercase hex."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    attributes: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]]
    start_ns: int | None
    end_ns: int | None
    resource: Mapping[str, Any]
    scope: str | None = None  # the instrumentation scope's name: which instrumentation made it


def spans(request: ExportTraceServiceRequest) -> Iterator[OtlpSpan | str]:
    """Each span of the request, or a reason string for a span that cannot be used."""
    for resource_spans in request.resource_spans:
        resource = key_values(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope.name or None
            for span in scope_spans.spans:
                if len(span.trace_id) != 16 or not any(span.trace_id):
                    yield f"span {span.name!r}: trace id must be 16 non-zero bytes, got {len(span.trace_id)} bytes"
                    continue
                if len(span.span_id) != 8 or not any(span.span_id):
                    yield f"span {span.name!r}: span id must be 8 non-zero bytes, got {len(span.span_id)} bytes"
                    continue
                parent = span.parent_span_id
                if parent and len(parent) != 8:
                    yield f"span {span.name!r}: parent span id must be 8 bytes, got {len(parent)} bytes"
                    continue
                yield OtlpSpan(
                    trace_id=span.trace_id.hex(),
                    span_id=span.span_id.hex(),
                    parent_span_id=parent.hex() if parent and any(parent) else None,
                    name=span.name,
                    attributes=key_values(span.attributes),
                    events=[(e.name, key_values(e.attributes)) for e in span.events],
                    start_ns=span.start_time_unix_nano or None,
                    end_ns=span.end_time_unix_nano or None,
                    resource=resource,
                    scope=scope,
                )


# --- writing ----------------------------------------------------------------

def to_any_value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, str):
        return AnyValue(string_value=value)
    if isinstance(value, (list, tuple)):
        result = AnyValue()
        result.array_value.values.extend(to_any_value(v) for v in value)
        return result
    if isinstance(value, Mapping):
        result = AnyValue()
        result.kvlist_value.values.extend(to_key_values(value))
        return result
    return AnyValue(string_value=str(value))


def to_key_values(attributes: Mapping[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=k, value=to_any_value(v)) for k, v in attributes.items() if v is not None]


def request_to_json(request: ExportTraceServiceRequest) -> bytes:
    """OTLP JSON (hex ids) for a request, as another language's exporter would send it."""
    document = json_format.MessageToDict(request)
    for obj, _ in _spans_in_json(document):
        for key in ("traceId", "spanId", "parentSpanId"):
            if key in obj:
                obj[key] = base64.b64decode(obj[key]).hex()
    return json.dumps(document).encode()


def response_body(rejected: int, message: str | None, media: str) -> bytes:
    response = ExportTraceServiceResponse()
    if rejected:
        response.partial_success.CopyFrom(ExportTracePartialSuccess(rejected_spans=rejected, error_message=message or ""))
    if media == JSON:
        return json.dumps(json_format.MessageToDict(response)).encode()
    return response.SerializeToString()


def status_body(code: int, message: str, media: str | None) -> tuple[bytes, str]:
    """An error body as the OTLP spec asks (``google.rpc.Status``), in the request's encoding."""
    from google.rpc.status_pb2 import Status

    status = Status(code=code, message=message)
    if media == PROTOBUF:
        return status.SerializeToString(), PROTOBUF
    return json.dumps(json_format.MessageToDict(status)).encode(), JSON


__all__ = [
    "BodyError", "BodyTooLarge", "JSON", "OtlpSpan", "PROTOBUF", "TRACES_PATH", "UnsupportedMediaType",
    "any_value", "decompress", "key_values", "media_type", "parse_request", "request_to_json",
    "response_body", "spans", "status_body", "to_any_value", "to_key_values",
]
