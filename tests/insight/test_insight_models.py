"""Recommendations and churn risk: the models on a small generated history (they beat their
baselines, never recommend what is owned or taken down), and the server's answers and
command on real data: "for you" and "viewers also bought", the at-risk buyers after
`stagepass insight train-churn`, and the coupon a creator sends one of them."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import numpy as np
from sklearn.metrics import roc_auc_score
from sqlalchemy import text

from benchmarks.insight_data import generate
from insight.assembly import INSIGHT
from insight.churn import ChurnModel, recency_baseline
from insight.recommend import Item, Recommender, Usage
from paywall.http import PAYWALL
from stagepass.app import create_app
from tests.support.paywall_fixtures import Api, buy, paid_room, paywall_settings
import pytest

pytestmark = pytest.mark.inprocess


def test_the_recommender_beats_popularity_and_never_offers_what_is_owned_or_taken_down():
    history = generate(3, viewers=600, rooms=48)
    train, held = history.split_last_purchase()
    model = Recommender().fit(history.items, history.usage(train))
    taken_down = {item.id for item in history.items if not item.available}
    hits = popular_hits = 0
    for user, room in held.items():
        recs = model.for_user(user, 10)
        assert not set(recs) & (model.owned[user] | taken_down)
        hits += room in recs
        popular_hits += room in model.popular(10, owned=model.owned[user])
    assert hits > 1.5 * popular_hits, (hits, popular_hits)


def test_content_words_cold_start_and_also_bought():
    items = [Item(1, "机器学习入门", tags=("machine-learning",)), Item(2, "深度学习与神经网络", tags=("machine-learning",)),
             Item(3, "Fingerstyle guitar basics", tags=("guitar",)), Item(4, "Blues guitar chords", tags=("guitar",)),
             Item(5, "Sourdough bread", tags=("cooking",)), Item(6, "Old guitar class", tags=("guitar",), available=False)]
    usage = Usage(purchases={(10, 3), (10, 4), (11, 3), (11, 4), (12, 5), (12, 3)})
    model = Recommender().fit(items, usage)
    assert "机器" in model.tfidf.vocabulary_ and "学习" in model.tfidf.vocabulary_  # jieba's words
    # a newcomer who looked at a machine-learning room gets machine learning (content, cold start)
    assert set(model.for_user(None, 2, visited={1})) == {1, 2}
    assert model.for_user(None, 1) == [3]  # nothing known: the most bought
    # a buyer of room 3 gets room 4 first (bought together, and alike); never 6 (taken down)
    assert model.for_user(12, 3)[0] == 4 and 6 not in model.for_user(12, 5)
    assert model.also_bought(3, 2)[0] == 4 and 3 not in model.also_bought(3, 5)
    assert model.popular(2) == [3, 4]


def test_the_churn_model_beats_recency_alone_and_says_why():
    history = generate(5, viewers=1500, rooms=60)
    X, y = history.churn_table(250)
    order = np.random.default_rng(0).permutation(len(y))
    train, test = order[: len(y) * 7 // 10], order[len(y) * 7 // 10:]
    model = ChurnModel().fit(X[train], y[train])
    auc = roc_auc_score(y[test], model.risk(X[test]))
    assert auc > 0.75 and auc >= roc_auc_score(y[test], recency_baseline(X[test])) - 0.01
    reasons = model.reasons(X[test][:20])
    assert all(isinstance(r, str) and r for r in reasons)
    assert any(r.startswith("no activity for") for r in reasons)


async def test_for_you_and_also_bought_from_the_server(aiohttp_server, tmp_path):
    app = create_app(paywall_settings(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", event_flush_ms=50))
    base = str((await aiohttp_server(app)).make_url("")).rstrip("/")
    creator = await Api.sign_up(base, "creator")
    for slug, title, tags in (("ml-1", "机器学习入门", ["machine-learning"]), ("ml-2", "深度学习实战", ["machine-learning"]),
                              ("gt-1", "Fingerstyle guitar", ["guitar"]), ("gt-2", "Blues guitar", ["guitar"]),
                              ("ck-1", "Sourdough bread", ["cooking"])):
        await paid_room(creator, slug=slug, title=title, tags=tags)
    fans = [await Api.sign_up(base) for _ in range(3)]
    for fan in fans:
        await buy(fan, "gt-1")
        await buy(fan, "gt-2")
    newcomer = await Api.sign_up(base)
    await buy(newcomer, "gt-1")
    await app[INSIGHT].suggestions.refit()

    status, body = await newcomer.get("/api/recommendations/for-you?limit=3")
    assert status == 200, body
    slugs = [r["slug"] for r in body["rooms"]]
    assert slugs[0] == "gt-2" and "gt-1" not in slugs
    status, body = await newcomer.get("/api/recommendations/also-bought/gt-1")
    assert [r["slug"] for r in body["rooms"]][0] == "gt-2"
    await buy(newcomer, "gt-2")  # bought a minute ago: no longer offered, without a refit
    assert "gt-2" not in [r["slug"] for r in (await newcomer.get("/api/recommendations/for-you"))[1]["rooms"]]

    visitor = Api(base)  # anonymous: looked at a machine-learning room
    assert (await visitor.post("/api/events", {"kind": "page_visit", "page": "room", "room": "ml-1"},
                               headers={"Cookie": "stagepass_visitor=" + "a" * 32}))[0] == 204
    await app[INSIGHT].events.flush()
    status, body = await visitor.get("/api/recommendations/for-you?limit=2", headers={"Cookie": "stagepass_visitor=" + "a" * 32})
    assert status == 200 and body["rooms"][0]["slug"] in ("ml-1", "ml-2"), body
    assert {r["slug"] for r in body["rooms"]} == {"ml-1", "ml-2"}

    for bad in ("?limit=0", "?limit=51", "?limit=x"):
        assert (await newcomer.get("/api/recommendations/for-you" + bad))[1]["error"]["code"] == "invalid_limit"
    assert (await newcomer.get("/api/recommendations/also-bought/nowhere"))[0] == 404


async def test_train_churn_command_at_risk_buyers_and_a_coupon(aiohttp_server, tmp_path):
    db_url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    settings = paywall_settings(tmp_path, db_url, event_flush_ms=50)
    app = create_app(settings)
    base = str((await aiohttp_server(app)).make_url("")).rstrip("/")
    creator = await Api.sign_up(base, "creator")
    for slug in ("r1", "r2", "r3"):
        await paid_room(creator, slug=slug)
    stayers, leavers = [await Api.sign_up(base) for _ in range(6)], [await Api.sign_up(base) for _ in range(6)]
    for fan in stayers + leavers:
        await buy(fan, "r1")
    for fan in stayers:
        await buy(fan, "r2")
        await buy(fan, "r3")
    status, body = await creator.get("/api/creator/insight/at-risk")
    assert (status, body["error"]["code"]) == (409, "model_not_trained")

    # history: everyone bought r1 about 150 days ago; stayers bought again 100 and 5 days ago
    now = dt.datetime.now(dt.timezone.utc)
    async with app[PAYWALL].db.engine.begin() as conn:
        for fan in stayers + leavers:
            for room, days in (("r1", 150), ("r2", 100), ("r3", 5)):
                await conn.execute(text(
                    "UPDATE orders SET paid_at = :at, created_at = :at WHERE user_id = :u "
                    "AND room_id = (SELECT id FROM rooms WHERE slug = :r)"),
                    {"at": now - dt.timedelta(days=days), "u": fan.user["id"], "r": room})
        await conn.execute(text("UPDATE behaviour_events SET at = :at"), {"at": now - dt.timedelta(days=150)})

    env = {k: v for k, v in os.environ.items() if not k.startswith("STAGEPASS_")}
    env.update(STAGEPASS_DATA_DIR=str(settings.server.data_dir), STAGEPASS_DATABASE_URL=db_url, STAGEPASS_SECRET="s" * 40,
               STAGEPASS_ROOMS="open=open-room-key")
    done = subprocess.run([sys.executable, "-m", "stagepass.cli", "insight", "train-churn"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "trained on 12 buyers (6 churned)" in done.stdout, done.stdout

    status, body = await creator.get("/api/creator/insight/at-risk")
    assert status == 200, body
    at_risk = {b["user_id"]: b for b in body["buyers"]}
    assert set(at_risk) == {fan.user["id"] for fan in leavers}
    some = at_risk[leavers[0].user["id"]]
    assert some["rooms"] == ["r1"] and some["name"] == "Viewer" and some["risk"] >= 0.5 and some["reason"]

    leaver = leavers[0]
    status, body = await creator.post(f"/api/creator/insight/at-risk/{leaver.user['id']}/coupon", {"room": "r2", "percent": 50})
    assert status == 201, body
    code = body["offer"]["code"]
    status, offers = await leaver.get("/api/me/offers")
    assert [(o["room"], o["code"], o["percent"]) for o in offers["offers"]] == [("r2", code, 50)]
    order = await buy(leaver, "r2", coupon=code)
    assert order["amount"] == 495
    for bad, code_ in (({"room": "r2", "percent": 0}, "invalid_percent"), ({"percent": 10}, "invalid_room")):
        status, body = await creator.post(f"/api/creator/insight/at-risk/{leaver.user['id']}/coupon", bad)
        assert (status, body["error"]["code"]) == (400, code_)
    status, body = await creator.post(f"/api/creator/insight/at-risk/{creator.user['id']}/coupon", {"room": "r2", "percent": 5})
    assert (status, body["error"]["code"]) == (404, "buyer_not_found")
    assert (await leaver.get("/api/creator/insight/at-risk"))[0] == 403
