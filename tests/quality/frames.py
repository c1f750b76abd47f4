"""Building labels frames for the statistics tests (plain or with categorical columns, as
storage.frames produces them)."""

from __future__ import annotations

import pandas as pd

from bot.quality.common import empty_frame

CATEGORY_COLUMNS = ("annotator", "value_key", "action", "draft_key", "kind", "gold_key")


def finish_frame(records: list[dict], *, categorical: bool = False) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(records, columns=list(empty_frame().columns))
    frame["item_id"] = frame["item_id"].astype("int64")
    if categorical:
        for column in CATEGORY_COLUMNS:
            frame[column] = frame[column].astype("category")
    return frame
