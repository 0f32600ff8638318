"""Paywall rules and attacks, through the HTTP API, on SQLite and PostgreSQL."""

import asyncio
import base64
import json
import secrets
import time

import aiohttp
import jwt
import pytest

from tests.support.paywall_fixtures import Api, admin_of, buy, paid_room, view_token
from tests.support.whip_offers import make_offer

pytestmark = pytest.mark.inprocess


async def whep(api: Api, room: str, token) -> int:
    offer = await make_offer(direction="recvonly")
    status, _ = await api.call("POST", f"/whep/{room}", raw=offer.encode(),
                               headers={"Content-Type": "application/sdp"}, token=token)
    return status


async def test_idempotent_orders_and_double_clicks(paywall_app):
    base, app = paywall_app
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator)
    viewer = await Api.sign_up(base)
    order = {"room": "maths", "product": "ticket", "idempotency_key": "click-123456"}
    results = await asyncio.gather(*(viewer.post("/api/orders", order) for _ in range(5)))
    ids = {body["order"]["id"] for _, body in results}
    assert len(ids) == 1
    assert sorted(status for status, _ in results).count(201) == 1
    status, body = await viewer.post("/api/orders", {**order, "product": "replay"})
    assert (status, body["error"]["code"]) == (409, "idempotency_key_reused")
    # confirming twice does not pay twice
    oid = ids.pop()
    assert (await viewer.post(f"/pay/dev/{oid}", {"action": "confirm"}))[0] == 200
    status, body = await viewer.post(f"/pay/dev/{oid}", {"action": "confirm"})
    assert (status, body["error"]["code"]) == (409, "not_pending")
    admin = await admin_of(base, app)
    status, ledger = await admin.get("/api/admin/ledger")
    assert ledger["balanced"] and {a["account"]: a["balance"] for a in ledger["accounts"]} == {
        "cash:dev": 990, "platform:fees": -99, f"creator:{creator.user['id']}": -891}
    # already owned
    status, body = await viewer.post("/api/orders", {**order, "idempotency_key": "another-key-1"})
    assert (status, body["error"]["code"]) == (409, "already_owned")


async def test_coupons_are_race_free_and_once_per_user(paywall_app):
    base, app = paywall_app
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator)
    status, body = await creator.post("/api/rooms/maths/coupons", {"code": "HALF", "kind": "percent", "value": 50, "max_uses": 2})
    assert status == 201
    buyers = [await Api.sign_up(base) for _ in range(5)]

    async def attempt(b):
        return await b.post("/api/orders", {"room": "maths", "product": "ticket", "coupon": "half",
                                            "idempotency_key": secrets.token_hex(8)})

    results = await asyncio.gather(*(attempt(b) for b in buyers))
    ok = [body for status, body in results if status == 201]
    refused = [body["error"]["code"] for status, body in results if status != 201]
    assert len(ok) == 2 and refused == ["coupon_exhausted"] * 3
    assert all(o["order"]["amount"] == 495 for o in ok)
    # the same user cannot use it twice (after a decline it comes back)
    winner = buyers[[s for s, _ in results].index(201)]
    oid = [b for s, b in results if s == 201][0]["order"]["id"]
    status, body = await winner.post("/api/orders", {"room": "maths", "product": "replay", "coupon": "HALF",
                                                     "idempotency_key": secrets.token_hex(8)})
    assert status == 409 and body["error"]["code"] in ("coupon_used", "coupon_exhausted")
    assert (await winner.post(f"/pay/dev/{oid}", {"action": "decline"}))[0] == 200
    loser = buyers[[s for s, _ in results].index(409)]
    status, body = await attempt(loser)
    assert status == 201, body  # the declined order gave its use back
    # expired and unknown coupons
    await creator.post("/api/rooms/maths/coupons", {"code": "OLD", "kind": "fixed", "value": 100,
                                                    "expires_at": "2020-01-01T00:00:00Z"})
    fresh = await Api.sign_up(base)
    status, body = await fresh.post("/api/orders", {"room": "maths", "product": "ticket", "coupon": "OLD", "idempotency_key": "k-old-0001"})
    assert (status, body["error"]["code"]) == (410, "coupon_expired")
    status, body = await fresh.post("/api/orders", {"room": "maths", "product": "ticket", "coupon": "NOPE", "idempotency_key": "k-nope-001"})
    assert (status, body["error"]["code"]) == (404, "coupon_not_found")
    # a coupon worth the whole price: paid at once, no checkout
    await creator.post("/api/rooms/maths/coupons", {"code": "FREE", "kind": "fixed", "value": 5000})
    status, body = await fresh.post("/api/orders", {"room": "maths", "product": "ticket", "coupon": "FREE", "idempotency_key": "k-free-001"})
    assert status == 201 and body["order"]["status"] == "paid" and body["order"]["amount"] == 0
    await view_token(fresh, "maths")


async def test_other_peoples_orders_are_invisible(paywall_app):
    base, app = paywall_app
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator)
    alice, mallory = await Api.sign_up(base), await Api.sign_up(base)
    order = await buy(alice, "maths")
    assert (await mallory.get(f"/api/orders/{order['id']}"))[0] == 404
    assert (await mallory.post(f"/pay/dev/{order['id']}", {"action": "decline"}))[0] == 404
    assert (await mallory.post(f"/api/orders/{order['id']}/refund"))[0] == 404
    status, body = await alice.post(f"/api/orders/{order['id']}/refund")
    assert status == 403  # buyers ask the creator
    assert (await creator.get(f"/api/orders/{order['id']}"))[0] == 200
    assert (await mallory.patch("/api/rooms/maths", {"ticket_price": 1}))[0] == 403
    assert (await mallory.get("/api/rooms/maths/stream-key"))[0] == 403
    assert (await Api(base).get(f"/api/orders/{order['id']}"))[0] == 401


@pytest.mark.parametrize(
    "body,code",
    [
        ({"product": "tip", "amount": -5}, "invalid_amount"),
        ({"product": "tip", "amount": 10**12}, "invalid_amount"),
        ({"product": "tip", "amount": 9.99}, "invalid_amount"),
        ({"product": "tip", "amount": "100"}, "invalid_amount"),
        ({"product": "ticket", "amount": 1}, "unexpected_amount"),
        ({"product": "movie"}, "invalid_product"),
        ({"product": "ticket", "idempotency_key": "short"}, "invalid_idempotency_key"),
        ({"product": "ticket", "room": "nowhere"}, "room_not_found"),
    ],
)
async def test_bad_orders_change_nothing(paywall_app, body, code):
    base, app = paywall_app
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator)
    viewer = await Api.sign_up(base)
    full = {"room": "maths", "idempotency_key": "key-12345678", **body}
    status, resp = await viewer.post("/api/orders", full)
    assert status in (400, 404) and resp["error"]["code"] == code
    status, resp = await viewer.post("/api/orders", {"room": "maths", "product": "ticket", "idempotency_key": "key-12345678"})
    assert status == 201  # the key was not consumed by the refused request


async def test_malformed_requests(paywall_app):
    base, app = paywall_app
    api = Api(base)
    status, body = await api.call("POST", "/api/auth/signup", raw=b"{not json", headers={"Content-Type": "application/json"})
    assert (status, body["error"]["code"]) == (400, "bad_json")
    status, body = await api.call("POST", "/api/auth/signup", raw=b"[]", headers={"Content-Type": "application/json"})
    assert status == 400
    status, body = await api.call("POST", "/api/auth/signup", raw=b"email=x", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 415
    status, body = await api.post("/api/auth/signup", {"email": "nope", "password": "long enough pw"})
    assert body["error"]["code"] == "invalid_email"
    status, body = await api.post("/api/auth/signup", {"email": "a@b.org", "password": "short"})
    assert body["error"]["code"] == "weak_password"
    status, body = await api.post("/api/auth/signup", {"email": "a@b.org", "password": "long enough pw", "role": "admin"})
    assert body["error"]["code"] == "invalid_role"  # nobody signs up as admin
    creator = await Api.sign_up(base, "creator")
    for bad, code in [
        ({"slug": "Bad Slug!", "title": "t", "currency": "USD"}, "invalid_slug"),
        ({"slug": "ok", "title": "t", "currency": "XXX"}, "unknown_currency"),
        ({"slug": "ok", "title": "t", "currency": "USD", "ticket_price": -1}, "invalid_amount"),
        ({"slug": "ok", "title": "t", "currency": "USD", "ticket_price": 1.5}, "invalid_amount"),
        ({"slug": "ok", "title": "t", "currency": "USD", "max_devices": 0}, "invalid_devices"),
        ({"slug": "ok", "title": "t", "currency": "USD", "owner": 1}, "unknown_field"),
        ({"slug": "ok", "currency": "USD"}, "missing_field"),
    ]:
        status, body = await creator.post("/api/rooms", bad)
        assert status == 400 and body["error"]["code"] == code, (bad, body)
    status, body = await creator.get("/api/catalog")
    assert body["rooms"] == []
    viewer = await Api.sign_up(base)
    status, body = await viewer.post("/api/rooms", {"slug": "mine", "title": "t", "currency": "USD"})
    assert (status, body["error"]["code"]) == (403, "not_a_creator")


async def test_login_logout_and_rate_limit(paywall_app):
    base, app = paywall_app
    user = await Api.sign_up(base, email="learner@example.org")
    assert (await user.get("/api/me"))[1]["user"]["email"] == "learner@example.org"
    api = Api(base)
    for _ in range(5):
        status, body = await api.post("/api/auth/login", {"email": "learner@example.org", "password": "wrong password"})
        assert status == 401 and body["error"]["code"] == "bad_credentials"
    status, body = await api.post("/api/auth/login", {"email": "learner@example.org", "password": "correct horse battery"})
    assert status == 429 and body["error"]["code"] == "too_many_attempts"
    other = await Api.sign_up(base, email="other@example.org")
    assert (await other.call("POST", "/api/auth/logout"))[0] == 204
    assert (await other.get("/api/me"))[0] == 401


async def test_forged_expired_revoked_and_misscoped_tokens(paywall_app):
    base, app = paywall_app
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator)
    await paid_room(creator, slug="physics")
    viewer = await Api.sign_up(base)
    order = await buy(viewer, "maths")
    good = await view_token(viewer, "maths")
    claims = jwt.decode(good, options={"verify_signature": False})

    def b64(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    none_alg = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."
    wrong_key = jwt.encode(claims, "x" * 40, algorithm="HS256")
    expired = jwt.encode({**claims, "exp": int(time.time()) - 5}, "s" * 40, algorithm="HS256")
    assert await whep(viewer, "maths", good) == 201
    assert await whep(viewer, "maths", none_alg) == 401
    assert await whep(viewer, "maths", wrong_key) == 401
    assert await whep(viewer, "maths", expired) == 401
    assert await whep(viewer, "physics", good) == 403  # another room
    assert await whep(viewer, "maths", "garbage") == 401
    offer = await make_offer()
    status, _ = await viewer.call("POST", "/whip/maths", raw=offer.encode(), headers={"Content-Type": "application/sdp"}, token=good)
    assert status == 403  # a viewer's token does not publish
    # a viewer cannot mint a publish token
    status, body = await viewer.post("/api/rooms/maths/tokens", {"scope": "publish"})
    assert status == 403
    # a refund revokes at once, even an unexpired token
    await creator.post(f"/api/orders/{order['id']}/refund")
    assert await whep(viewer, "maths", good) == 403


async def test_session_cookie_flags_and_cookie_login(paywall_app):
    base, app = paywall_app
    import aiohttp

    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:  # IP host
        async with http.post(base + "/api/auth/signup", json={"email": "c@example.org", "password": "long enough pw"}) as r:
            cookie = r.headers["Set-Cookie"]
        assert "stagepass_session=" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
        assert "Secure" not in cookie  # plain http on loopback; set behind TLS
        async with http.get(base + "/api/me") as r:  # the cookie jar carries the login
            assert r.status == 200 and (await r.json())["user"]["email"] == "c@example.org"


async def test_free_rooms_bundles_and_replays(paywall_app):
    base, app = paywall_app
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator, slug="free-talk", ticket_price=0, replay_price=None)
    await paid_room(creator, slug="course", ticket_price=1000, replay_price=400)
    viewer = await Api.sign_up(base)
    # a free room needs only an account
    token = await view_token(viewer, "free-talk")
    assert await whep(viewer, "free-talk", token) == 201
    status, body = await viewer.post("/api/orders", {"room": "free-talk", "product": "ticket", "idempotency_key": "free-key-01"})
    assert (status, body["error"]["code"]) == (409, "free_room")
    # a bundle costs both and grants both
    order = await buy(viewer, "course", product="bundle")
    assert order["amount"] == 1400
    status, body = await viewer.get("/api/catalog/course")
    assert body["owned"] == ["replay", "ticket"]
    status, body = await viewer.post("/api/orders", {"room": "course", "product": "replay", "idempotency_key": "replay-key-1"})
    assert (status, body["error"]["code"]) == (409, "already_owned")
    # tips carry any valid amount and grant nothing
    tip = await buy(viewer, "course", product="tip", amount=250, message="thanks!")
    assert (tip["amount"], tip["message"]) == (250, "thanks!")
    admin = await admin_of(base, app)
    status, ledger = await admin.get("/api/admin/ledger")
    assert ledger["balanced"]
    assert {a["account"]: a["balance"] for a in ledger["accounts"]}["cash:dev"] == 1650


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_public_url_is_used_behind_a_proxy(aiohttp_server, tmp_path, database_url):
    """Behind a TLS proxy the request says http://127.0.0.1: STAGEPASS_PUBLIC_URL gives the
    address users know, for payment return URLs, the studio's WHIP URL and Secure cookies."""
    from stagepass.app import create_app
    from tests.support.paywall_fixtures import paywall_settings

    settings = paywall_settings(tmp_path, database_url, public_url="https://live.example.org/", payment_provider="dev")
    assert settings.server.public_url == "https://live.example.org"
    server = await aiohttp_server(create_app(settings))
    base = str(server.make_url("")).rstrip("/")
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/api/auth/signup", json={"email": "c@example.org", "password": "correct horse battery",
                                                              "display_name": "Creator", "role": "creator"}) as r:
            assert r.status == 201
            cookie = r.headers["Set-Cookie"]
            token = (await r.json())["token"]
    assert "Secure" in cookie and "HttpOnly" in cookie
    creator = Api(base, token)
    await paid_room(creator)
    assert (await creator.get("/api/rooms/maths/stream-key"))[1]["whip_url"] == "https://live.example.org/whip/maths"
    viewer = await Api.sign_up(base)
    status, body = await viewer.post("/api/orders", {"room": "maths", "product": "ticket", "idempotency_key": secrets.token_hex(8)})
    assert status == 201 and body["order"]["checkout_url"].startswith("https://live.example.org/pay/dev/")
