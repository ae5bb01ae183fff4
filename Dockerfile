# supportbot: the app process (bots, outbox workers, operator console, /healthz, /readyz, /metrics).
# Build: docker build -t supportbot .   Run with PostgreSQL and Redis: compose.yaml (README,
# "Running in production (Docker)"). Settings are SUPPORTBOT_* environment variables.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, from pyproject.toml alone: a code change does not reinstall them.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY bots ./bots
COPY delivery ./delivery
COPY dialogs ./dialogs
COPY emulators ./emulators
COPY handoff ./handoff
COPY nlu ./nlu
COPY services ./services
COPY storage ./storage
COPY supportbot ./supportbot
RUN pip install --no-deps . && rm -rf build *.egg-info

# The reference content (flows, answers, NLU data); mount your own over /app/content.
COPY content ./content

# Not root: the app only writes its data directory (NLU model cache, VK Long Poll state, uploads).
RUN useradd --system --uid 10001 --no-create-home --home-dir /app supportbot \
    && mkdir -p /app/var \
    && chown supportbot /app/var
USER supportbot

ENV SUPPORTBOT_HTTP_HOST=0.0.0.0 \
    SUPPORTBOT_HTTP_PORT=8080 \
    SUPPORTBOT_CONTENT_DIR=/app/content \
    SUPPORTBOT_DATA_DIR=/app/var
VOLUME ["/app/var"]
EXPOSE 8080

# Alive = /healthz answers 200 (it does while the database is down, and says so; /readyz is for
# load balancers). Start-up migrates the database and trains the NLU model (cached in /app/var).
HEALTHCHECK --interval=30s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('SUPPORTBOT_HTTP_PORT', '8080'), timeout=4)"]

# SIGTERM (docker stop) drains replies in flight, then exits 0: give it stop_grace_period >= 30s.
CMD ["supportbot", "run"]
