"""Bytes for download buttons; the audited, row-capped export path is added with the security layer."""

from __future__ import annotations

import pandas as pd

from data.export import to_csv_bytes


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """A chart's data table as a spreadsheet-safe CSV."""
    return to_csv_bytes(frame)
