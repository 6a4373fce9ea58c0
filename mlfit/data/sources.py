"""Open a path or stdin, decompressed, and tell its format from the name or the bytes."""

from __future__ import annotations

import io
import lzma
import os
import stat
import sys
from dataclasses import dataclass

import pyarrow as pa

from mlfit.errors import DataError, UsageError

_MAGIC = {b"\x1f\x8b": "gzip", b"BZh": "bz2", b"\xfd7zXZ\x00": "xz", b"\x28\xb5\x2f\xfd": "zstd"}
_COMPRESSION_EXT = (".gz", ".bz2", ".xz", ".zst", ".zstd")
_FORMAT_EXT = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}


@dataclass(frozen=True)
class Dialect:
    """How a CSV/TSV file's text is split and read: --delimiter and --decimal."""

    delimiter: str | None = None  # None: a comma, or a tab for .tsv files
    decimal: str = "."

    def separator(self, fmt: str) -> str:
        """The field separator for a file of format fmt (csv or tsv)."""
        sep = self.delimiter or ("\t" if fmt == "tsv" else ",")
        if sep == self.decimal:
            raise UsageError(
                f"--decimal {self.decimal} needs another field separator than '{sep}': add "
                "--delimiter ';' (or the file's separator)."
            )
        return sep


class _Source:
    """A path or '-' that can be opened (decompressed) any number of times."""

    def __init__(self, path: str, dialect: Dialect = Dialect()):
        self.path = path
        self.dialect = dialect
        self.name = "<stdin>" if path == "-" else path
        self._bytes: bytes | None = None
        if path == "-":
            self._bytes = sys.stdin.buffer.read()
            if not self._bytes:
                raise DataError(
                    "Standard input is empty: pipe a table into mlfit or give a file path."
                )
            self.size = len(self._bytes)
        else:
            if not os.path.exists(path):
                raise DataError(f"File '{path}' not found.")
            if os.path.isdir(path):
                raise DataError(f"'{path}' is a directory; give a data file.")
            try:
                if stat.S_ISREG(os.stat(path).st_mode):
                    self.size = os.path.getsize(path)
                    with open(path, "rb"):
                        pass
                else:  # a FIFO or <(process substitution): it can be read only once
                    with open(path, "rb") as f:
                        self._bytes = f.read()
                    self.size = len(self._bytes)
            except OSError as exc:
                raise DataError(f"Cannot read '{path}': {exc.strerror}.") from None
            if self.size == 0:
                raise DataError(f"File '{path}' is empty: it needs a header row and data rows.")
        self.compression = self._detect_compression()
        self._check_encoding()
        self.fmt = self._detect_format()
        if self.fmt != "parquet":
            self._check_text()

    def _check_text(self) -> None:
        """Binary data (a NUL byte in the first 64 KiB) is not a text table to parse.  (Text
        that is not UTF-8 is explained where it is found, naming the column and row.)"""
        try:
            with self.open() as stream:
                head = stream.read(65536)
        except (OSError, EOFError, lzma.LZMAError, pa.ArrowInvalid):
            return  # a damaged compressed stream: the parser explains it
        bad = head.find(b"\x00")
        if bad >= 0:
            raise DataError(
                f"{self.name} does not look like a text table (byte {bad + 1} is a NUL byte). "
                "Give a CSV, TSV, JSON Lines or Parquet file."
            )

    def _check_encoding(self) -> None:
        """UTF-16 and UTF-32 text would parse as one garbled column: say so instead."""
        head = self._head(4)
        if self.compression is None and head[:2] in (b"\xff\xfe", b"\xfe\xff"):
            kind = "UTF-32" if head in (b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff") else "UTF-16"
            raise DataError(
                f"{self.name} is {kind} text; mlfit reads UTF-8. Save it as UTF-8, e.g. "
                f"iconv -f {kind} -t utf-8 FILE > NEW.csv."
            )

    @property
    def in_memory(self) -> bool:
        """Whether the bytes were read once (stdin, a FIFO) rather than opened by path."""
        return self._bytes is not None

    def _head(self, n: int = 8) -> bytes:
        if self._bytes is not None:
            return self._bytes[:n]
        with open(self.path, "rb") as f:
            return f.read(n)

    def _detect_compression(self) -> str | None:
        head = self._head()
        for magic, kind in _MAGIC.items():
            if head.startswith(magic):
                return kind
        return None

    def _detect_format(self) -> str:
        base = self.path.lower()
        for ext in _COMPRESSION_EXT:
            base = base.removesuffix(ext)
        for ext, fmt in _FORMAT_EXT.items():
            if base.endswith(ext):
                return fmt
        with self.open() as stream:
            head = stream.read(65536)
        if head.startswith(b"PAR1"):
            return "parquet"
        if head.lstrip()[:1] == b"{":
            return "jsonl"
        first = head.split(b"\n", 1)[0]
        return "tsv" if first.count(b"\t") > first.count(b",") else "csv"

    def open(self) -> pa.NativeFile:
        """A readable, decompressed stream of the file's bytes."""
        raw = (
            pa.BufferReader(self._bytes) if self._bytes is not None else pa.OSFile(self.path, "rb")
        )
        if self.compression is None:
            return raw
        if self.compression == "xz":
            return pa.PythonFile(lzma.open(_NativeAsPython(raw)), mode="r")
        return pa.CompressedInputStream(raw, self.compression)


def _read_all(stream: pa.NativeFile) -> bytes:
    """All remaining bytes; read() without a size needs seeking, which the xz stream lacks."""
    return b"".join(iter(lambda: stream.read(1 << 20), b""))


class _NativeAsPython(io.RawIOBase):
    """Let Python's lzma read from a pyarrow stream (pyarrow has no xz codec)."""

    def __init__(self, native: pa.NativeFile):
        self._native = native

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        data = self._native.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._native.close()
        super().close()


def _csv_options(src: _Source, column_types=None, include=None, block_size=None):
    import pyarrow.csv as pcsv

    read = pcsv.ReadOptions(block_size=block_size) if block_size else pcsv.ReadOptions()
    parse = pcsv.ParseOptions(delimiter=src.dialect.separator(src.fmt))
    convert = pcsv.ConvertOptions(
        column_types=column_types or {},
        include_columns=include or [],
        strings_can_be_null=True,
        decimal_point=src.dialect.decimal,
    )
    return read, parse, convert
