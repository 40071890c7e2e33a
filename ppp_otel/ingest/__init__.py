"""OTLP into the store: the wire format, the assembler that places spans in trajectories, the receiver."""
