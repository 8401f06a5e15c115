"""Review 58 (today's changes; fixed 2026-12-05), unit findings.

Findings:

- ``test_vietnamese_kpi_file_title_and_sheet_use_the_walls_word`` — the export headers
  now say "Chỉ số" (the wall's word) because "Chỉ tiêu" is ambiguous (review 55), but
  ``kpi_table`` (services/common/exports.py, ``Table("Bảng chỉ tiêu", "Chỉ tiêu", ...)``)
  still titles the file "Bảng chỉ tiêu — ..." and names the worksheet "Chỉ tiêu": the
  same file says "Chỉ tiêu" in its title row and sheet tab and "Chỉ số" in its header.

(The integration finding is in tests/integration/test_review58_today.py.)
"""

from __future__ import annotations

from services.common.exports import kpi_table


def test_vietnamese_kpi_file_title_and_sheet_use_the_walls_word() -> None:
    table = kpi_table([], "vi")
    headers = [c.header("vi") for c in table.columns]
    assert "Chỉ số" in headers
    assert "chỉ tiêu" not in table.heading.lower()
    assert "chỉ tiêu" not in table.sheet.lower()
