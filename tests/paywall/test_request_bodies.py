"""Every request body goes through one reader: bad JSON is 400 ``bad_json``, an oversized
body 413 ``body_too_large``, both in the ``{"error": {...}}`` envelope, and nothing changes."""

from __future__ import annotations

import pytest

from tests.support.paywall_fixtures import Api, creator_and_viewer, pending_order

pytestmark = [pytest.mark.inprocess, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]

JSON = {"Content-Type": "application/json"}
HUGE_NUMBER = b'{"email": "a@example.org", "password": ' + b"7" * 5000 + b"}"  # int() refuses > 4300 digits
DEEP_ARRAYS = b"[" * 5000 + b"]" * 5000  # RecursionError in json.loads
BROKEN = b'{"email": '
NOT_UTF8 = b'{"email": "\xff\xfe"}'


async def _bad_bodies(api: Api, path: str, method: str = "POST") -> None:
    for raw in (HUGE_NUMBER, DEEP_ARRAYS, BROKEN, NOT_UTF8):
        status, body = await api.call(method, path, raw=raw, headers=JSON)
        assert status == 400, (path, raw[:20], status, body)
        assert body["error"]["code"] == "bad_json", (path, body)
    status, body = await api.call(method, path, raw=b"[1, 2]", headers=JSON)
    assert (status, body["error"]["code"]) == (400, "bad_json"), (path, body)


async def test_bad_json_is_400_on_every_json_endpoint(paywall_app):
    base, app = paywall_app
    creator, viewer = await creator_and_viewer(base)
    order = (await pending_order(viewer))["id"]
    await _bad_bodies(Api(base), "/api/auth/login")
    await _bad_bodies(Api(base), "/api/auth/signup")
    await _bad_bodies(viewer, "/api/orders")
    await _bad_bodies(viewer, f"/pay/dev/{order}")
    await _bad_bodies(viewer, "/api/rooms/maths/tokens")
    await _bad_bodies(creator, "/api/rooms")
    await _bad_bodies(creator, "/api/rooms/maths", method="PATCH")
    await _bad_bodies(creator, "/api/rooms/maths/coupons")
    await _bad_bodies(creator, "/api/admin/payouts")
    # nothing changed: the order is still pending, no second room, login still works
    assert (await viewer.get(f"/api/orders/{order}"))[1]["order"]["status"] == "pending"
    assert [r["slug"] for r in (await Api(base).get("/api/catalog"))[1]["rooms"]] == ["maths"]
    status, _ = await Api(base).post("/api/auth/login", {"email": viewer.user["email"],
                                                         "password": "correct horse battery"})
    assert status == 200


async def test_oversized_bodies_are_413_in_the_error_envelope(paywall_app):
    base, app = paywall_app
    creator, viewer = await creator_and_viewer(base)
    order = (await pending_order(viewer))["id"]
    big_json = b'{"email": "' + b"a" * 200_000 + b'"}'
    for api, path in [(Api(base), "/api/auth/signup"), (Api(base), "/api/auth/login"),
                      (viewer, "/api/orders"), (viewer, f"/pay/dev/{order}"), (creator, "/api/rooms")]:
        status, body = await api.call("POST", path, raw=big_json, headers=JSON)
        assert status == 413 and isinstance(body, dict), (path, status, body)
        assert body["error"]["code"] == "body_too_large", (path, body)
    # a form too large for the dev checkout: the same answer, and the order stays pending
    form = b"action=confirm&return=/" + b"x" * 200_000
    status, body = await viewer.call("POST", f"/pay/dev/{order}", raw=form,
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 413 and body["error"]["code"] == "body_too_large"
    assert (await viewer.get(f"/api/orders/{order}"))[1]["order"]["status"] == "pending"
