# syntax=docker/dockerfile:1
# One image for every egov-pulse service; docker-compose.yml picks the subcommand.
#
#   docker build -t egov-pulse .
#   docker run --rm egov-pulse --help
#
# Two stages: the builder installs the project and its dependencies into a venv
# (with a compiler at hand should a dependency lack a wheel); the runtime stage
# copies only that venv and the repository data, and runs as an unprivileged user.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
COPY pyproject.toml README.md ./
COPY services/ services/
RUN pip install .

FROM ${PYTHON_IMAGE} AS runtime

# services/common/paths.py locates schemas/ and data/ relative to the source tree
# ("the services always run from a checkout"), so /app is laid out like one and
# PYTHONPATH makes /app/services win over the copy installed in the venv.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    EGOV_SCHEMAS_DIR=/app/schemas \
    EGOV_UNITS_DIR=/app/data/units

RUN groupadd --system --gid 10001 egov \
    && useradd --system --uid 10001 --gid egov --home-dir /var/lib/egov-pulse --no-create-home --shell /usr/sbin/nologin egov

COPY --from=builder /opt/venv /opt/venv

# Code and data stay owned by root: the service user can read them, not change them.
COPY services/ /app/services/
COPY schemas/ /app/schemas/
COPY data/ /app/data/
# The runbooks the alerts service serves at /runbooks (each alert's runbook link).
COPY docs/runbooks.md /app/docs/runbooks.md

# The only writable place: faust keeps its table state under the working directory, the
# alerts service its state file in alerts/ (a volume, which takes this folder's owner).
RUN install -d -o egov -g egov /var/lib/egov-pulse /var/lib/egov-pulse/alerts
WORKDIR /var/lib/egov-pulse
USER egov:egov

# ingest, metrics and alerts listen here (EGOV_INGEST_PORT, EGOV_METRICS_WEB_PORT,
# EGOV_ALERTS_PORT).
EXPOSE 8080 8081 8082 8083

CMD ["egov-pulse"]
