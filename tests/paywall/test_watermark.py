"""The per-viewer watermark: on for paid rooms unless the creator turns it off, with the
viewer's masked id; never for free rooms, visitors or the creator."""

from __future__ import annotations

import pytest

from paywall.accounts import UserView
from paywall.watermark import masked_id
from tests.support.paywall_fixtures import Api, buy, paid_room

pytestmark = pytest.mark.inprocess


@pytest.mark.parametrize("email, masked", [
    ("alice@example.org", "#7 al***@ex***.org"),
    ("a@b.cn", "#7 a***@b***.cn"),
    ("li.wei@mail.school.edu.cn", "#7 li***@ma***.cn"),
])
def test_the_masked_id_hides_the_email(email, masked):
    assert masked_id(UserView(7, email, "X", "viewer")) == masked


async def test_paid_rooms_watermark_each_viewer_until_the_creator_turns_it_off(paywall_app):
    base, _ = paywall_app
    creator = await Api.sign_up(base, "creator")
    room = await paid_room(creator, slug="maths")
    assert room["room"]["watermark"] is True  # on by default
    viewer = await Api.sign_up(base, email="viewer.one@example.org")
    await buy(viewer, "maths")

    status, body = await viewer.get("/api/catalog/maths")
    assert status == 200 and body["watermark"] == {"label": f"#{viewer.user['id']} vi***@ex***.org"}
    assert (await creator.get("/api/catalog/maths"))[1]["watermark"] is None
    assert (await Api(base).get("/api/catalog/maths"))[1].get("watermark") is None

    status, body = await creator.patch("/api/rooms/maths", {"watermark": "off"})
    assert status == 400 and body["error"]["code"] == "invalid_flag"
    assert (await viewer.get("/api/catalog/maths"))[1]["watermark"] is not None  # nothing changed
    status, body = await viewer.patch("/api/rooms/maths", {"watermark": False})
    assert status in (403, 404)
    assert (await viewer.get("/api/catalog/maths"))[1]["watermark"] is not None

    status, body = await creator.patch("/api/rooms/maths", {"watermark": False})
    assert status == 200 and body["room"]["watermark"] is False
    assert (await viewer.get("/api/catalog/maths"))[1]["watermark"] is None

    await paid_room(creator, slug="open-day", ticket_price=0, replay_price=None)
    assert (await viewer.get("/api/catalog/open-day"))[1]["watermark"] is None  # free: nothing to protect
