"""Which titles are most like a given one: genre, runtime, shared audience and viewing pattern.

A transparent weighted score rather than a learned embedding, because a manager has to be able
to say *why* two titles are similar; each component is in [0, 1] and shown next to the score:

- genre: Jaccard similarity of the two titles' genre sets (``dim_title.genres``, '|' separated);
- runtime: 1 - |ln(a / b)| / ln(3), floored at 0 — equal runtimes score 1, a threefold
  difference (a 40-minute episode and a 2-hour film) scores 0;
- audience: the Ochiai (cosine) coefficient of the two viewer sets, shared / sqrt(|A| |B|) —
  unlike Jaccard it does not punish a small title for sharing its audience with a big one;
- pattern: cosine similarity of when the titles are watched (starts by hour of the viewer's
  local day, weekdays and weekends apart).

score = sum(weight x component) / sum(weights). The inputs are the frames of
``data.queries.comparison.similarity_features``; nothing here reads data or imports streamlit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

COMPONENTS: tuple[str, ...] = ("genre", "runtime", "audience", "pattern")
COMPONENT_LABELS: dict[str, str] = {
    "genre": "genres",
    "runtime": "runtime",
    "audience": "shared audience",
    "pattern": "viewing times",
}


@dataclass(frozen=True)
class Weights:
    genre: float = 0.3
    runtime: float = 0.15
    audience: float = 0.35
    pattern: float = 0.2

    def as_dict(self) -> dict[str, float]:
        return {c: float(getattr(self, c)) for c in COMPONENTS}


def genre_similarity(a: Iterable[str], b: Iterable[str]) -> float:
    """Jaccard similarity of two genre sets (0 when both are empty)."""
    sa, sb = set(a), set(b)
    union = sa | sb
    return len(sa & sb) / len(union) if union else 0.0


def runtime_similarity(a: float, b: float) -> float:
    """1 for equal runtimes, falling linearly in log ratio to 0 at a threefold difference."""
    if not a or not b or a <= 0 or b <= 0:
        return 0.0
    return max(0.0, 1.0 - abs(math.log(a / b)) / math.log(3.0))


def audience_similarity(shared: float, n_a: float, n_b: float) -> float:
    """Ochiai coefficient: shared viewers / sqrt(viewers of a x viewers of b)."""
    if n_a <= 0 or n_b <= 0:
        return 0.0
    return min(1.0, float(shared) / math.sqrt(float(n_a) * float(n_b)))


def pattern_similarity(u: np.ndarray, v: np.ndarray) -> float:
    """Cosine similarity of two non-negative profiles (0 when either is all zero)."""
    nu, nv = float(np.linalg.norm(u)), float(np.linalg.norm(v))
    if nu == 0 or nv == 0:
        return 0.0
    return float(np.dot(u, v) / (nu * nv))


def split_genres(genres: object) -> frozenset[str]:
    if not isinstance(genres, str):
        return frozenset()
    return frozenset(g.strip() for g in genres.split("|") if g.strip())


def similar_titles(
    target_id: int,
    titles: pd.DataFrame,
    overlap: pd.DataFrame,
    pattern: pd.DataFrame,
    *,
    k: int = 5,
    weights: Weights | None = None,
) -> pd.DataFrame:
    """The ``k`` titles most similar to ``target_id``, best first.

    ``titles``: title_id, name, genres, runtime_min, viewers; ``overlap``: title_id, shared;
    ``pattern``: title_id, slot, starts. Columns of the result: title_id, name, score, the four
    components, and ``why`` (the two components that contribute most, in words). Ties are broken
    by title id so the ranking is deterministic. Empty when the target is not in ``titles``.
    """
    w = (weights or Weights()).as_dict()
    total_weight = sum(w.values())
    columns = ["title_id", "name", "score", *COMPONENTS, "why"]
    titles = titles.set_index("title_id", drop=False)
    if target_id not in titles.index or total_weight <= 0:
        return pd.DataFrame(columns=columns)
    target = titles.loc[target_id]
    shared = dict(zip(overlap["title_id"], overlap["shared"], strict=True))
    slots = int(pattern["slot"].max()) + 1 if not pattern.empty else 1
    profiles: dict[int, np.ndarray] = {}
    for tid, g in pattern.groupby("title_id"):
        vec = np.zeros(slots)
        np.add.at(vec, g["slot"].to_numpy(dtype="int64"), g["starts"].to_numpy(dtype="float64"))
        profiles[int(tid)] = vec
    empty = np.zeros(slots)
    target_genres = split_genres(target["genres"])
    rows = []
    for tid, row in titles.iterrows():
        if tid == target_id:
            continue
        comp = {
            "genre": genre_similarity(target_genres, split_genres(row["genres"])),
            "runtime": runtime_similarity(target["runtime_min"], row["runtime_min"]),
            "audience": audience_similarity(shared.get(tid, 0), target["viewers"], row["viewers"]),
            "pattern": pattern_similarity(
                profiles.get(int(target_id), empty), profiles.get(int(tid), empty)
            ),
        }
        score = sum(w[c] * comp[c] for c in COMPONENTS) / total_weight
        strongest = sorted(COMPONENTS, key=lambda c: (-w[c] * comp[c], c))[:2]
        why = ", ".join(
            f"{COMPONENT_LABELS[c]} {comp[c]:.0%}" for c in strongest if w[c] * comp[c] > 0
        )
        rows.append({"title_id": int(tid), "name": row["name"], "score": score, **comp, "why": why})
    if not rows:
        return pd.DataFrame(columns=columns)
    out = pd.DataFrame(rows).sort_values(["score", "title_id"], ascending=[False, True])
    return out.head(int(k))[columns].reset_index(drop=True)
