"""What leaves ppp-otel for other systems: the consensus span, Phoenix annotations, OTLP replay."""
