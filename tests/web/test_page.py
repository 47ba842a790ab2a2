"""The web page: served by status through the gateway with a strict CSP, and driven in a real
Chromium against the real local platform (`page_flow.mjs`)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from starlette.requests import Request

from t2v.errors import NotFoundError
from t2v.local.gateway import route_for
from tests.chromium import run_page_script
from tests.e2e.harness import REPO_ROOT, Platform

PAGE_FLOW = Path(__file__).with_name("page_flow.mjs")
CONTENT_TYPES = {
    "/": "text/html; charset=utf-8",
    "/web/index.html": "text/html; charset=utf-8",
    "/web/app.js": "text/javascript; charset=utf-8",
    "/web/style.css": "text/css; charset=utf-8",
}


@pytest.mark.parametrize(
    ("method", "path", "service"),
    [
        ("GET", "/", "status"),
        ("HEAD", "/", "status"),
        ("GET", "/web/app.js", "status"),
        ("POST", "/", None),
        ("GET", "/webhooks", None),
        ("GET", "/v1/jobs", "status"),
        ("POST", "/v1/jobs", "submit"),
    ],
)
def test_gateway_routes_the_page_to_status(method: str, path: str, service: str | None) -> None:
    assert route_for(method, path) == service


def _directives(policy: str) -> dict[str, str]:
    return dict(directive.strip().split(" ", 1) for directive in policy.split(";"))


def _load_status_function(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """functions/status/main.py as its container loads it: by path, a fresh module each time."""
    name = "status_main_under_test"
    spec = importlib.util.spec_from_file_location(
        name, REPO_ROOT / "functions" / "status" / "main.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


async def test_presigned_video_origin_is_the_only_extra_media_source(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Videos on S3 are answered with a redirect to a presigned URL: the page may load media
    # from that one origin. Signing is offline, so no S3 server is needed.
    monkeypatch.setenv("T2V_DATA_DIR", str(tmp_path))
    monkeypatch.setenv(
        "T2V_ARTIFACTS_URL", "s3://videos?endpoint_url=http://127.0.0.1:9000&path_style=1"
    )
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "t2v-test-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "t2v-test-secret")
    monkeypatch.setenv("T2V_WEB_DIR", str(tmp_path / "web"))
    monkeypatch.delenv("K_SINK", raising=False)
    status = _load_status_function(monkeypatch)
    page = await status.web_page.get()
    try:
        assert page.directory == tmp_path / "web"
        directives = _directives(page.content_security_policy)
        assert directives["media-src"] == "'self' blob: http://127.0.0.1:9000"
        assert directives["connect-src"] == "'self' http://127.0.0.1:9000"
        assert directives["default-src"] == "'self'"
    finally:
        await (await status.runtime.get()).store.close()


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Iterator[Platform]:
    running = Platform(tmp_path_factory.mktemp("web-platform"), tiny_model_dir, {}).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.mark.e2e
@pytest.mark.parametrize(("path", "content_type"), sorted(CONTENT_TYPES.items()))
def test_static_files_are_served_with_a_strict_policy(
    platform: Platform, path: str, content_type: str
) -> None:
    response = platform.client.get(platform.url + path)
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-content-type-options"] == "nosniff"
    directives = _directives(response.headers["content-security-policy"])
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"
    # The filesystem artifact store is served by status itself: no other media origin.
    assert directives["media-src"] == "'self' blob:"
    assert directives["connect-src"] == "'self'"
    name = "index.html" if path == "/" else path.removeprefix("/web/")
    assert response.content == (REPO_ROOT / "web" / "dist" / name).read_bytes()
    revalidated = platform.client.get(
        platform.url + path, headers={"If-None-Match": response.headers["etag"]}
    )
    assert revalidated.status_code == 304
    assert revalidated.content == b""


async def test_an_unbuilt_web_ui_answers_a_clear_404(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("T2V_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("T2V_WEB_DIR", str(tmp_path / "no-dist"))
    monkeypatch.delenv("T2V_ARTIFACTS_URL", raising=False)
    monkeypatch.delenv("K_SINK", raising=False)
    status = _load_status_function(monkeypatch)
    try:
        for name in ("index.html", "app.js"):
            with pytest.raises(NotFoundError) as raised:
                await status.web_file(_get_request(f"/web/{name}"), name)
            assert raised.value.code == "web_ui_not_built"
            assert "scripts/build_web.sh" in raised.value.message
    finally:
        await (await status.runtime.get()).store.close()


def _get_request(path: str) -> Request:
    return Request({"type": "http", "method": "GET", "path": path, "headers": []})


@pytest.mark.e2e
@pytest.mark.parametrize("path", ["/web/main.py", "/web/", "/web", "/web/.build-sha256"])
def test_only_the_page_files_are_served(platform: Platform, path: str) -> None:
    assert platform.client.get(platform.url + path).status_code == 404


@pytest.mark.e2e
def test_an_encoded_slash_out_of_the_page_folder_is_refused(platform: Platform) -> None:
    response = platform.client.get(platform.url + "/web/..%2Fpyproject.toml")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_path"


@pytest.mark.e2e
@pytest.mark.slow
def test_the_page_in_chromium(platform: Platform, tmp_path: Path) -> None:
    result = run_page_script(PAGE_FLOW, platform.url, tmp_path)
    assert result.returncode == 0, (
        f"{result.stdout}\n{result.stderr}\nplatform log: {platform.data_dir / 'platform.log'}"
    )
    assert "page flow passed" in result.stdout
