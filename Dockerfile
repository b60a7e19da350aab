# mokku: an OpenAI-API mock server, served by gunicorn with threaded workers.
FROM python:3.12-slim

# On 0.0.0.0 the admin endpoints (/mokku/*) answer 403 until MOKKU_ADMIN_TOKEN is set:
#   docker run -e MOKKU_ADMIN_TOKEN="$(openssl rand -hex 16)" ...
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MOKKU_HOST=0.0.0.0 \
    MOKKU_PORT=8080 \
    MOKKU_WORKERS=2 \
    MOKKU_THREADS=32 \
    OTEL_EXPORTER_OTLP_ENDPOINT=http://jaeger:4317 \
    OTEL_SERVICE_NAME=mokku

WORKDIR /app

# Dependencies first, from the package metadata alone: this layer survives code edits. The redis
# extra lets replicas share one state (MOKKU_STATE=redis://..., docs/scaling.md), the metrics extra
# serves /metrics (MOKKU_METRICS, docs/metrics.md); "./[redis,metrics]" is ".[redis,metrics]"
# written so that hadolint (DL3013) sees a local path.
COPY pyproject.toml setup.cfg setup.py README.md openapi.yml openapi.json ./
COPY mokku/__init__.py mokku/
RUN pip install --no-cache-dir "./[redis,metrics]"

# Then the code, without touching the dependencies again.
COPY mokku/ mokku/
RUN pip install --no-cache-dir --no-deps --force-reinstall . \
    && useradd --create-home --uid 10001 --shell /usr/sbin/nologin mokku

USER 10001
EXPOSE 8080

HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; url = 'http://127.0.0.1:' + os.environ.get('MOKKU_PORT', '8080') + '/health'; sys.exit(0 if urllib.request.urlopen(url, timeout=2).status == 200 else 1)"]

# gunicorn is PID 1 (exec form): SIGTERM stops it gracefully and flushes queued spans.
STOPSIGNAL SIGTERM
CMD ["gunicorn", "-c", "python:mokku.gunicorn_conf", "mokku.wsgi:app"]
