"""The HTTP API (Flask): validates requests, queues jobs, waits for or reports them."""

import logging

from flask import Flask

from api import errors
from api.routes import bp
from tasks.app import job_store, settings


def create_app() -> Flask:
    """The app, configured from the environment (see `settings`)."""
    app = Flask(__name__)
    app.config["SETTINGS"] = settings
    app.config["STORE"] = job_store()
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False
    errors.register(app)
    app.register_blueprint(bp)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return app
