"""``ChurnModel``: how likely a buyer is to stop buying and watching, and why.

Features per buyer at a cut-off date (``FEATURES``): recency (days since their last
activity), frequency (purchases in the last 180 days), monetary value (log of what they
paid in that time), watch completion (share of what they bought that they watched),
engagement (danmaku, questions, likes and tips per watched hour) and tenure (days since
their first purchase). The label, for training on the platform's own history, is whether
the buyer did nothing in the ``horizon_days`` after the cut-off.

The model is scikit-learn's logistic regression over standardized features (balanced
classes), so each risk comes with its reason: the feature pushing it up the most.
``recency_baseline`` scores by recency alone: the yardstick of ``benchmarks/insight.py``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Sequence

import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

__all__ = ["FEATURES", "ChurnModel", "recency_baseline"]

FEATURES = ("recency_days", "frequency", "monetary", "completion", "engagement", "tenure_days")


def _reason(feature: str, value: float) -> str:
    return {
        "recency_days": f"no activity for {value:.0f} days",
        "frequency": f"{value:.0f} purchase{'s' if round(value) != 1 else ''} in the last 180 days",
        "monetary": f"spent {math.expm1(value) / 100:.2f} in the last 180 days",
        "completion": f"watched {value * 100:.0f} % of what they bought",
        "engagement": f"{value:.1f} danmaku, questions or likes per hour watched",
        "tenure_days": f"first purchase {value:.0f} days ago",
    }[feature]


class ChurnModel:
    def __init__(self, pipeline: Optional[Pipeline] = None) -> None:
        self.pipeline = pipeline

    @property
    def trained(self) -> bool:
        return self.pipeline is not None

    def fit(self, X: np.ndarray, y: np.ndarray) -> "ChurnModel":
        """``X``: one row of ``FEATURES`` per buyer; ``y``: 1 for those who churned."""
        if len(set(np.asarray(y).tolist())) < 2:
            raise ValueError("the history needs buyers who churned and buyers who stayed")
        self.pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, class_weight="balanced"))
        self.pipeline.fit(np.asarray(X, dtype=float), np.asarray(y, dtype=int))
        return self

    def risk(self, X: np.ndarray) -> np.ndarray:
        """Probability of churn per row."""
        return self.pipeline.predict_proba(np.asarray(X, dtype=float))[:, 1]

    def reasons(self, X: np.ndarray) -> list[str]:
        """Per row, the feature pushing the risk up the most, in words."""
        X = np.asarray(X, dtype=float)
        scaler, logistic = self.pipeline[0], self.pipeline[-1]
        contributions = scaler.transform(X) * logistic.coef_[0]
        top = contributions.argmax(axis=1)
        return [_reason(FEATURES[j], X[i, j]) for i, j in enumerate(top)]

    def coefficients(self) -> dict[str, float]:
        return {f: round(float(c), 4) for f, c in zip(FEATURES, self.pipeline[-1].coef_[0])}

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        joblib.dump(self.pipeline, tmp)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> "ChurnModel":
        """The model saved at ``path``, or an untrained one if there is none yet."""
        return cls(joblib.load(path) if path.exists() else None)


def recency_baseline(X: np.ndarray) -> np.ndarray:
    """A risk score from recency alone (the longer since the last activity, the riskier)."""
    return np.asarray(X, dtype=float)[:, FEATURES.index("recency_days")]


def feature_row(values: dict[str, float]) -> list[float]:
    return [float(values[f]) for f in FEATURES]


def rows(features: Sequence[dict[str, float]]) -> np.ndarray:
    return np.array([feature_row(f) for f in features], dtype=float).reshape(-1, len(FEATURES))
