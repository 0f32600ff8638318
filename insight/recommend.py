"""``Recommender``: "for you" and "viewers also bought", content blended with collaborative.

* Content: TF-IDF (scikit-learn) over each room's title, description, tags and danmaku,
  words from ``insight.text`` (jieba for Chinese). A viewer's profile is the weighted mean
  of the rows of what they bought or watched (or, cold, of the rooms they visited).
* Collaborative: item-item cosine neighbours (scikit-learn ``NearestNeighbors``) over a
  viewer x room matrix of purchases (1) plus watch time (up to 1 more, at an hour).
* Blend: ``content_weight`` x content + the rest x collaborative, each scaled to [0, 1],
  plus a little popularity so ties go to what others bought. A viewer with no history gets
  the rooms of the tags they looked at, else the most bought.
* Never what the viewer already owns, nor a room that is not ``available`` (taken down).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import normalize

from .text import tokens

__all__ = ["Item", "Recommender", "Usage"]


@dataclass(frozen=True)
class Item:
    id: int
    title: str
    description: str = ""
    tags: tuple[str, ...] = ()
    danmaku: str = ""  # the room's danmaku, joined
    available: bool = True

    def document(self) -> str:
        tags = " ".join(self.tags)
        return f"{self.title} {self.title} {tags} {tags} {tags} {self.description} {self.danmaku}"


@dataclass
class Usage:
    """What viewers did: purchases, watch time (ms) per (viewer, room), rooms visited."""

    purchases: set[tuple[int, int]] = field(default_factory=set)
    watch_ms: dict[tuple[int, int], int] = field(default_factory=dict)
    visits: dict[int, set[int]] = field(default_factory=dict)


class Recommender:
    def __init__(self, content_weight: float = 0.35, neighbours: int = 30, popularity_weight: float = 0.05) -> None:
        self.content_weight = content_weight
        self.neighbours = neighbours
        self.popularity_weight = popularity_weight
        self.items: list[Item] = []
        self._index: dict[int, int] = {}

    def fit(self, items: Sequence[Item], usage: Usage) -> "Recommender":
        self.items = list(items)
        self._index = {item.id: i for i, item in enumerate(self.items)}
        n = len(self.items)
        self.tfidf = TfidfVectorizer(tokenizer=tokens, lowercase=False, token_pattern=None, sublinear_tf=True)
        self.content = self.tfidf.fit_transform([item.document() for item in self.items]) if n else sparse.csr_matrix((0, 0))
        users = sorted({u for u, _ in usage.purchases} | {u for u, _ in usage.watch_ms})
        self._users = {u: k for k, u in enumerate(users)}
        weights: dict[tuple[int, int], float] = {}
        for u, room in usage.purchases:
            if room in self._index:
                weights[(u, room)] = weights.get((u, room), 0.0) + 1.0
        for (u, room), ms in usage.watch_ms.items():
            if room in self._index:
                weights[(u, room)] = weights.get((u, room), 0.0) + min(ms / 3_600_000, 1.0)
        rows = [self._users[u] for u, _ in weights]
        cols = [self._index[r] for _, r in weights]
        self.matrix = sparse.csr_matrix((list(weights.values()), (rows, cols)), shape=(len(users), n))
        self.owned: dict[int, set[int]] = {}
        for u, room in usage.purchases:
            self.owned.setdefault(u, set()).add(room)
        self.unavailable = np.array([not item.available for item in self.items], dtype=bool)
        self.visits = usage.visits
        bought = np.zeros(n)
        for _, room in usage.purchases:
            if room in self._index:
                bought[self._index[room]] += 1
        self.popularity = bought / bought.max() if n and bought.max() > 0 else bought
        self.item_sim = self._item_neighbours()
        return self

    def _item_neighbours(self) -> sparse.csr_matrix:
        """Each room's ``neighbours`` most similar rooms by who bought and watched them."""
        n = len(self.items)
        columns = self.matrix.T.tocsr()
        if n < 2 or columns.nnz == 0:
            return sparse.csr_matrix((n, n))
        k = min(self.neighbours + 1, n)
        knn = NearestNeighbors(n_neighbors=k, metric="cosine", algorithm="brute").fit(columns)
        distances, indices = knn.kneighbors(columns)
        sims = np.clip(1.0 - distances, 0.0, 1.0)
        rows = np.repeat(np.arange(n), k)
        sim = sparse.csr_matrix((sims.ravel(), (rows, indices.ravel())), shape=(n, n))
        sim.setdiag(0)
        sim.eliminate_zeros()
        return sim

    # ------------------------------------------------------------ answers
    def for_user(self, user_id: Optional[int], limit: int = 10, owned: Iterable[int] = (),
                 visited: Iterable[int] = ()) -> list[int]:
        """Room ids for this viewer, best first."""
        n = len(self.items)
        if not n:
            return []
        owned = set(owned) | self.owned.get(user_id, set())
        row = self._users.get(user_id) if user_id is not None else None
        history = self.matrix.getrow(row) if row is not None else sparse.csr_matrix((1, n))
        if history.nnz:
            collaborative = _scaled(np.asarray((history @ self.item_sim).todense()).ravel())
            profile = normalize(history @ self.content)
            content = _scaled(np.asarray((self.content @ profile.T).todense()).ravel())
            score = self.content_weight * content + (1 - self.content_weight) * collaborative
        else:
            seen = [self._index[r] for r in set(visited) | self.visits.get(user_id, set()) if r in self._index]
            if seen:
                profile = normalize(sparse.csr_matrix(self.content[seen].mean(axis=0)))
                score = _scaled(np.asarray((self.content @ profile.T).todense()).ravel())
            else:
                score = np.zeros(n)
        return self._top(score + self.popularity_weight * self.popularity, owned, limit)

    def also_bought(self, room_id: int, limit: int = 6, owned: Iterable[int] = ()) -> list[int]:
        """Rooms bought and watched by the viewers of ``room_id`` (and like it in content)."""
        i = self._index.get(room_id)
        if i is None:
            return []
        collaborative = _scaled(np.asarray(self.item_sim.getrow(i).todense()).ravel())
        content = _scaled(np.asarray((self.content @ self.content[i].T).todense()).ravel())
        score = self.content_weight * content + (1 - self.content_weight) * collaborative
        return self._top(score + self.popularity_weight * self.popularity, set(owned) | {room_id}, limit)

    def popular(self, limit: int = 10, owned: Iterable[int] = ()) -> list[int]:
        """The baseline: the most bought rooms."""
        return self._top(self.popularity.copy(), set(owned), limit)

    def _top(self, score: np.ndarray, exclude: set[int], limit: int) -> list[int]:
        score = score.astype(float)
        for room in exclude:
            if room in self._index:
                score[self._index[room]] = -np.inf
        score[self.unavailable] = -np.inf
        order = np.argsort(-score, kind="stable")[:limit]
        return [self.items[i].id for i in order if np.isfinite(score[i])]


def _scaled(values: np.ndarray) -> np.ndarray:
    top = values.max() if values.size else 0.0
    return values / top if top > 0 else np.zeros_like(values)
