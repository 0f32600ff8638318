"""``GET /api/catalog?q=``: full-text search in the database (SQLite FTS5, PostgreSQL
tsvector), ranked, kept up to date as rooms change; on both engines."""

from __future__ import annotations

import pytest

from tests.support.paywall_fixtures import Api, paid_room

pytestmark = pytest.mark.inprocess

ROOMS = [
    dict(slug="algebra-1", title="Algebra for beginners", tags=["maths"], description="Equations, step by step."),
    dict(slug="physics", title="Physics of waves", tags=["science", "physics"],
         description="Sound and light; a little algebra on the way."),
    dict(slug="guitar", title="Guitar evening", tags=["music"], description="Chords and strumming."),
    dict(slug="linear", title="Linear algebra II", tags=["maths", "algebra"], description="Matrices."),
]


async def search(base: str, q: str) -> list[str]:
    status, body = await Api(base).get(f"/api/catalog?q={q}")
    assert status == 200, body
    return [r["slug"] for r in body["rooms"]]


async def test_search_is_ranked_and_follows_edits(paywall_app):
    base, app = paywall_app
    creator = await Api.sign_up(base, "creator")
    for room in ROOMS:
        await paid_room(creator, **room)

    # title and tag matches first, a mention in a description last; description-only found too
    found = await search(base, "algebra")
    assert set(found) == {"algebra-1", "physics", "linear"}
    assert found[-1] == "physics"  # only its description mentions it
    # prefixes, any case, every word must match, punctuation is not syntax
    assert await search(base, "ALG") == found
    assert await search(base, "algebra%20matrices") == ["linear"]
    assert await search(base, "strum") == ["guitar"]
    assert await search(base, "%23music") == ["guitar"]  # "#music"
    assert await search(base, "guitar%20algebra") == []
    for hostile in ('%22algebra%22%20OR%20*', "a%27%20%7C%20b:*", "NEAR(algebra", "algebra)%20%26!"):
        status, body = await Api(base).get(f"/api/catalog?q={hostile}")
        assert status == 200, (hostile, body)
    assert await search(base, "%22%22") == []
    # an edit is searchable at once, and the old words are gone
    status, _ = await creator.patch("/api/rooms/guitar", {"title": "Ukulele evening", "description": "Fun."})
    assert status == 200
    assert await search(base, "guitar") == ["guitar"]  # still the slug
    assert await search(base, "strumming") == []
    assert await search(base, "ukulele") == ["guitar"]
    # no q: the whole catalog; a query too long is refused
    status, body = await Api(base).get("/api/catalog?q=")
    assert [r["slug"] for r in body["rooms"]] == [r["slug"] for r in ROOMS]
    status, body = await Api(base).get("/api/catalog?q=" + "a" * 201)
    assert (status, body["error"]["code"]) == (400, "invalid_query")
