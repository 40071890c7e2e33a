"""Where ``ppp-otel ingest`` listens and how large a body it takes, unless told otherwise.

Apart from :mod:`ppp_otel.ingest.server` so that the command line can show them
in its help without loading the server (uvicorn, grpcio, the recorder).
"""

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4318  # the OTLP/HTTP port, so exporters' defaults point here
DEFAULT_GRPC_PORT = 4317  # the OTLP/gRPC port
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
