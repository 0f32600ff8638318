"""The server speaks the request's language: API errors by Accept-Language or the user's
cookie, and the pages' catalogue."""

from __future__ import annotations

import aiohttp
import pytest

from stagepass.app import create_app
from tests.support.pass_fixtures import monthly_plan, start_pass
from tests.support.paywall_fixtures import Api, paid_room, paywall_settings

pytestmark = pytest.mark.inprocess

ZH = {"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}


@pytest.fixture
async def base(aiohttp_server, tmp_path):
    server = await aiohttp_server(create_app(paywall_settings(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}")))
    return str(server.make_url("")).rstrip("/")


async def _get(url: str, headers: dict, cookies: dict | None = None) -> tuple[int, dict, aiohttp.typedefs.LooseHeaders]:
    async with aiohttp.ClientSession(cookies=cookies) as http:
        async with http.get(url, headers=headers) as r:
            return r.status, await r.json(), r.headers


async def test_an_api_error_is_answered_in_chinese(base):
    status, body, headers = await _get(f"{base}/api/catalog/no-such-room", ZH)
    assert status == 404
    assert body["error"]["code"] == "room_not_found"
    assert body["error"]["message"] == "找不到该直播间。"
    assert "no-such-room" in body["error"]["detail"]  # the server's own words stay, for developers
    assert headers["Content-Language"] == "zh-CN"

    status, body, headers = await _get(f"{base}/api/catalog/no-such-room", {"Accept-Language": "en-US,en;q=0.9"})
    assert status == 404 and body == {"error": {"code": "room_not_found", "message": "no room named 'no-such-room'"}}
    # the language the user picked in the pages wins over the browser's
    status, body, _ = await _get(f"{base}/api/catalog/no-such-room", ZH, cookies={"stagepass_lang": "en"})
    assert body["error"]["message"] == "no room named 'no-such-room'"


async def test_a_refused_sign_up_in_chinese_changes_nothing(base):
    api = Api(base)
    status, body = await api.post("/api/auth/signup", {"email": "li@example.org", "password": "short",
                                                      "display_name": "Li", "role": "viewer"}, headers=ZH)
    assert status == 400 and body["error"] == {"code": "weak_password", "message": "密码须为 8 到 256 个字符。",
                                               "detail": body["error"]["detail"]}
    status, body = await api.post("/api/auth/login", {"email": "li@example.org", "password": "short"}, headers=ZH)
    assert status == 401 and body["error"]["message"] == "邮箱或密码错误。"


async def test_the_pages_catalogue_follows_the_browser_then_the_choice(base):
    status, body, headers = await _get(f"{base}/i18n/catalogue.json", ZH)
    assert status == 200 and body["lang"] == "zh-CN" and body["supported"] == ["en", "zh-CN"]
    assert body["messages"]["room.buy_ticket"] == "购买门票"
    assert "Accept-Language" in headers["Vary"]
    status, body, _ = await _get(f"{base}/i18n/catalogue.json?lang=en", ZH)
    assert body["lang"] == "en" and body["messages"]["room.buy_ticket"] == "Buy ticket"
    status, body, _ = await _get(f"{base}/i18n/catalogue.json", {}, cookies={"stagepass_lang": "zh-CN"})
    assert body["lang"] == "zh-CN"


@pytest.mark.parametrize("query, code", [("lang=fr", "invalid_query"), ("lang=zh-CN&x=1", "unexpected_parameter")])
async def test_a_bad_catalogue_request_is_refused(base, query, code):
    status, body, _ = await _get(f"{base}/i18n/catalogue.json?{query}", ZH)
    assert status == 400 and body["error"]["code"] == code


async def test_the_test_checkout_page_speaks_chinese(base):
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator, slug="maths")
    viewer = await Api.sign_up(base)
    status, body = await viewer.post("/api/orders", {"room": "maths", "product": "ticket", "idempotency_key": "k" * 12})
    assert status == 201, body
    status, page = await viewer.get(f"/pay/dev/{body['order']['id']}", headers=ZH)
    assert status == 200 and '<html lang="zh-CN">' in page
    assert "测试模式" in page and "确认付款" in page and "支付 9.90 USD" in page and "maths 的门票" in page
    status, page = await viewer.get(f"/pay/dev/{body['order']['id']}", headers={"Accept-Language": "en"})
    assert "TEST MODE" in page and "Confirm payment" in page


async def test_the_test_checkout_page_of_a_subscription_says_its_period_in_both_languages(base):
    creator = await Api.sign_up(base, "creator")
    await monthly_plan(creator, 1500)
    viewer = await Api.sign_up(base)
    sub = await start_pass(viewer, kind="subscription", creator=creator.user["id"], interval="month")
    status, page = await viewer.get(f"/pay/dev/passes/{sub['id']}", headers=ZH)
    assert status == 200 and '<html lang="zh-CN">' in page
    assert "测试模式" in page and "支付 15.00 USD/月" in page and f"订阅创作者 {creator.user['id']} 的全部课程" in page
    status, page = await viewer.get(f"/pay/dev/passes/{sub['id']}", headers={"Accept-Language": "en"})
    assert "Pay 15.00 USD a month" in page and f"(pass {sub['id']})" in page and "Confirm payment" in page
