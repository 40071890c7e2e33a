"""Recording: a bounded queue and one writer thread between producers and the store.

- :mod:`~ppp_otel.recorder.engine`: the queue engine (batches, flush and shutdown, fork).
- :mod:`~ppp_otel.recorder.sink`: what a batch becomes (conversion, analysis, the write).
- :mod:`~ppp_otel.recorder.stats`: the counters.
- :mod:`~ppp_otel.recorder.recorder`: :class:`Recorder`, the two put together.
"""

from ppp_otel.recorder.recorder import Recorder

__all__ = ["Recorder"]
