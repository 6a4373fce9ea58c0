"""Read a table (CSV/TSV, Parquet, JSON Lines; compressed; or stdin) and validate it for a fit.

Everything the user can get wrong about their input is checked here, so solvers only ever
see finite float64 arrays.  pyarrow does the parsing: it rounds decimals correctly and is the
fastest reader that also streams, so pandas is never imported on the command path.
"""

from mlfit.data.selection import Selection, resolve_columns, unknown_column_message
from mlfit.data.sources import Dialect
from mlfit.data.stream import (
    AUTO_CHUNK_BYTES,
    DEFAULT_CHUNK_ROWS,
    MAX_CHUNK_BYTES,
    STREAM_BLOCK_BYTES,
    ChunkStream,
    should_stream,
)
from mlfit.data.validate import Dataset, is_number, load_dataset

__all__ = [
    "AUTO_CHUNK_BYTES",
    "DEFAULT_CHUNK_ROWS",
    "MAX_CHUNK_BYTES",
    "STREAM_BLOCK_BYTES",
    "ChunkStream",
    "Dataset",
    "Dialect",
    "Selection",
    "is_number",
    "load_dataset",
    "resolve_columns",
    "should_stream",
    "unknown_column_message",
]
