# Concordia translation-memory service.
#   docker build -t concordia .
#   docker run -p 8000:8000 -v concordia-data:/data -e CONCORDIA_API_KEY=change-me \
#     --stop-timeout 60 concordia
# The service listens on port 8000; the memory, job files and embedding cache live in /data
# (the memory in PostgreSQL instead with CONCORDIA_STORE: compose.yaml, docs/deploy.md).
# Stopping saves the fuzzy index if it changed since its last background save (every 5 minutes):
# give it 60 s (--stop-timeout 60, compose: stop_grace_period: 60s) rather than Docker's 10 s.
# A /data the image's user (uid 10001) cannot write stops the service at once with one line
# saying so: chown the bind-mounted folder to 10001 or run with --user matching its owner.
# No torch in the image: the default use-m3 encoder is pure numpy. The web pages' templates and
# static files (service/web/templates, service/web/static) are package data: `pip install .`
# installs them, at the versions the tests passed with (constraints.txt, renewed by `make lock`).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CONCORDIA_DATA_DIR=/data \
    CONCORDIA_CACHE_DIR=/data/cache

WORKDIR /app
COPY pyproject.toml README.md constraints.txt ./
COPY aligner ./aligner
COPY service ./service
RUN pip install -c constraints.txt . \
    && useradd --create-home --uid 10001 concordia \
    && mkdir -p /data/jobs \
    && chown -R concordia:concordia /data

USER concordia
VOLUME ["/data"]
EXPOSE 8000
# start period: a large memory's indexes are built at the first start (minutes at 1 M units)
HEALTHCHECK --interval=30s --timeout=5s --start-period=600s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]
CMD ["aligner", "serve", "--host", "0.0.0.0", "--port", "8000", "--data", "/data"]
