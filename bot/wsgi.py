"""The WSGI entry point for an external gunicorn: `gunicorn 'bot.wsgi:application'` (see bot.runtime.wsgi)."""

from bot.runtime.wsgi import application

__all__ = ["application"]
