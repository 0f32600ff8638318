"""Creator analytics from a known event script: the funnel, live and replay retention with
drop-offs, revenue, fees, refunds, costs and ROI, engagement per viewer-minute, danmaku
bursts as chapters, and de-identified CSV exports; only the room's creator sees them."""

from __future__ import annotations

import csv
import io

import pytest

from insight import measures
from insight.assembly import INSIGHT
from insight.export import pseudonym
from stagepass.app import create_app
from tests.support.insight_fixtures import BROADCAST, MIN, script_a_room
from tests.support.paywall_fixtures import Api, paywall_settings

pytestmark = pytest.mark.inprocess


def test_measures_by_hand():
    spans = measures.live_intervals([("a", "live_join", 0), ("b", "live_join", 0), ("b", "live_leave", 90_000),
                                     ("b", "live_join", 150_000)], end_ms=180_000)
    assert spans == {"a": [(0, 180_000)], "b": [(0, 90_000), (150_000, 180_000)]}
    assert measures.live_retention(spans, 180_000) == [1.0, 1.0, 0.5, 1.0]
    assert measures.watched_ms([(0, 10), (5, 20), (30, 40)]) == 30
    assert measures.drop_offs([1.0, 1.0, 0.5, 0.48, 0.1]) == [  # steepest first, at least 5 points
        {"minute": 2, "t_ms": 120_000, "drop": 0.5}, {"minute": 4, "t_ms": 240_000, "drop": 0.38}]
    assert measures.replay_retention([("a", 5_000), ("a", 65_000), ("b", 61_000)], 120_000) == [0.5, 1.0, 0.0]
    steps = measures.funnel({"visited": {"a", "b", "c", "d"}, "previewed": {"a"}, "checkout": {"a", "b"},
                             "purchased": {"a"}, "watched_5_min": set()})
    assert [(s["people"], s["rate"], s["of_first"]) for s in steps] == [
        (4, None, 1.0), (1, 0.25, 0.25), (2, 2.0, 0.5), (1, 0.5, 0.25), (0, 0.0, 0.0)]
    assert measures.bursts([], 60_000) == []
    assert [(b.t_ms, b.count) for b in measures.bursts([1_000, 200_000] + [300_000 + i for i in range(10)],
                                                      600_000)] == [(300_000, 10)]


@pytest.fixture
async def scripted(aiohttp_server, tmp_path, database_url):
    app = create_app(paywall_settings(tmp_path, database_url, event_flush_ms=50))
    base = str((await aiohttp_server(app)).make_url("")).rstrip("/")
    creator, people = await script_a_room(app, base)
    return app, base, creator, people


async def test_a_known_script_gives_the_known_numbers(scripted):
    app, base, creator, (a, b, c, d) = scripted
    status, body = await creator.get("/api/creator/insight/rooms/maths")
    assert status == 200, body
    assert [(s["step"], s["people"]) for s in body["funnel"]] == [
        ("visited", 5), ("previewed", 2), ("checkout", 3), ("purchased", 2), ("watched_5_min", 1)]
    assert [s["rate"] for s in body["funnel"]] == [None, 0.4, 1.5, 0.6667, 0.5]
    revenue = body["revenue"]
    assert (revenue["gross"], revenue["refunds"], revenue["fees"], revenue["net"]) == (1980, 990, 99, 891)
    assert (revenue["costs"], revenue["profit"], revenue["roi"]) == (1500, 891 - 1500, round((891 - 1500) / 1500, 4))
    # A watched 10 min live; B 2 min live and 13 heartbeats (130 s) of replay
    assert revenue["viewer_minutes"] == round((600_000 + 120_000 + 130_000) / MIN, 2)
    assert body["sessions"] == [{"id": BROADCAST, "duration_ms": 600_000}]

    status, one = await creator.get(f"/api/creator/insight/rooms/maths/sessions/{BROADCAST}")
    assert status == 200, one
    assert one["live"]["joiners"] == 2
    assert one["live"]["retention"] == [1.0, 1.0, 1.0] + [0.5] * 8
    assert one["live"]["drop_offs"] == [{"minute": 3, "t_ms": 180_000, "drop": 0.5}]
    assert one["replay"]["retention"] == [0.0, 0.0, 1.0, 1.0, 1.0] + [0.0] * 6
    assert one["replay"]["drop_offs"] == [{"minute": 5, "t_ms": 300_000, "drop": 1.0}]
    engagement = one["engagement"]
    assert (engagement["danmaku"], engagement["questions"]) == (14, 2)
    assert engagement["danmaku_per_viewer_minute"] == round(14 / ((600_000 + 120_000 + 130_000) / MIN), 4)
    (chapter,) = one["chapters"]
    assert chapter["t_ms"] == 300_000 and chapter["danmaku"] == 12
    assert "线性" in chapter["title"] or "太棒了" in chapter["title"]


async def test_exports_are_de_identified(scripted):
    app, base, creator, people = scripted
    emails = [p.user["email"] for p in people]
    for report in ("funnel", "revenue", "retention", "events", "danmaku"):
        status, text = await creator.get(f"/api/creator/insight/rooms/maths/export/{report}.csv")
        assert status == 200, text
        rows = list(csv.reader(io.StringIO(text)))
        assert len(rows) > 1, report
        assert not any(e in text for e in emails) and "Viewer" not in text
    status, text = await creator.get("/api/creator/insight/rooms/maths/export/events.csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    key = app[INSIGHT].exports.key
    a = people[0].user["id"]
    assert {r["person"] for r in rows if r["kind"] == "live_join"} == {
        pseudonym(key, f"u{a}"), pseudonym(key, f"u{people[1].user['id']}")}
    assert all(len(r["person"]) == 20 and int(r["person"], 16) >= 0 for r in rows)  # the visitor too
    status, text = await creator.get("/api/creator/insight/rooms/maths/export/danmaku.csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 14 and {r["person"] for r in rows} == {pseudonym(key, f"u{a}")}
    assert set(rows[0]) == {"session", "t_ms", "person", "text"}


async def test_only_the_creator_sees_a_room_and_bad_costs_are_refused(scripted):
    app, base, creator, (a, b, c, d) = scripted
    other = await Api.sign_up(base, "creator")
    for path in ("/api/creator/insight/rooms/maths", f"/api/creator/insight/rooms/maths/sessions/{BROADCAST}",
                 "/api/creator/insight/rooms/maths/export/events.csv", "/api/creator/insight/rooms/maths/costs"):
        status, body = await other.get(path)
        assert (status, body["error"]["code"]) == (404, "room_not_found"), path
        status, body = await a.get(path)
        assert (status, body["error"]["code"]) == (403, "not_a_creator"), path
        assert (await Api(base).get(path))[0] == 401
    assert (await creator.get("/api/creator/insight/rooms/maths/export/secrets.csv"))[1]["error"]["code"] == "unknown_export"
    assert (await creator.get("/api/creator/insight/rooms/maths/sessions/ffff"))[1]["error"]["code"] == "session_not_found"
    for bad, code in (({"category": "lunch", "amount": 5}, "invalid_category"),
                      ({"category": "other", "amount": 0}, "invalid_amount"),
                      ({"category": "other", "amount": 1.5}, "invalid_amount"),
                      ({"category": "other", "amount": 5, "note": "x" * 201}, "invalid_note"),
                      ({"category": "other", "amount": 5, "room": "x"}, "unexpected_field")):
        status, body = await creator.post("/api/creator/insight/rooms/maths/costs", bad)
        assert (status, body["error"]["code"]) == (400, code), bad
    status, body = await creator.get("/api/creator/insight/rooms/maths/costs")
    assert [c["amount"] for c in body["costs"]] == [1000, 500]
