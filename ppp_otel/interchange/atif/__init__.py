"""ATIF (Agent Trajectory Interchange Format, Harbor RFC 0001) in and out.

    from ppp_otel.interchange.atif import import_paths, export_atif

    summary = import_paths(["runs/"], "runs.db")     # any ATIF-v1.x
    paths = export_atif("runs.db", "out/")           # ATIF-v1.7, PPP scores in extra.ppp

docs/atif.md maps ATIF fields to the trajectory schema and documents ``extra.ppp``.
"""

from ppp_otel.interchange.atif.document import EXPORT_VERSION, AtifError, read_file, validate
from ppp_otel.interchange.atif.exporter import export_atif, trajectory_document
from ppp_otel.interchange.atif.importer import ImportSummary, import_paths

__all__ = [
    "EXPORT_VERSION",
    "AtifError",
    "ImportSummary",
    "export_atif",
    "import_paths",
    "read_file",
    "trajectory_document",
    "validate",
]
