# One image for the web and trainer processes (different commands; docs/deploy.md).
#   web:     docker run -p 8000:8000 -e SECRET_KEY=... -e DATABASE_URL=... -e REDIS_URL=... IMAGE
#            (the default command: the web server alone, no trainer inside)
#   trainer: docker run -e SECRET_KEY=... -e DATABASE_URL=... -e REDIS_URL=... IMAGE python manage.py trainer
#   worker:  docker run -e SECRET_KEY=... -e DATABASE_URL=... IMAGE python manage.py jobs_worker  (background jobs)
#   migrate: docker run ... IMAGE python manage.py migrate
# Web, worker and trainer containers share DATA_DIR (a volume) and need PostgreSQL and Redis;
# compose.yaml runs them all (docs/deploy.md).
# Not built in this project's CI (no Docker engine on its machines).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DATA_DIR=/data \
    STATIC_ROOT=/app/staticfiles

WORKDIR /app
COPY requirements.txt requirements-nodeps.txt ./
RUN pip install -r requirements.txt && pip install --no-deps -r requirements-nodeps.txt

COPY manage.py ./
COPY annotator ./annotator
COPY mlcore ./mlcore
COPY templates ./templates
COPY static ./static
# collectstatic needs a key to import the settings; it is not used at run time.
RUN SECRET_KEY=collectstatic-only-not-used-at-runtime-0123456789abcdef python manage.py collectstatic --noinput -v 0

RUN useradd --create-home --uid 10001 app && mkdir -p /data && chown app:app /data
USER app
VOLUME ["/data"]
EXPOSE 8000
# Liveness: the server answers /healthz (readiness, /readyz, is for the proxy or orchestrator).
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["python", "manage.py", "healthcheck", "--port", "8000"]
CMD ["python", "manage.py", "serve", "--host", "0.0.0.0", "--port", "8000", "--trainer", "none", "--worker", "none"]
