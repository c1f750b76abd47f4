# labelbot's image: `docker compose up --build` (compose.yaml adds PostgreSQL), or
# `docker build -t labelbot .` and run it with the environment variables of the README.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LABELBOT_HOST=0.0.0.0 \
    LABELBOT_PORT=3000 \
    LABELBOT_WORKERS=2 \
    LABELBOT_THREADS=8

WORKDIR /app
COPY pyproject.toml README.md app_manifest.yml ./
COPY bot ./bot
COPY handlers ./handlers
COPY storage ./storage
RUN pip install . \
    && rm -rf build ./*.egg-info \
    && useradd --system --uid 10001 --create-home --home-dir /home/labelbot labelbot

# Not root; the default SQLite file (without DATABASE_URL) lands in the user's home.
USER labelbot
WORKDIR /home/labelbot
EXPOSE 3000

HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('LABELBOT_PORT', '3000'), timeout=4)"]

# HTTP under gunicorn (LABELBOT_WORKERS x LABELBOT_THREADS); it migrates the database first.
# Socket Mode instead: `labelbot serve` with SLACK_APP_TOKEN (it still answers /healthz on LABELBOT_PORT).
CMD ["labelbot", "serve", "--http"]
