"""The import pattern every module reuses: stream a CSV (UTF-8, UTF-8 with BOM, GBK, GB18030) or XLSX
file row by row, map Chinese or English headers, collect one error report per run, and summarise.

Files from partner departments are large and often GBK; they are never read whole into memory, and a bad
row costs one line in the error report, never the rows already accepted.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from operator import itemgetter
from pathlib import Path
from typing import Any

from charset_normalizer import from_bytes

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_REJECTED = 3
SAMPLE_BYTES = 256 * 1024


class FileUnusable(Exception):
    """The file as a whole cannot be read (wrong format, undecodable, missing required columns)."""


@dataclass(frozen=True)
class Column:
    key: str
    aliases: tuple[str, ...]
    required: bool = False


@dataclass
class RowError:
    line: int
    column: str
    value: str
    reason: str


@dataclass
class ImportSummary:
    accepted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    errors: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return EXIT_REJECTED if self.rejected else EXIT_OK

    def as_json(self) -> str:
        data = {
            "accepted": self.accepted,
            "rejected": self.rejected,
            "unchanged": self.unchanged,
            "updated": self.updated,
            "errors": self.errors,
        }
        data.update(self.extra)
        return json.dumps(data, ensure_ascii=False)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _norm_header(text: str) -> str:
    text = str(text or "").replace("\ufeff", "").strip()
    text = text.replace("（", "(").replace("）", ")").replace("*", "").replace("＊", "")
    text = re.sub(r"\s+", "", text)
    return text.lower()


def detect_encoding(sample: bytes) -> str:
    """UTF-8 (with or without BOM) when the bytes decode as such; otherwise the GB family read as GB18030,
    its superset, because that is what Chinese Excel writes; anything else is refused rather than guessed."""
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        codecs.getincrementaldecoder("gb18030")().decode(sample, final=False)
        return "gb18030"
    except UnicodeDecodeError:
        pass
    best = from_bytes(sample).best()
    if best is None:
        raise FileUnusable("cannot tell the text encoding: expected UTF-8, GBK or GB18030")
    return best.encoding


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, datetime):
        if value.time() == datetime.min.time():
            return value.date().isoformat()
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value).strip()


class TabularFile:
    """Rows of a CSV or XLSX file as dicts keyed by column key, each with its 1-based line number
    (the header is line 1, as a user sees it in Excel)."""

    def __init__(self, path: str | Path, columns: list[Column]) -> None:
        self.path = Path(path)
        self.columns = columns
        if not self.path.exists():
            raise FileUnusable(f"{self.path}: no such file")
        if self.path.stat().st_size == 0:
            raise FileUnusable(f"{self.path}: the file is empty")
        with self.path.open("rb") as fh:
            head = fh.read(SAMPLE_BYTES)
        self.is_xlsx = head[:4] == b"PK\x03\x04"
        self.encoding = None if self.is_xlsx else detect_encoding(head)
        self.mapping: dict[int, str] = {}
        self.unknown_headers: list[str] = []

    def _map_header(self, header: list[str]) -> None:
        lookup: dict[str, str] = {}
        for col in self.columns:
            lookup[_norm_header(col.key)] = col.key
            for alias in col.aliases:
                lookup[_norm_header(alias)] = col.key
        seen: set[str] = set()
        for i, raw in enumerate(header):
            key = lookup.get(_norm_header(raw))
            if key is None:
                if str(raw).strip():
                    self.unknown_headers.append(str(raw))
                continue
            if key in seen:
                raise FileUnusable(f"column {raw!r} appears twice in the header")
            seen.add(key)
            self.mapping[i] = key
        missing = [c for c in self.columns if c.required and c.key not in seen]
        if missing:
            names = ", ".join(f"{c.aliases[0] if c.aliases else c.key}/{c.key}" for c in missing)
            raise FileUnusable(f"required column missing from the header: {names}")

    def _raw_rows(self) -> Iterator[list[Any]]:
        if self.is_xlsx:
            from python_calamine import CalamineWorkbook

            try:
                sheet = CalamineWorkbook.from_path(str(self.path)).get_sheet_by_index(0)
            except Exception as exc:  # calamine raises its own error types per format problem
                raise FileUnusable(f"cannot read the workbook: {exc}") from exc
            yield from sheet.iter_rows()
            return
        with self.path.open("r", encoding=self.encoding, newline="") as fh:
            reader = csv.reader(fh)
            try:
                yield from reader
            except UnicodeDecodeError as exc:
                # line_num counts the physical lines read so far, i.e. the last one that decoded.
                raise FileUnusable(
                    f"undecodable bytes after line {reader.line_num} ({exc.reason}); save the file as UTF-8 or GBK"
                ) from exc

    def _body(self) -> tuple[Iterator[list[Any]], Any]:
        """The rows after the header (mapped), and the function that cleans one cell."""
        it = self._raw_rows()
        header = next(it, None)
        while header is not None and not any(_cell(v) for v in header):
            header = next(it, None)
        if header is None:
            raise FileUnusable("the file has no header row")
        self._map_header([_cell(v) for v in header])
        # csv.reader yields str cells, for which _cell is a strip: call it directly on the hot path.
        return it, _cell if self.is_xlsx else str.strip

    def rows(self) -> Iterator[tuple[int, dict[str, str]]]:
        """Rows as dicts of the columns the file has."""
        keys: list[str] | None = None
        for line, values in self.records(None):
            if keys is None:
                keys = list(self.mapping.values())  # known once the header has been read
            yield line, dict(zip(keys, values, strict=True))

    def records(self, keys: Sequence[str] | None, *, strip: bool = True) -> Iterator[tuple[int, tuple[str, ...]]]:
        """Rows as tuples in the order of ``keys`` (a column the file lacks reads as ""; None: the columns the
        file has, in its order), skipping blank rows, with line numbers as a user sees them in Excel: the hot
        path of imports that run to millions of rows, without building a dict per row.

        ``strip=False`` hands a CSV's cells over as they are (a workbook's are always converted and stripped),
        for a caller whose checks trim what they use: stripping every cell costs a loader of a million lines
        more than a second, most of it on cells that have nothing to strip."""
        it, cell = self._body()
        index = {key: i for i, key in self.mapping.items()}
        keys = list(index) if keys is None else keys
        width = max(self.mapping) + 1 if self.mapping else 0
        positions = [index.get(k, -1) for k in keys]  # -1: the empty cell appended to every row
        get = itemgetter(*positions) if positions else (lambda values: ())
        pad = [""] * (width + 1)
        single = len(keys) == 1
        line = 1
        if not strip and not self.is_xlsx:
            join = "".join
            for values in it:  # csv.reader's own fresh list per row
                line += 1
                if not join(values).strip():
                    continue
                if len(values) < width:
                    values.extend(pad[len(values) : width])
                values.append("")
                yield line, ((get(values),) if single else get(values))
            return
        for raw in it:
            line += 1
            values = list(map(cell, raw))
            if not any(values):
                continue
            if len(values) < width:
                values.extend(pad[len(values) : width])
            values.append("")
            yield line, ((get(values),) if single else get(values))


class ErrorReport:
    """line, column, value, reason — UTF-8 with BOM so that Excel shows the Chinese correctly."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path else None
        self.count = 0
        self._fh: io.TextIOWrapper | None = None
        self._writer: Any = None

    def add(self, err: RowError) -> None:
        self.count += 1
        if self.path is None:
            return
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("w", encoding="utf-8-sig", newline="")
            self._writer = csv.writer(self._fh)
            self._writer.writerow(["line", "column", "value", "reason"])
        self._writer.writerow([err.line, err.column, err.value, err.reason])

    def close(self) -> str | None:
        if self._fh is not None:
            self._fh.close()
        if self.path is not None and self.count == 0:
            # An empty report still tells the user "no errors" when they asked for one.
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("w", encoding="utf-8-sig", newline="") as fh:
                csv.writer(fh).writerow(["line", "column", "value", "reason"])
        return str(self.path) if self.path else None
