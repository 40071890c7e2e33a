"""collector/otel-collector.yaml and docker-compose.yml agree with each other and with the code.

No Docker engine or collector binary runs here, so the files are read as data:
the ports, service names, endpoints and the ingest command line must be the
ones the other file and ppp-otel's own defaults expect.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from urllib.parse import urlsplit

import pytest

yaml = pytest.importorskip("yaml")

from ppp_otel.cli import build_parser  # noqa: E402
from ppp_otel.config.settings import PhoenixConfig  # noqa: E402
from ppp_otel.ingest.server import DEFAULT_PORT  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
COLLECTOR_FILE = ROOT / "collector" / "otel-collector.yaml"
COMPOSE_FILE = ROOT / "docker-compose.yml"
PHOENIX_PORT = urlsplit(PhoenixConfig().endpoint).port


@pytest.fixture(scope="module")
def collector() -> dict:
    return yaml.safe_load(COLLECTOR_FILE.read_text())


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def test_every_compose_image_names_its_version(compose):
    images = {name: service["image"] for name, service in compose["services"].items() if "image" in service}
    unpinned = {name: image for name, image in images.items()
                if ":" not in image.rsplit("/", 1)[-1] or image.endswith((":latest", ":main"))}
    assert images and not unpinned, f"images without a version: {unpinned}"

@pytest.fixture(scope="module")
def traces(collector) -> dict:
    return collector["service"]["pipelines"]["traces"]


def port_of(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1])


def published(service: dict) -> dict[int, int]:
    """container port -> host port."""
    ports = {}
    for entry in service.get("ports", []):
        host, container = str(entry).split(":")[-2:]
        ports[int(container)] = int(host)
    return ports


def ingest_command(compose) -> list[str]:
    script = compose["services"]["ppp-ingest"]["command"][-1]
    words = shlex.split(script)
    start = words.index("ppp-otel")
    return words[start + 1:]


# --- the collector -----------------------------------------------------------------

def test_the_collector_receives_otlp_over_grpc_on_4317_and_http_on_4318(collector):
    protocols = collector["receivers"]["otlp"]["protocols"]
    assert port_of(protocols["grpc"]["endpoint"]) == 4317
    assert port_of(protocols["http"]["endpoint"]) == 4318


def test_the_traces_pipeline_limits_memory_first_then_batches(traces):
    assert traces["receivers"] == ["otlp"]
    assert traces["processors"] == ["memory_limiter", "batch"]


def test_the_traces_pipeline_fans_out_to_phoenix_and_to_ppp_ingest(traces):
    assert sorted(traces["exporters"]) == ["otlphttp/phoenix", "otlphttp/ppp"]


def test_every_component_the_pipeline_names_is_defined_and_every_defined_one_is_used(collector, traces):
    for section in ("receivers", "processors", "exporters"):
        assert set(traces[section]) == set(collector[section]), section
    assert set(collector["service"].get("extensions", [])) == set(collector.get("extensions", {}))


def test_the_memory_limiter_leaves_room_for_spikes(collector):
    limiter = collector["processors"]["memory_limiter"]
    assert 0 < limiter["spike_limit_mib"] < limiter["limit_mib"]


# --- the collector against compose and the code --------------------------------------

def test_the_phoenix_exporter_targets_the_phoenix_service_on_the_port_ppp_otel_defaults_to(collector, compose):
    endpoint = urlsplit(collector["exporters"]["otlphttp/phoenix"]["endpoint"])
    assert endpoint.hostname == "phoenix" and "phoenix" in compose["services"]
    assert endpoint.port == PHOENIX_PORT == 6006
    assert published(compose["services"]["phoenix"])[PHOENIX_PORT] == PHOENIX_PORT


def test_the_ppp_exporter_targets_the_ingest_service_on_the_port_it_listens_on(collector, compose):
    endpoint = urlsplit(collector["exporters"]["otlphttp/ppp"]["endpoint"])
    assert endpoint.hostname == "ppp-ingest" and "ppp-ingest" in compose["services"]
    args = build_parser().parse_args(ingest_command(compose))
    assert endpoint.port == args.port == DEFAULT_PORT
    assert str(DEFAULT_PORT) in [str(p) for p in compose["services"]["ppp-ingest"]["expose"]]


def test_the_exporters_post_otlp_over_http_so_ingest_gets_its_traces_path(collector):
    for name in ("otlphttp/phoenix", "otlphttp/ppp"):
        assert urlsplit(collector["exporters"][name]["endpoint"]).path in ("", "/")  # /v1/traces is appended


def test_the_collector_and_ingest_share_the_optional_token(collector, compose):
    header = collector["exporters"]["otlphttp/ppp"]["headers"]["Authorization"]
    assert "${env:PPP_OTEL_INGEST_TOKEN}" in header
    for service in ("otel-collector", "ppp-ingest"):
        assert "PPP_OTEL_INGEST_TOKEN" in compose["services"][service]["environment"]


# --- compose --------------------------------------------------------------------------

def test_compose_runs_phoenix_the_collector_and_ingest_from_the_expected_images(compose):
    services = compose["services"]
    assert services["phoenix"]["image"].startswith("arizephoenix/phoenix")
    assert services["otel-collector"]["image"].startswith("otel/opentelemetry-collector-contrib")


def test_the_collector_container_reads_the_mounted_collector_config(compose):
    service = compose["services"]["otel-collector"]
    mounts = {m.split(":")[1]: m.split(":")[0] for m in service["volumes"]}
    config_flag = next(a for a in service["command"] if a.startswith("--config="))
    in_container = config_flag.split("=", 1)[1]
    assert (ROOT / mounts[in_container]).resolve() == COLLECTOR_FILE


def test_the_collector_publishes_the_otlp_ports_agents_send_to(compose):
    assert published(compose["services"]["otel-collector"]) == {4317: 4317, 4318: 4318}


def test_the_collector_starts_after_what_it_exports_to(compose):
    assert set(compose["services"]["otel-collector"]["depends_on"]) == {"phoenix", "ppp-ingest"}


def test_ingest_listens_on_all_interfaces_inside_its_container(compose):
    args = build_parser().parse_args(ingest_command(compose))
    assert args.func.__name__ == "ingest" and args.host == "0.0.0.0"


def test_the_ingest_database_lives_on_a_named_volume(compose):
    args = build_parser().parse_args(ingest_command(compose))
    mounts = dict(m.split(":")[:2][::-1] for m in compose["services"]["ppp-ingest"]["volumes"])
    directory = str(Path(args.db).parent)
    assert mounts[directory] in compose["volumes"]


def test_the_ingest_service_mounts_what_pip_needs_to_install_the_package(compose):
    sources = [m.split(":")[0] for m in compose["services"]["ppp-ingest"]["volumes"]]
    for needed in ("./pyproject.toml", "./README.md", "./ppp_otel"):
        assert needed in sources and (ROOT / needed).exists()


def test_ingest_is_started_with_exec_so_it_gets_sigterm_and_flushes(compose):
    assert "exec ppp-otel ingest" in compose["services"]["ppp-ingest"]["command"][-1]


# --- PostgreSQL and ingest replicas behind a load-balancing collector --------------------

REPLICAS_COLLECTOR_FILE = ROOT / "collector" / "otel-collector-replicas.yaml"


@pytest.fixture(scope="module")
def replicas_collector() -> dict:
    return yaml.safe_load(REPLICAS_COLLECTOR_FILE.read_text())


def replica_command(compose) -> list[str]:
    words = shlex.split(compose["services"]["ppp-ingest-replica"]["command"][-1])
    return words[words.index("ppp-otel") + 1:]


def test_the_replicas_stack_is_a_compose_profile_beside_the_sqlite_one(compose):
    services = compose["services"]
    for name in ("postgres", "ppp-ingest-replica", "otel-collector-replicas"):
        assert services[name]["profiles"] == ["replicas"], name
    for name in ("phoenix", "otel-collector", "ppp-ingest"):
        assert "profiles" not in services[name], name


def test_the_replicas_collector_load_balances_by_trace_id_over_grpc(replicas_collector):
    traces = replicas_collector["service"]["pipelines"]["traces"]
    assert sorted(traces["exporters"]) == ["loadbalancing/ppp", "otlphttp/phoenix"]
    for section in ("receivers", "processors", "exporters"):
        assert set(traces[section]) == set(replicas_collector[section]), section
    balancer = replicas_collector["exporters"]["loadbalancing/ppp"]
    assert balancer["routing_key"] == "traceID"
    assert list(balancer["protocol"]) == ["otlp"]  # OTLP/gRPC: the only protocol the exporter speaks
    assert "endpoint" not in balancer["protocol"]["otlp"]  # the resolver gives each replica's


def test_the_balancer_resolves_the_scaled_ingest_service_on_its_grpc_port(replicas_collector, compose):
    dns = replicas_collector["exporters"]["loadbalancing/ppp"]["resolver"]["dns"]
    replica = compose["services"]["ppp-ingest-replica"]
    assert dns["hostname"] == "ppp-ingest-replica"
    args = build_parser().parse_args(replica_command(compose))
    assert args.func.__name__ == "ingest" and args.host == "0.0.0.0"
    assert dns["port"] == args.grpc_port == 4317
    assert str(args.grpc_port) in [str(p) for p in replica["expose"]]
    assert replica["deploy"]["replicas"] >= 2


def test_the_replicas_write_the_postgres_service_database(compose):
    replica = compose["services"]["ppp-ingest-replica"]
    postgres = compose["services"]["postgres"]
    url = urlsplit(replica["environment"]["PPP_OTEL_DB"])
    assert url.scheme == "postgresql" and url.hostname == "postgres" and url.port == 5432
    assert url.username == postgres["environment"]["POSTGRES_USER"]
    assert url.path.lstrip("/") == postgres["environment"]["POSTGRES_DB"]
    assert url.password is None  # in PGPASSWORD, which libpq reads, so it needs no URL-encoding
    assert replica["environment"]["PGPASSWORD"] == postgres["environment"]["POSTGRES_PASSWORD"]
    assert "--db" not in replica_command(compose)  # PPP_OTEL_DB names it
    assert replica["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert any(m.endswith(":/var/lib/postgresql/data") and m.split(":")[0] in compose["volumes"]
               for m in postgres["volumes"])


def test_the_replicas_install_the_postgres_extra_the_project_declares(compose):
    script = compose["services"]["ppp-ingest-replica"]["command"][-1]
    assert "[postgres]" in script and "exec ppp-otel ingest" in script
    project = (ROOT / "pyproject.toml").read_text()
    assert "postgres = [" in project and "psycopg" in project


def test_the_replicas_collector_is_mounted_and_shares_the_token(compose, replicas_collector):
    service = compose["services"]["otel-collector-replicas"]
    mounts = {m.split(":")[1]: m.split(":")[0] for m in service["volumes"]}
    in_container = next(a for a in service["command"] if a.startswith("--config=")).split("=", 1)[1]
    assert (ROOT / mounts[in_container]).resolve() == REPLICAS_COLLECTOR_FILE
    assert published(service) == {4317: 4317, 4318: 4318}
    assert set(service["depends_on"]) == {"phoenix", "ppp-ingest-replica"}
    header = replicas_collector["exporters"]["loadbalancing/ppp"]["protocol"]["otlp"]["headers"]["authorization"]
    assert "${env:PPP_OTEL_INGEST_TOKEN}" in header
    for name in ("otel-collector-replicas", "ppp-ingest-replica"):
        assert "PPP_OTEL_INGEST_TOKEN" in compose["services"][name]["environment"]


def test_the_balancer_queues_and_retries_so_a_batch_a_dead_replica_did_not_take_is_routed_again(replicas_collector):
    balancer = replicas_collector["exporters"]["loadbalancing/ppp"]
    assert balancer["retry_on_failure"]["enabled"] and balancer["sending_queue"]["enabled"]
    # A per-replica queue would only retry the dead replica, and be lost with its exporter.
    per_replica = balancer["protocol"]["otlp"]
    assert per_replica["retry_on_failure"]["enabled"] is False
    assert per_replica["sending_queue"]["enabled"] is False


def test_the_exporters_to_ingest_wait_longer_than_ingest_takes_to_answer(collector, replicas_collector):
    from ppp_otel.ingest.receiver import DEFAULT_COMMIT_TIMEOUT_S

    for timeout in (collector["exporters"]["otlphttp/ppp"]["timeout"],
                    replicas_collector["exporters"]["loadbalancing/ppp"]["protocol"]["otlp"]["timeout"]):
        assert timeout.endswith("s") and float(timeout[:-1]) > DEFAULT_COMMIT_TIMEOUT_S
