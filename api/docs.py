"""`GET /openapi.json` and a browsable `GET /docs`. Swagger UI's assets come from the
`swagger-ui-bundle-v2` package and are served here: no CDN is involved. The page and
its assets hold no data, so they need no key; the page asks for one when the
description does."""

from pathlib import Path

from flask import Blueprint, Response, current_app, jsonify, send_from_directory
from swagger_ui_bundle import swagger_ui_path

from api.errors import ApiError
from api.openapi import document

bp = Blueprint("docs", __name__)
PAGE = Path(__file__).parent / "docs_page"
ASSETS = {
    "swagger-ui.css": swagger_ui_path,
    "swagger-ui-bundle.js": swagger_ui_path,
    "favicon-32x32.png": swagger_ui_path,
    "init.js": PAGE,
}


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(document(current_app.config["SETTINGS"]))


@bp.get("/docs")
def page() -> Response:
    return send_from_directory(PAGE, "index.html")


@bp.get("/docs/<name>")
def asset(name: str) -> Response:
    if name not in ASSETS:
        raise ApiError(404, f"No document /docs/{name}")
    return send_from_directory(ASSETS[name], name, max_age=86_400)
