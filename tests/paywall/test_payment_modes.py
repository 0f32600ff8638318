"""Test-mode payments are never silent: a warning at start, "test mode" on the room and
checkout pages, and a server with an https ``PUBLIC_URL`` refuses to start with the dev
provider unless it was asked for explicitly."""

from __future__ import annotations

import logging
import secrets
import subprocess
import sys

import pytest

from stagepass.app import create_app
from core.settings import ConfigError, Settings
from tests.support.paywall_fixtures import Api, paid_room, paywall_settings

pytestmark = pytest.mark.inprocess

HTTPS = {"STAGEPASS_PUBLIC_URL": "https://live.example.org"}


def test_https_deployment_needs_an_explicit_payment_provider(tmp_path):
    with pytest.raises(ConfigError, match="payment_provider: PUBLIC_URL is https"):
        Settings.load([], {**HTTPS})
    with pytest.raises(ConfigError, match="payment_provider"):
        Settings.load(["--public-url", "https://live.example.org"], {})
    assert Settings.load([], {**HTTPS, "STAGEPASS_PAYMENT_PROVIDER": "dev"}).paywall.test_mode_payments
    assert Settings.load(["--payment-provider", "dev"], HTTPS).paywall.test_mode_payments
    stripe = Settings.load([], {**HTTPS, "STAGEPASS_PAYMENT_PROVIDER": "stripe", "STAGEPASS_STRIPE_API_KEY": "sk_x",
                                "STAGEPASS_STRIPE_WEBHOOK_SECRET": "whsec_x"})
    assert not stripe.paywall.test_mode_payments
    # a laptop (no PUBLIC_URL, or plain http) keeps the dev default
    assert Settings.load([], {}).paywall.test_mode_payments
    assert Settings.load([], {"STAGEPASS_PUBLIC_URL": "http://192.168.1.5:8080"}).paywall.test_mode_payments


def test_serve_refuses_to_start_in_silent_test_mode(tmp_path):
    r = subprocess.run([sys.executable, "-m", "stagepass.cli", "serve", "--data-dir", str(tmp_path),
                        "--public-url", "https://live.example.org"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert "invalid configuration: payment_provider" in r.stderr and "STAGEPASS_PAYMENT_PROVIDER=dev" in r.stderr


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_test_mode_is_logged_and_shown(aiohttp_server, tmp_path, database_url, caplog):
    caplog.set_level(logging.WARNING, logger="stagepass.paywall")
    app = create_app(paywall_settings(tmp_path, database_url))
    base = str((await aiohttp_server(app)).make_url("")).rstrip("/")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "TEST MODE" in r.getMessage()]
    assert len(warnings) == 1 and "STAGEPASS_PAYMENT_PROVIDER=stripe" in warnings[0].getMessage()
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator)
    viewer = await Api.sign_up(base)
    status, body = await viewer.get("/api/catalog/maths")
    assert status == 200 and body["test_mode"] is True
    status, resp = await viewer.post("/api/orders", {"room": "maths", "product": "ticket",
                                                     "idempotency_key": secrets.token_hex(8)})
    status, page = await viewer.get(f"/pay/dev/{resp['order']['id']}")
    assert status == 200 and "TEST MODE" in page and "no money moves" in page
