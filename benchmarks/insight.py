"""Offline evaluation of insight on a seeded, generated history (``benchmarks/insight_data.py``).

Recommendations: each viewer with 3+ purchases has their last purchase held out; the
recommender trains on the rest and answers "for you" (10 rooms, never one they own or one
taken down). Recall@10 (the held-out room is among the 10) and NDCG@10 (how high), against
the most-bought rooms as the baseline, and the content-only and collaborative-only halves.

Churn: features of every buyer at a cut-off day, label = no purchase in the 60 days after;
70 % of buyers train, 30 % test. ROC AUC of the logistic model (the server's) and of a
gradient-boosting model, against recency alone.

Both tables also give the time to train and the median time to answer one request.

    .venv/bin/python benchmarks/insight.py [--seed 7] [--viewers 3000] [--rooms 160]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.insight_data import generate  # noqa: E402
from insight.churn import ChurnModel, recency_baseline  # noqa: E402
from insight.recommend import Recommender  # noqa: E402

K = 10


def ranking_quality(recommend, held: dict[int, int]) -> tuple[float, float, float]:
    """(recall@K, NDCG@K, median ms per request) of ``recommend(user) -> rooms``."""
    hits, gain, times = 0, 0.0, []
    for user, room in held.items():
        t = time.perf_counter()
        recs = recommend(user)
        times.append((time.perf_counter() - t) * 1000)
        if room in recs:
            hits += 1
            gain += 1 / np.log2(recs.index(room) + 2)
    return hits / len(held), gain / len(held), statistics.median(times)


def timed(fn):
    t = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--viewers", type=int, default=3000)
    parser.add_argument("--rooms", type=int, default=160)
    parser.add_argument("--cutoff", type=float, default=250.0, help="the churn cut-off day (of 365)")
    args = parser.parse_args()

    history, gen_s = timed(lambda: generate(args.seed, viewers=args.viewers, rooms=args.rooms))
    train, held = history.split_last_purchase()
    usage = history.usage(train)
    print(f"history: {args.viewers} viewers, {args.rooms} rooms, {len(history.purchases)} purchases "
          f"(seed {args.seed}, generated in {gen_s:.1f} s); {len(held)} held-out purchases\n")

    rows = []
    for name, build in (("blend (server)", lambda: Recommender()),
                        ("content only", lambda: Recommender(content_weight=1.0)),
                        ("collaborative only", lambda: Recommender(content_weight=0.0))):
        model, fit_s = timed(lambda: build().fit(history.items, usage))
        recall, ndcg, ms = ranking_quality(lambda u: model.for_user(u, K), held)
        rows.append((name, recall, ndcg, fit_s, ms))
        if name.startswith("blend"):
            baseline = model
    recall, ndcg, ms = ranking_quality(lambda u: baseline.popular(K, owned=baseline.owned.get(u, ())), held)
    rows.append(("popularity (baseline)", recall, ndcg, 0.0, ms))
    base_recall, base_ndcg = rows[-1][1], rows[-1][2]
    print(f"{'recommender':<24}{'recall@10':>10}{'NDCG@10':>9}{'x recall':>9}{'x NDCG':>8}{'train s':>9}{'ms/req':>8}")
    for name, recall, ndcg, fit_s, ms in rows:
        print(f"{name:<24}{recall:>10.3f}{ndcg:>9.3f}{recall / base_recall:>9.2f}{ndcg / base_ndcg:>8.2f}"
              f"{fit_s:>9.2f}{ms:>8.2f}")

    X, y = history.churn_table(args.cutoff)
    order = np.random.default_rng(args.seed).permutation(len(y))
    tr, te = order[: int(0.7 * len(y))], order[int(0.7 * len(y)):]
    print(f"\nchurn: {len(y)} buyers at day {args.cutoff:.0f}, {y.mean() * 100:.0f} % churned in the next 60 days; "
          f"{len(tr)} train, {len(te)} test\n")
    logistic, fit_lr = timed(lambda: ChurnModel().fit(X[tr], y[tr]))
    boosting, fit_gb = timed(lambda: GradientBoostingClassifier(random_state=args.seed).fit(X[tr], y[tr]))
    one = X[te][:1]
    answer_lr = statistics.median(timed(lambda: logistic.risk(one))[1] for _ in range(50)) * 1000
    answer_gb = statistics.median(timed(lambda: boosting.predict_proba(one))[1] for _ in range(50)) * 1000
    base_auc = roc_auc_score(y[te], recency_baseline(X[te]))
    print(f"{'churn model':<30}{'AUC':>7}{'x baseline':>11}{'train s':>9}{'ms/req':>8}")
    for name, auc, fit_s, ms in (
            ("logistic regression (server)", roc_auc_score(y[te], logistic.risk(X[te])), fit_lr, answer_lr),
            ("gradient boosting", roc_auc_score(y[te], boosting.predict_proba(X[te])[:, 1]), fit_gb, answer_gb),
            ("recency only (baseline)", base_auc, 0.0, 0.0)):
        print(f"{name:<30}{auc:>7.3f}{auc / base_auc:>11.3f}{fit_s:>9.2f}{ms:>8.3f}")
    print(f"\nlogistic coefficients (standardized): {logistic.coefficients()}")


if __name__ == "__main__":
    main()
