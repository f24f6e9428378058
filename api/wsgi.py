"""Entry point for gunicorn: `gunicorn api.wsgi:app`, configured from the environment."""

from api import create_app
from jobs.settings import load
from jobs.store import store_for

settings = load()
app = create_app(settings, store_for(settings))
