"""The OpenAPI document and the docs page. schemathesis fuzzing the live service
against the document is in tests/service/test_openapi.py."""

import re

import pytest
import schemathesis

from api.schema import RunRequest

KEY = "fuzzer-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
def keyed(make_client):
    return make_client(API_KEYS=f"fuzzer:{KEY}")


def test_document_is_valid_openapi_3_1(keyed):
    document = keyed.get("/openapi.json", headers=AUTH).json
    assert document["openapi"] == "3.1.0"
    schemathesis.openapi.from_dict(document).validate()  # against the OpenAPI 3.1 meta-schema


def test_request_body_is_the_validating_model(keyed):
    document = keyed.get("/openapi.json", headers=AUTH).json
    generated = RunRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    assert document["components"]["schemas"]["RunRequest"] == generated


def test_document_declares_bearer_keys_when_keys_are_configured(keyed):
    document = keyed.get("/openapi.json", headers=AUTH).json
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert document["paths"]["/healthz"]["get"]["security"] == []


def test_docs_page_loads_only_assets_served_by_the_service(keyed):
    page = keyed.get("/docs", headers=AUTH)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets and all(asset.startswith("/docs/") for asset in assets)
    for asset in assets:
        response = keyed.get(asset, headers=AUTH)
        assert response.status_code == 200 and len(response.data) > 0, asset


def test_docs_page_script_reads_the_description_from_the_service(keyed):
    script = keyed.get("/docs/init.js", headers=AUTH).text
    assert 'fetch("/openapi.json"' in script and "http" not in script


def test_unknown_docs_asset_is_404(keyed):
    """The `..` is sent as is (the test client, like a raw HTTP request, does not resolve it)."""
    traversal = keyed.get("/docs/../../jobs/settings.py", headers=AUTH)
    assert traversal.request.path == "/docs/../../jobs/settings.py"  # as sent, not resolved
    assert traversal.status_code == 404 and b"Settings" not in traversal.data
    unlisted = keyed.get("/docs/index.j2", headers=AUTH)
    assert unlisted.status_code == 404 and "No document" in unlisted.json["error"]


def test_open_service_describes_itself_without_keys(http):
    response = http.get("/openapi.json")
    assert response.status_code == 200
    document = response.json
    assert "security" not in document and "securitySchemes" not in document["components"]
    assert "401" not in document["paths"]["/"]["post"]["responses"]
