"""``python -m ppp_otel``: the ``ppp-otel`` command."""

from ppp_otel.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
