"""The pages' npm libraries are served from web/node_modules, and nothing else is."""

import aiohttp
import pytest

from web.vendor import VENDOR_FILES, missing_vendor_files

pytestmark = pytest.mark.inprocess


def test_every_vendor_library_is_installed():
    assert missing_vendor_files() == [], "run scripts/web-deps.sh"


@pytest.mark.parametrize("name", sorted(VENDOR_FILES))
async def test_vendor_library_is_served(server, name):
    base, _ = server
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/vendor/{name}") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/javascript")
            assert len(await resp.read()) > 1000


@pytest.mark.parametrize("path", ["/vendor/package.json", "/vendor/..%2Fpackage.json",
                                  "/vendor/%2e%2e/package-lock.json", "/vendor/debug/src/index.js"])
async def test_only_listed_vendor_files_are_reachable(server, path):
    base, _ = server
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}{path}") as resp:
            assert resp.status == 404
