"""A seeded, generated but realistic history for evaluating insight offline.

Rooms belong to tag clusters (Python, machine learning, guitar, cooking...), with English
or Chinese titles, descriptions and danmaku drawn from the cluster's words. Viewers have
tastes over the clusters (a Dirichlet, so most like one or two), an activity rate, and a
commitment that drives both how much of what they buy they watch and how long they stay:
each viewer stops (churns) at a random day, sooner when committed less, and their activity
thins out before it. Purchases pick rooms by taste and popularity.

``generate(seed)`` returns a ``History``; the same seed gives the same history.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from insight.churn import FEATURES
from insight.recommend import Item, Usage

__all__ = ["CLUSTERS", "History", "Purchase", "generate"]

CLUSTERS: dict[str, tuple[list[str], list[str]]] = {
    "python": (["python", "programming", "pandas", "asyncio", "testing", "scripts", "data"],
               ["编程", "爬虫", "数据分析", "自动化", "函数"]),
    "machine-learning": (["machine", "learning", "neural", "networks", "regression", "models", "training"],
                         ["机器学习", "神经网络", "深度学习", "线性回归", "模型"]),
    "guitar": (["guitar", "chords", "fingerstyle", "blues", "strumming", "scales", "songs"],
               ["吉他", "和弦", "指弹", "乐理", "弹唱"]),
    "cooking": (["cooking", "recipes", "baking", "bread", "sauces", "knife", "kitchen"],
                ["烹饪", "家常菜", "烘焙", "面包", "川菜"]),
    "photography": (["photography", "camera", "lighting", "portrait", "lenses", "editing", "composition"],
                    ["摄影", "构图", "人像", "后期", "镜头"]),
    "investing": (["investing", "stocks", "funds", "portfolio", "dividends", "budget", "retirement"],
                  ["投资", "理财", "基金", "股票", "资产配置"]),
    "calligraphy": (["calligraphy", "brush", "ink", "strokes", "characters", "scripts", "paper"],
                    ["书法", "毛笔", "楷书", "行书", "笔画"]),
    "fitness": (["fitness", "strength", "mobility", "running", "workout", "stretching", "core"],
                ["健身", "跑步", "力量训练", "拉伸", "减脂"]),
}
FILLER = ["live", "class", "beginners", "advanced", "week", "masterclass", "session", "practice"]
DANMAKU = ["666", "太棒了", "great", "thanks", "哈哈哈", "学到了", "nice", "awesome", "懂了"]


@dataclass(frozen=True)
class Purchase:
    user: int
    room: int
    day: float
    amount: int
    watch_ms: int


@dataclass
class History:
    days: int
    items: list[Item]
    clusters: list[str]  # per item
    purchases: list[Purchase]
    durations_ms: dict[int, int]
    churn_day: dict[int, float]
    engagement: dict[int, float]  # interactions per watched hour, per viewer

    # ------------------------------------------------------------ recommendations
    def split_last_purchase(self, min_purchases: int = 3) -> tuple[list[Purchase], dict[int, int]]:
        """Training purchases and, per viewer with enough purchases, their last one held out."""
        by_user: dict[int, list[Purchase]] = {}
        for p in sorted(self.purchases, key=lambda p: p.day):
            by_user.setdefault(p.user, []).append(p)
        train, held = [], {}
        for user, ps in by_user.items():
            if len(ps) >= min_purchases:
                held[user] = ps[-1].room
                train.extend(ps[:-1])
            else:
                train.extend(ps)
        return train, held

    @staticmethod
    def usage(purchases: list[Purchase]) -> Usage:
        usage = Usage()
        for p in purchases:
            usage.purchases.add((p.user, p.room))
            usage.watch_ms[(p.user, p.room)] = usage.watch_ms.get((p.user, p.room), 0) + p.watch_ms
        return usage

    # ------------------------------------------------------------ churn
    def churn_table(self, cutoff: float, horizon: float = 60.0) -> tuple[np.ndarray, np.ndarray]:
        """``FEATURES`` at ``cutoff`` of every viewer who bought before it, and whether they
        did nothing in the ``horizon`` days after."""
        before: dict[int, list[Purchase]] = {}
        active_after: set[int] = set()
        for p in self.purchases:
            if p.day <= cutoff:
                before.setdefault(p.user, []).append(p)
            elif p.day <= cutoff + horizon:
                active_after.add(p.user)
        X, y = [], []
        for user, ps in sorted(before.items()):
            last = max(p.day for p in ps)
            recent = [p for p in ps if p.day > cutoff - 180]
            bought_ms = sum(self.durations_ms[p.room] for p in ps)
            watched = sum(p.watch_ms for p in ps)
            row = {"recency_days": cutoff - last, "frequency": len(recent),
                   "monetary": float(np.log1p(sum(p.amount for p in recent))),
                   "completion": watched / bought_ms if bought_ms else 0.0,
                   "engagement": self.engagement[user], "tenure_days": cutoff - min(p.day for p in ps)}
            X.append([row[f] for f in FEATURES])
            y.append(0 if user in active_after else 1)
        return np.array(X), np.array(y)


def generate(seed: int = 7, viewers: int = 3000, rooms: int = 160, days: int = 365) -> History:
    rng = np.random.default_rng(seed)
    names = list(CLUSTERS)
    items, clusters, durations = [], [], {}
    for room in range(1, rooms + 1):
        c = names[room % len(names)]
        english, chinese = CLUSTERS[c]
        if rng.random() < 0.3:  # a Chinese room
            words = list(rng.choice(chinese, size=3, replace=False))
            title = "".join(words) + "直播课"
            description = "，".join(rng.choice(chinese, size=4)) + "。"
        else:
            title = " ".join([*rng.choice(english, size=2, replace=False), rng.choice(FILLER)]).title()
            description = " ".join(rng.choice(english + FILLER, size=12))
        tags = (c, str(rng.choice(english)))
        chatter = " ".join(rng.choice(DANMAKU + english[:3] + chinese[:2], size=20))
        items.append(Item(room, title, description, tags, chatter, available=rng.random() > 0.02))
        clusters.append(c)
        durations[room] = int(rng.integers(30, 120)) * 60_000
    launch = rng.uniform(0, days * 0.9, size=rooms)
    quality = rng.lognormal(0, 0.6, size=rooms)  # some rooms sell much better
    cluster_of = np.array([names.index(c) for c in clusters])

    purchases: list[Purchase] = []
    churn_day, engagement = {}, {}
    for user in range(1, viewers + 1):
        taste = rng.dirichlet(np.full(len(names), 0.25))
        commitment = rng.beta(2, 2)  # drives watching, engaging and staying
        rate = rng.lognormal(np.log(0.04), 0.5) * (0.5 + commitment)  # purchases a day while active
        start = rng.uniform(0, days * 0.7)
        life = rng.exponential(60 + 400 * commitment ** 2)
        end = start + life
        churn_day[user] = end
        engagement[user] = float(rng.gamma(2, 2 * commitment + 0.2))
        day = start
        owned: set[int] = set()
        while True:
            gap = rng.exponential(1 / rate)
            # activity thins out as the end approaches
            if day + gap > end or day + gap > days:
                break
            day += gap
            if rng.random() < 0.3 * (day - start) / max(life, 1):
                continue  # a visit without a purchase
            open_rooms = np.where((launch <= day))[0]
            if not len(open_rooms):
                continue
            weight = taste[cluster_of[open_rooms]] * quality[open_rooms]
            weight[[i for i, r in enumerate(open_rooms) if r + 1 in owned]] = 0
            if weight.sum() <= 0:
                continue
            pick = int(rng.choice(open_rooms, p=weight / weight.sum())) + 1
            owned.add(pick)
            watch = int(durations[pick] * float(np.clip(rng.normal(commitment, 0.2), 0, 1)))
            purchases.append(Purchase(user, pick, day, int(rng.choice([990, 1990, 2990])), watch))
    return History(days, items, clusters, purchases, durations, churn_day, engagement)
