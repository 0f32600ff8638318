"""A password-hash cost below OWASP's recommendation for argon2id is accepted (the suite hashes
at the cheapest cost on purpose) but said once at start-up, naming the settings and the
recommendation; the defaults meet it and say nothing."""

from __future__ import annotations

import logging

import pytest

from paywall.passwords import weak_cost_warning
from paywall.service import Paywall
from stagepass.app import create_app
from tests.support.password_costs import DEFAULT_ARGON2
from tests.support.paywall_fixtures import paywall_settings

pytestmark = pytest.mark.inprocess


@pytest.mark.parametrize("time_cost,memory_kib,weak", [
    (3, 65536, False),  # the defaults
    (1, 47104, False), (2, 19456, False), (3, 12288, False), (4, 9216, False), (5, 7168, False), (20, 7168, False),
    (1, 47103, True), (2, 19455, True), (4, 9215, True), (20, 7167, True),
    (1, 1024, True),  # the test suite's
])
def test_owasp_argon2id_pairs(time_cost, memory_kib, weak):
    assert (weak_cost_warning(time_cost, memory_kib) is not None) == weak


def weak_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and r.name == "stagepass.paywall" and "ARGON2" in r.getMessage()]


async def test_a_weak_cost_is_warned_once_at_start_up(aiohttp_server, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="stagepass.paywall")
    await aiohttp_server(create_app(paywall_settings(tmp_path, f"sqlite:///{tmp_path / 'p.db'}")))
    assert weak_warnings(caplog) == [
        "WEAK PASSWORD HASHES: STAGEPASS_ARGON2_TIME_COST=1 with STAGEPASS_ARGON2_MEMORY_KIB=1024 is below "
        "OWASP's recommendation for argon2id (memory with time cost: 46 MiB with 1, 19 MiB with 2, 12 MiB with 3, "
        "9 MiB with 4, 7 MiB with 5 or more passes); a leaked database's passwords are cheap to guess. The "
        "defaults (3 passes, 65536 KiB) meet it"]


@pytest.mark.parametrize("setup", ["the default costs", "an interaction worker"])
async def test_no_warning_at_the_default_cost_nor_from_a_worker(tmp_path, caplog, setup):
    caplog.set_level(logging.WARNING, logger="stagepass.paywall")
    costs = DEFAULT_ARGON2 if setup == "the default costs" else {}
    paywall = await Paywall.open(paywall_settings(tmp_path, f"sqlite:///{tmp_path / 'p.db'}", **costs),
                                 worker=setup == "an interaction worker")
    await paywall.close()
    assert weak_warnings(caplog) == []
