"""Reading a CSV file with a header row, for the series and table sources (no pandas)."""

import csv

from mae_jax.errors import UserError


def read_rows(path: str) -> tuple[list[str], list[list[str]], list[int]]:
  """-> (header, data rows as text cells, each row's line in the file). Blank lines are skipped;
  a byte-order mark before the header is dropped; a row whose field count differs from the
  header's is a UserError naming its line."""
  with open(path, newline="", encoding="utf-8-sig") as f:
    reader = csv.reader(f)
    header = [h.strip() for h in next(reader, [])]
    rows, lines = [], []
    for row in reader:
      if not row or (len(row) == 1 and not row[0].strip()):
        continue
      if len(row) != len(header):
        raise UserError(f"{path} line {reader.line_num}: {len(row)} fields, the header has "
                        f"{len(header)}")
      rows.append(row)
      lines.append(reader.line_num)
  return header, rows, lines
