"""`/openapi.json` and the docs page, served by status through the gateway; the page
rendered in a real Chromium under the web page's Content-Security-Policy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from openapi_spec_validator import validate

from t2v.openapi import document
from tests.api.test_openapi import documented_routes
from tests.chromium import run_page_script
from tests.e2e.harness import REPO_ROOT, Platform

pytestmark = [pytest.mark.e2e]
DOCS_PAGE = Path(__file__).with_name("docs_page.mjs")
RENDERER = REPO_ROOT / "node_modules" / "swagger-ui-dist"


def test_openapi_json_is_served_and_valid(platform: Platform) -> None:
    response = platform.client.get(f"{platform.url}/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    served = response.json()
    validate(served)
    assert served == json.loads(json.dumps(document("tiny")))


@pytest.mark.parametrize(
    ("path", "content_type", "source"),
    [
        ("/docs", "text/html", REPO_ROOT / "web" / "public" / "docs.html"),
        ("/web/docs.js", "text/javascript", REPO_ROOT / "web" / "public" / "docs.js"),
        ("/docs/swagger-ui-bundle.js", "text/javascript", RENDERER / "swagger-ui-bundle.js"),
        ("/docs/swagger-ui.css", "text/css", RENDERER / "swagger-ui.css"),
    ],
)
def test_the_docs_files_are_served_with_the_pages_policy(
    platform: Platform, path: str, content_type: str, source: Path
) -> None:
    response = platform.client.get(platform.url + path)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(content_type)
    assert response.content == source.read_bytes()
    page = platform.client.get(platform.url + "/")
    assert response.headers["content-security-policy"] == page.headers["content-security-policy"]


@pytest.mark.parametrize("path", ["/docs/index.html", "/docs/package.json"])
def test_only_the_renderers_files_are_served(platform: Platform, path: str) -> None:
    assert platform.client.get(platform.url + path).status_code == 404


def test_an_encoded_slash_out_of_the_renderers_folder_is_refused(platform: Platform) -> None:
    response = platform.client.get(platform.url + "/docs/..%2Fx")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_path"


@pytest.mark.slow
def test_the_docs_page_renders_every_operation_in_chromium(
    platform: Platform, tmp_path: Path
) -> None:
    if not RENDERER.is_dir():
        pytest.fail("node_modules is missing: PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci")
    result = run_page_script(DOCS_PAGE, platform.url, tmp_path, timeout_s=120)
    assert result.returncode == 0, result.stdout + result.stderr
    shown = json.loads(result.stdout.strip().splitlines()[-1])
    assert shown["title"].startswith("t2v")
    assert {(method.upper(), path) for method, path in shown["operations"]} == (
        documented_routes(document("tiny"))
    )
    assert shown["errors"] == []  # a CSP violation would be one
    assert shown["elsewhere"] == []
