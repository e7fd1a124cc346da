"""How a CSV file is written, found before pandas reads it: compression, text encoding, separator, Excel's
``sep=`` line, and files that are not CSV text at all (a workbook, Parquet, JSON)."""
from __future__ import annotations

import bz2
import codecs
import csv
import gzip
import io
import lzma
import re
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any


from search.errors import DataError

SEPARATORS = {";": "semicolons", "\t": "tabs", "|": "bars"}
_COMPRESSED = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
# What a file's first bytes say it is, when it is not text; and what to do instead.
_NOT_TEXT = [(b"PAR1", "a Parquet file", "pandas.read_parquet(path).to_csv(csv_path, index=False)"),
             (b"\xd0\xcf\x11\xe0", "an Excel workbook (.xls)", "save the sheet as 'CSV UTF-8' in Excel"),
             (b"\x89HDF", "an HDF5 file", "write the table with DataFrame.to_csv"),
             *((b"\x80" + bytes([v]), "a Python pickle", "write the table with DataFrame.to_csv") for v in range(2, 6)),
             (b"\x93NUMPY", "a NumPy .npy array", "save X and y together with np.savez and use npz:<path>"),
             # Compressed under a plain name: pandas unpacks by the name's ending only, else reads the bytes as text.
             (b"\x1f\x8b", "gzip-compressed data", "name it .csv.gz (it is then unpacked as it is read), or gunzip it"),
             (b"\xfd7zXZ\x00", "xz-compressed data", "name it .csv.xz (it is then unpacked as it is read)"),
             (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive", "unpack it and name the CSV file inside"),
             (b"%PDF", "a PDF document", "export the table as CSV from the program that made it")]


@dataclass
class Layout:
    """What pandas needs to read the file as written; ``notes`` say what was not plain UTF-8 with commas."""

    encoding: str
    sep: str = ","
    skip: int = 0  # Excel's "sep=;" first line
    empty: list[int] = field(default_factory=list)  # lines of separators only, counted from 0
    notes: list[str] = field(default_factory=list)
    trailing: bool = False  # every data line ends with a separator the header does not (one_field_too_many)
    short: dict[int, tuple[int, int, int]] = field(default_factory=dict)  # short_lines(), once read
    _texts: Any = field(default=None, repr=False)  # texts(): the cells as written, once read

    def skip_empty_lines(self, path: Path) -> bool:
        """Find lines such as ``,,,,`` after the header, rows without a single value, to skip when read:
        as rows they turn every column into floats with gaps (labels 0 and 1 into 0.0 and 1.0) and stop the
        data as missing. Only called where the frame has such a row, so other files are read once."""
        with io.TextIOWrapper(open_bytes(path), encoding=self.encoding, errors="replace", newline="") as text:
            self.empty = [number for number, line in enumerate(text) if number > self.skip and self.sep in line
                          and not line.replace(self.sep, "").replace('"', "").strip()]
        if self.empty:
            shown = ", ".join(str(n + 1) for n in self.empty[:5]) + (", ..." if len(self.empty) > 5 else "")
            self.notes.append(f"{path}: {len(self.empty)} line(s) of empty cells "
                              f"({'line' if len(self.empty) == 1 else 'lines'} {shown}; a spreadsheet leaves them "
                              f"below its table) left out")
        return bool(self.empty)

    def short_lines(self, path: Path, fields: int) -> dict[int, tuple[int, int, int]]:
        """The data rows whose line holds fewer fields than the header (pandas reads the missing ones as
        empty): row (counted from 0) → (line, its fields, the header's). A line cut short, or Excel's export of
        a sheet whose last columns are empty in some rows; pandas' own rows, so blank lines and
        :meth:`skip_empty_lines` are left out."""
        import csv

        short: dict[int, tuple[int, int, int]] = {}
        with io.TextIOWrapper(open_bytes(path), encoding=self.encoding, errors="replace", newline="") as text:
            reader = csv.reader(text, delimiter=self.sep)
            row, line = -1, 0  # -1: the header is next
            for record in reader:
                first, line = line, reader.line_num
                if first < self.skip or not record or first in self.empty:
                    continue
                if row >= 0 and len(record) < fields:
                    short[row] = (first + 1, len(record), fields)
                row += 1
        return short

    def read(self, path: Path, **options: Any) -> Any:
        import pandas as pd

        skip = [*range(self.skip), *self.empty]
        if not self.trailing:
            return pd.read_csv(path, encoding=self.encoding, sep=self.sep, skiprows=skip or None, **options)
        import warnings

        with warnings.catch_warnings():  # "a loss of data": the empty field after each line's last separator
            warnings.simplefilter("ignore", pd.errors.ParserWarning)
            return pd.read_csv(path, encoding=self.encoding, sep=self.sep, skiprows=skip or None, index_col=False,
                               **options)

    def texts(self, path: Path) -> Any:
        """The file's cells as written (text, nothing read as missing), read once for every check that needs
        what pandas' numbers lose: leading zeros, dots between thousands."""
        if self._texts is None:
            self._texts = self.read(path, dtype=str, keep_default_na=False)
        return self._texts


def layout(path: Path, where: str, field: str = "data.source") -> Layout:
    """The file's layout, after refusing what is not CSV text and checking its header line."""
    _is_text(path, where, field)
    encoding = text_encoding(path)
    found = Layout(encoding)
    if encoding != "utf-8":
        found.notes.append(f"{path} is not UTF-8 text: read as {encoding}"
                           + (" (Excel's CSV on Windows); save it as UTF-8 if its accented letters look wrong"
                              if encoding != "utf-16" else " (Excel's 'Unicode Text')"))
    lines = first_lines(path, encoding, 2)
    hint = lines[0].lstrip("\ufeff").rstrip("\r\n") if lines else ""
    if len(hint) == 5 and hint.lower().startswith("sep="):
        found.sep, found.skip = hint[4], 1
        found.notes.append(f"{path} starts with Excel's '{hint}' line: read as separated by "
                           f"{SEPARATORS.get(found.sep, repr(found.sep))}")
        lines = lines[1:]
    else:
        found.sep = _header_separator(lines[0] if lines else "")
    _header(path, where, field, lines[0] if lines else "", found.sep)
    return found


def open_bytes(path: Path) -> IO[bytes]:
    """The file's bytes as pandas reads them: ``.gz``, ``.bz2``, ``.xz`` and one-member ``.zip`` unpacked."""
    suffix = path.suffix.lower()
    if suffix in _COMPRESSED:
        return _COMPRESSED[suffix](path, "rb")  # type: ignore[operator]
    if suffix == ".zip" and zipfile.is_zipfile(path):
        archive = zipfile.ZipFile(path)
        members = [m for m in archive.namelist() if not m.endswith("/")]
        if len(members) == 1:
            return archive.open(members[0])
    return open(path, "rb")


def text_encoding(path: Path) -> str:
    """``utf-16`` where a byte-order mark says so, ``utf-8`` (its mark is dropped), else Windows' ``cp1252``,
    else ``latin-1``, which reads any bytes: a CSV saved by Excel on Windows is cp1252, and refusing it helps
    nobody."""
    with open_bytes(path) as handle:
        if handle.read(2) in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
            return "utf-16"
    for encoding in ("utf-8", "cp1252"):
        decoder = codecs.getincrementaldecoder(encoding)()
        try:
            with open_bytes(path) as handle:
                while chunk := handle.read(1 << 20):  # a large file is never held whole
                    decoder.decode(chunk)
            decoder.decode(b"", final=True)
            return encoding
        except UnicodeDecodeError:
            continue
    return "latin-1"


def _is_text(path: Path, where: str, field: str) -> None:
    try:
        with open_bytes(path) as handle:
            start = handle.read(4096)
    except (OSError, EOFError, zipfile.BadZipFile, lzma.LZMAError) as exc:
        raise DataError(f"cannot read {path} ({exc})", source=where, field=field) from None
    if not start:
        raise DataError(f"the CSV file {path} is empty (0 bytes)", source=where, field=field,
                        expected="a header line and at least one data row")
    kind = next(((what, fix) for magic, what, fix in _NOT_TEXT if start.startswith(magic)), None)
    if kind is None and start.startswith(b"PK"):
        kind = ("an Excel workbook (.xlsx) or a zip archive", "save the sheet as 'CSV UTF-8' in Excel, or unzip "
                "it (a .zip of one CSV file is read as it is)")
    if kind is None and (start.lstrip()[:1] == b"{" or start.lstrip()[:2] in (b"[{", b'["', b"[[", b"[\n")):
        kind = ("JSON text", "pandas.read_json(path).to_csv(csv_path, index=False)")
    if kind is None and start.count(b"\0") * 4 > len(start) and not start.startswith((codecs.BOM_UTF16_LE,
                                                                                         codecs.BOM_UTF16_BE)):
        # Every other byte 0: UTF-16 without its byte-order mark, whose names would print with invisible NULs.
        kind = ("UTF-16 text without a byte-order mark" if start[1::2].count(b"\0") * 2 > len(start) // 2
                or start[0::2].count(b"\0") * 2 > len(start) // 2 else "binary data (NUL bytes)",
                "save it as UTF-8 ('CSV UTF-8' in Excel)")
    utf16 = start.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))  # its letters' bytes may be anything
    controls = sum(0 < byte < 32 and byte not in b"\t\n\r\f" or byte == 127 for byte in start)
    if kind is None and not utf16 and controls * 20 > len(start):  # text has none; cp1252 would decode them
        kind = (f"binary data ({controls} control bytes in its first {len(start)})",
                "give the table as comma-separated text with a header line")
    if kind is not None:
        raise DataError(f"{path} is {kind[0]}, not CSV text; csv:<path> reads comma-separated text with a header "
                        f"line: {kind[1]}", source=where, field=field, expected="CSV text", found=kind[0])


def first_lines(path: Path, encoding: str, n: int) -> list[str]:
    with io.TextIOWrapper(open_bytes(path), encoding=encoding, errors="replace", newline="") as text:
        lines: list[str] = []
        for line in text:
            lines.append(line.lstrip("\ufeff") if not lines else line)
            if len(lines) == n:
                break
    return lines


def _header_separator(header: str) -> str:
    """The separator the header line uses most (commas unless another one outnumbers them): a semicolon file
    whose cells hold decimal commas would otherwise break pandas' comma reading with a field-count error."""
    counts = {sep: header.count(sep) for sep in (",", *SEPARATORS)}
    best = max(counts, key=lambda sep: counts[sep])
    return best if counts[best] > counts[","] else ","


def _header(path: Path, where: str, field: str, line: str, sep: str) -> None:
    """The header as written: pandas renames a second ``label`` to ``label.1``, which would hide it. Empty
    names are left to the reader (empty columns of trailing separators are dropped there)."""
    header = next(csv.reader([line], delimiter=sep), [])
    if not any(name.strip() for name in header):
        raise DataError(f"the CSV file {path} has no header line", source=where, field=field,
                        expected="column names on the first line")
    names = [name.strip() for name in header]  # read without the spaces around them (`a, b, label`)
    repeated = sorted(name for name, n in Counter(names).items() if n > 1 and name)
    if repeated:
        raise DataError(f"the CSV file {path} has duplicated column name(s) "
                        + ", ".join(f"'{name}' ({names.count(name)} times)" for name in repeated)
                        + "; rename them so each column has one meaning", source=where, field=field,
                        expected="unique column names")


def separator_naming(shape: Layout, path: Path, names: list[str | None]) -> None:
    """Where the header splits into the named columns only at another separator, read the file at that one:
    ``Gewicht, kg;Größe, cm;label`` has as many commas as semicolons, and at the commas there is no ``label``."""
    wanted = [n for n in names if n]
    lines = first_lines(path, shape.encoding, shape.skip + 1)
    if not wanted or len(lines) <= shape.skip:
        return
    header = lines[shape.skip].rstrip("\r\n")

    def columns(sep: str) -> set[str]:
        return {c.strip() for c in next(csv.reader([header], delimiter=sep), [])}

    if all(n in columns(shape.sep) for n in wanted):
        return
    for sep in (",", *SEPARATORS):
        if sep != shape.sep and sep in header and all(n in columns(sep) for n in wanted):
            shape.notes.append(f"{path}: read as separated by {SEPARATORS.get(sep, 'commas')}, not "
                               f"{SEPARATORS.get(shape.sep, 'commas')}: only so does its header hold the "
                               f"column(s) {', '.join(map(repr, wanted))} that the space names")
            shape.sep = sep
            return


def as_named(frame: Any, names: list[str | None]) -> Any:
    """Header names that are the space's names in another Unicode form (macOS writes ``ä`` as ``a`` and a
    combining mark), or with the spaces around them that the header's names lose when read (`` Feature A ``
    copied from the file): they look the same, so they are the same column."""
    import unicodedata

    def nfc(name: Any) -> Any:
        return unicodedata.normalize("NFC", name).strip() if isinstance(name, str) else name

    wanted = {nfc(n): n for n in names if n}
    renamed = {c: wanted[nfc(c)] for c in frame.columns if nfc(c) in wanted and c != wanted[nfc(c)]}
    return frame.rename(columns=renamed) if renamed else frame


def no_rows_in_one_cell(frame: Any, path: Path, sep: str, where: str, field: str) -> None:
    """A quote left open (``"broken``) makes the reader take every line up to the next quote as one cell: those
    rows vanish without a word. A cell holding line breaks that are whole rows of the file is that."""
    width = len(frame.columns)
    for column in frame.columns:
        if frame[column].dtype.kind not in "OT":
            continue
        text = frame[column].dropna().astype(str)
        broken = text[text.str.contains("\n", regex=False)]
        for row, cell in broken.items():
            rows = [line for line in cell.splitlines()[1:] if line.count(sep) >= width - 1]
            if rows:
                raise DataError(f"row {row} of {path} (counting data rows from 0), column '{column}', holds "
                                f"{cell.count(chr(10))} line break(s), {len(rows)} of them before whole rows of the "
                                f"file: a quote (\") opened in that cell is closed only lines later, so those "
                                f"rows were read as text of one cell; remove the stray quote, or double it (\"\") "
                                f"inside a quoted cell", source=where, field=field,
                                expected="one row per line, or quoted cells that close on their line",
                                found=cell.splitlines()[0][:40])


def open_quote_trouble(message: str, path: Path, shape: Layout) -> str | None:
    """pandas' "EOF inside string starting at row 10" in words: the line (as an editor numbers it), the data
    row and the column where a quote opens that no later quote closes."""
    found = re.search(r"EOF inside string starting at row (\d+)", message)
    if not found:
        return None
    number = int(found.group(1)) + 1
    lines = first_lines(path, shape.encoding, number)
    if len(lines) < number:
        return None
    line, opened, quoted, fields = lines[number - 1].rstrip("\r\n"), None, False, 0
    for ch in line:
        if ch == '"':
            quoted = not quoted
            opened = fields if quoted else opened
        elif ch == shape.sep and not quoted:
            fields += 1
    header = next(csv.reader([lines[shape.skip]], delimiter=shape.sep), []) if len(lines) > shape.skip else []
    column = (f", column '{header[opened].strip()}'" if opened is not None and opened < len(header) else "")
    row = number - shape.skip - 2
    return (f"line {number} of the file (data row {row}, counting from 0){column} opens a quote (\") that no "
            f"later quote closes, so the rest of the file would be one cell: {line[:60]!r}; remove the stray "
            f"quote, or close it")


# 2.762 and 12.345.678 as written where the comma is the decimal mark: dots between groups of three digits.
def field_count_trouble(message: str, path: Path, shape: Layout) -> str | None:
    """pandas' "Expected 1 fields in line 4, saw 3" in words: title lines above the header, or a row with
    more fields than the header names."""
    found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", message)
    if not found:
        return None
    expected, line, saw = map(int, found.groups())
    lines = first_lines(path, shape.encoding, shape.skip + 50)[shape.skip:]
    widths = [len(next(csv.reader([text], delimiter=shape.sep), [])) if text.strip() else 0 for text in lines]
    filled = [w for w in widths if w]
    start = widths.index(saw) if saw in widths else len(widths)
    # A title: the lines above are narrower, and every line from the header on is as wide (not a file of
    # rows of two widths, whose first lines happen to be the narrower).
    if filled and filled[0] < saw and filled.count(saw) * 2 > len(filled) and \
            all(w in (0, saw) for w in widths[start:]):
        header = shape.skip + start + 1
        return (f"the {header - 1} line(s) above line {header} hold fewer fields than the rows from there on "
                f"({filled[0]} against {saw}): a title above the header? The first line must be the column "
                f"names; delete the line(s) above line {header}")
    name = _separator_name(shape.sep)
    return (f"line {line} of the file holds {saw} fields where the header names {expected} columns: a value "
            f"holding the separator ({name}) without quotes around it, or a separator too many; quote that "
            f"value or remove the extra separator")


def one_field_too_many(path: Path, shape: Layout, where: str, field: str, index: Any) -> None:
    """Data lines with more fields than the header: pandas reads their first field as the row's index, and
    the rest one column to the left (``63,756.68,48,1`` under ``salary,age,y`` became salary 756.68, age
    48), silently. Where each longer line only ends with a separator the header lacks, the empty last
    field is left out (``shape.trailing``, with a note); where the first fields are row names (R's
    ``write.table`` leaves their column unnamed: 1, 2, 3, ... or names that differ), they are left out, as
    pandas read them, with a note; otherwise it is refused, naming the first line."""
    with io.TextIOWrapper(open_bytes(path), encoding=shape.encoding, errors="replace", newline="") as text:
        rows = [(number + 1, row) for number, row in enumerate(csv.reader(text, delimiter=shape.sep))
                if number >= shape.skip and row and any(cell.strip() for cell in row)]
    # A comment or title line above the header, one field wide: said as such where the columns are looked up.
    if not rows or len(rows[0][1]) == 1 or rows[0][1][0].lstrip().startswith("#"):
        return
    width = len(rows[0][1])
    longer = [(number, row) for number, row in rows[1:] if len(row) > width]
    if not longer:
        return
    if all(len(row) == width + 1 and not row[-1].strip() for _, row in longer):
        shape.trailing = True
        shape.notes.append(f"{path}: {len(longer)} data line(s) end with a separator the header line does not "
                           f"(line {longer[0][0]}, ...); the empty field after it is left out")
        return
    if len(longer) == len(rows) - 1 and _row_names(index):
        shape.notes.append(f"{path}: every data line starts with a field the header does not name (row names, "
                           f"{', '.join(map(str, index[:3]))}, ...); left out")
        return
    number, row = next((n, r) for n, r in longer if not (len(r) == width + 1 and not r[-1].strip()))
    name = _separator_name(shape.sep)
    line = shape.sep.join(row)
    raise DataError(f"cannot parse CSV file {path}: {len(longer)} of its {len(rows) - 1} data lines hold more fields "
                    f"than the header names columns (the first is line {number}, {len(row)} fields where the header "
                    f"names {width}: {line[:60]!r}): a value holding the separator ({name}) without quotes around "
                    f"it, such as a thousands separator ('1,234.5') or a decimal comma, or a separator too many; "
                    f"quote such values, or write them without the separator", source=where, field=field,
                    expected=f"{width} fields on every line, as the header", found=f"{len(row)} on line {number}")


def _row_names(index: Any) -> bool:
    """Row names, not values cut at a separator: one level, each different, counting up from 0 or 1 by one,
    or none of them a number."""
    import pandas as pd

    if index.nlevels != 1 or not index.is_unique or not len(index):
        return False
    if pd.api.types.is_integer_dtype(index):
        return int(index[0]) in (0, 1) and index.equals(pd.RangeIndex(int(index[0]), int(index[0]) + len(index)))
    return not pd.to_numeric(pd.Series(index.astype(str)), errors="coerce").notna().any()


def _separator_name(sep: str) -> str:
    return {",": "a comma", ";": "a semicolon", "\t": "a tab", "|": "a bar"}.get(sep, repr(sep))
