"""Cross-site requests with the login cookie are refused (403 ``cross_site_request``) and
change nothing; same-origin pages, bearer clients and the Stripe webhook are unaffected."""

from __future__ import annotations

import pytest

from paywall.http import PAYWALL
from tests.support.paywall_fixtures import Api, creator_and_viewer, paid_room, pending_order

pytestmark = [pytest.mark.inprocess, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]

EVIL = "https://evil.example"


def cookie(api: Api, **headers: str) -> dict:
    return {"Cookie": f"stagepass_session={api.token}", **headers}


async def key_of(app, creator: Api) -> str:
    user = await app[PAYWALL].accounts.get(creator.user["id"])
    return await app[PAYWALL].catalog.stream_key(user, "maths")


async def test_cross_site_rotation_of_a_stream_key_is_refused(paywall_app):
    base, app = paywall_app
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator)
    key = await key_of(app, creator)
    for headers in ({"Origin": EVIL}, {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"},
                    {"Origin": "null"}, {"Origin": EVIL, "Sec-Fetch-Site": "cross-site"}):
        status, body = await creator.call("POST", "/api/rooms/maths/stream-key", headers=cookie(creator, **headers),
                                          token=None)
        assert (status, body["error"]["code"]) == (403, "cross_site_request"), headers
    assert await key_of(app, creator) == key
    # cross-site sign-up / log-in (login CSRF) are refused too
    status, body = await Api(base).call("POST", "/api/auth/login", body={"email": creator.user["email"],
                                        "password": "correct horse battery"}, headers={"Origin": EVIL})
    assert (status, body["error"]["code"]) == (403, "cross_site_request")

    # the same origin (the studio page), a browser's navigation and non-browser clients work
    for headers in ({"Origin": base}, {"Origin": base, "Sec-Fetch-Site": "same-origin"},
                    {"Sec-Fetch-Site": "same-origin"}, {}):
        status, body = await creator.call("POST", "/api/rooms/maths/stream-key", headers=cookie(creator, **headers),
                                          token=None)
        assert status == 200, (headers, body)
        assert body["stream_key"] == await key_of(app, creator) != key
        key = body["stream_key"]
    # bearer clients are unaffected by Origin (no cookie is involved)
    status, body = await creator.call("POST", "/api/rooms/maths/stream-key", headers={"Origin": EVIL})
    assert status == 200 and body["stream_key"] != key
    # reads stay open cross-site (they change nothing)
    status, _ = await creator.call("GET", "/api/rooms/maths/stream-key", headers=cookie(creator, Origin=EVIL),
                                   token=None)
    assert status == 200


async def test_cross_site_form_cannot_confirm_a_dev_checkout(paywall_app):
    base, app = paywall_app
    creator, viewer = await creator_and_viewer(base)
    order = (await pending_order(viewer))["id"]
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    status, body = await viewer.call("POST", f"/pay/dev/{order}", raw=b"action=confirm&return=/",
                                     headers=cookie(viewer, Origin=EVIL, **form), token=None)
    assert (status, body["error"]["code"]) == (403, "cross_site_request")
    assert (await viewer.get(f"/api/orders/{order}"))[1]["order"]["status"] == "pending"
    status, _ = await viewer.call("POST", f"/pay/dev/{order}", raw=b"action=confirm&return=/",
                                  headers=cookie(viewer, Origin=base, **form), token=None)
    assert status == 200  # back to the catalog
    assert (await viewer.get(f"/api/orders/{order}"))[1]["order"]["status"] == "paid"


async def test_public_url_is_the_expected_origin(aiohttp_server, tmp_path, database_url):
    """Behind a TLS proxy the browser's Origin is the public https address."""
    from stagepass.app import create_app
    from tests.support.paywall_fixtures import paywall_settings

    app = create_app(paywall_settings(tmp_path, database_url, public_url="https://live.example.org",
                                      payment_provider="dev"))
    base = str((await aiohttp_server(app)).make_url("")).rstrip("/")
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator)
    status, _ = await creator.call("POST", "/api/rooms/maths/stream-key",
                                   headers=cookie(creator, Origin="https://live.example.org"), token=None)
    assert status == 200
    status, body = await creator.call("POST", "/api/rooms/maths/stream-key",
                                      headers=cookie(creator, Origin="http://live.example.org"), token=None)
    assert (status, body["error"]["code"]) == (403, "cross_site_request")


async def test_sec_fetch_site_decides_behind_a_proxy_without_public_url(paywall_app):
    """A TLS proxy and no STAGEPASS_PUBLIC_URL: the browser's Origin (https) is not the
    request's scheme (http), but Sec-Fetch-Site, which pages cannot forge, says same-origin."""
    base, app = paywall_app
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator)
    proxied = "https://" + base.split("://", 1)[1]
    status, _ = await creator.call("POST", "/api/rooms/maths/stream-key", token=None,
                                   headers=cookie(creator, Origin=proxied, **{"Sec-Fetch-Site": "same-origin"}))
    assert status == 200
    status, body = await creator.call("POST", "/api/rooms/maths/stream-key", token=None,
                                      headers=cookie(creator, Origin=proxied, **{"Sec-Fetch-Site": "same-site"}))
    assert (status, body["error"]["code"]) == (403, "cross_site_request")
