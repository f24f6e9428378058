"""`GET /openapi.json` and a browsable `GET /docs`, whose Swagger UI assets come from
the `swagger-ui-bundle-v2` package and are served here: no CDN is involved."""

from flask import Blueprint, Response, current_app, jsonify, send_from_directory
from swagger_ui_bundle import swagger_ui_path

from api.errors import ApiError
from api.openapi import document

bp = Blueprint("docs", __name__)
ASSETS = ("swagger-ui.css", "swagger-ui-bundle.js", "favicon-32x32.png")
PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Deno executor API</title>
  <link rel="stylesheet" href="/docs/swagger-ui.css">
  <link rel="icon" type="image/png" href="/docs/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script src="/docs/init.js"></script>
</body>
</html>
"""
INIT = 'window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui"});\n'


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(document(current_app.config["SETTINGS"]))


@bp.get("/docs")
def page() -> Response:
    return Response(PAGE, mimetype="text/html")


@bp.get("/docs/init.js")
def init() -> Response:
    return Response(INIT, mimetype="text/javascript")


@bp.get("/docs/<name>")
def asset(name: str) -> Response:
    if name not in ASSETS:
        raise ApiError(404, f"No document /docs/{name}")
    return send_from_directory(swagger_ui_path, name, max_age=86_400)
