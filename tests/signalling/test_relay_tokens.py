"""Relay tokens: what one node shows another to pull a room, and what the door does with them."""

from __future__ import annotations

import time

import pytest

from core.access import Grant, Refusal, StreamKeyAccess, Target
from signalling.relay_tokens import RelayDoor, RelayTokens

SECRET = "r" * 40

pytestmark = pytest.mark.unit


def test_a_token_names_its_room_and_node_and_expires():
    tokens = RelayTokens(SECRET)
    token = tokens.issue("maths", "node-b", ttl=30)
    assert tokens.verify(token, "maths") == "node-b"
    with pytest.raises(Refusal) as other_room:
        tokens.verify(token, "physics")
    assert other_room.value.status == 403 and "'maths'" in other_room.value.message
    with pytest.raises(Refusal) as expired:
        tokens.verify(token, "maths", now=time.time() + 31)
    assert expired.value.status == 401 and "expired" in expired.value.message


@pytest.mark.parametrize("forge", [
    lambda t: RelayTokens("x" * 40).issue("maths", "node-b"),  # another deployment's secret
    lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),  # signature changed
    lambda t: t.replace(t.split(".")[1], RelayTokens(SECRET).issue("physics", "node-b").split(".")[1]),  # body swapped
    lambda t: "relay.",
    lambda t: "relay.garbage.with.dots",
])
def test_a_forged_token_is_refused(forge):
    tokens = RelayTokens(SECRET)
    with pytest.raises(Refusal) as refused:
        tokens.verify(forge(tokens.issue("maths", "node-b")), "maths")
    assert refused.value.status == 401


async def test_the_door_grants_relays_viewing_only_and_passes_other_tokens_on():
    tokens = RelayTokens(SECRET)
    door = RelayDoor(StreamKeyAccess({"maths": "maths-stream-key"}), tokens)
    token = tokens.issue("maths", "node-b")
    assert await door.authorize(token, "view", Target("maths")) == Grant(relay=True)
    with pytest.raises(Refusal) as publish:
        await door.authorize(token, "publish", Target("maths"))
    assert publish.value.status == 403 and publish.value.code == "relay_views_only"
    with pytest.raises(Refusal) as unknown:
        await door.authorize(tokens.issue("physics", "node-b"), "view", Target("physics"))
    assert unknown.value.status == 404
    assert await door.authorize("maths-stream-key", "publish", Target("maths")) == Grant()  # the ordinary door
    assert await door.authorize(None, "view", Target("maths")) == Grant()
    assert await door.room_exists("maths") and not await door.room_exists("physics")
