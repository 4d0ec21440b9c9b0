"""CSV ingest core: read, normalise and validate lead files, pure Python.

No database, no Dagster: :func:`read_chunks` streams a file into
:class:`Chunk` objects (accepted rows in :data:`STANDARD_COLUMNS`, rejected rows
with reasons); :func:`write_csv_safely` writes them back out without formula
injection.
"""

from outreach_core.ingest.columns import STANDARD_COLUMNS, ColumnMapping
from outreach_core.ingest.csv_export import neutralise_formula, write_csv_safely
from outreach_core.ingest.encoding import SourceEncoding
from outreach_core.ingest.errors import IngestError
from outreach_core.ingest.reader import Chunk, CsvLayout, inspect_csv, read_chunks

__all__ = [
    "STANDARD_COLUMNS",
    "Chunk",
    "ColumnMapping",
    "CsvLayout",
    "IngestError",
    "SourceEncoding",
    "inspect_csv",
    "neutralise_formula",
    "read_chunks",
    "write_csv_safely",
]
