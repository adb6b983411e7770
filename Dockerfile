# syntax=docker/dockerfile:1
# One image for the three services and the one-shot jobs of docker-compose.yml (topics,
# migrate): the uv workspace from uv.lock, without dev dependencies. The command picks the
# service, e.g. `uv run --no-sync uvicorn tpp_enrollment.app:create_app --factory --port 8002`.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG UV_VERSION=0.13.8

FROM ${PYTHON_IMAGE} AS build
ARG UV_VERSION
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
RUN pip install --no-cache-dir "uv==${UV_VERSION}"
WORKDIR /app
# Third-party dependencies first: this layer changes only with uv.lock.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --all-packages --no-dev --no-install-workspace
COPY libs ./libs
COPY services ./services
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --all-packages --no-dev

FROM ${PYTHON_IMAGE}
ARG UV_VERSION
RUN pip install --no-cache-dir "uv==${UV_VERSION}" \
    && useradd --system --uid 10001 --no-create-home --home-dir /app app
WORKDIR /app
COPY --from=build /app /app
# Only the jobs' scripts: deploy/ also holds local.env and the Kafka admin's properties.
COPY deploy/migrate.py deploy/topics.py ./deploy/
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    UV_NO_SYNC=1 \
    UV_FROZEN=1 \
    UV_CACHE_DIR=/tmp/uv-cache
USER app
EXPOSE 8001 8002 8003
CMD ["uv", "run", "--no-sync", "uvicorn", "tpp_registry.app:create_app", "--factory", \
     "--host", "0.0.0.0", "--port", "8001"]
