# syntax=docker/dockerfile:1
# One image for every Ferry service. The command picks the service:
#   docker run ferry:dev python -m services.discovery        (intake, discovery, snapshot, transfer,
#                                                             restore, gateway)
# The snapshot and restore services run this same image as their mover Jobs (`ferry-mover backup|restore`,
# set FERRY_IMAGE to this image's reference), so the `ferry-mover` and `ferry` entry points are on PATH.
# Every service serves /healthz, /readyz and /metrics on FERRY_HTTP_PORT (8080).

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# .dockerignore lets in only pyproject.toml, README.md and the packages, so this layer changes with them.
COPY . /src
RUN python -m venv /opt/ferry \
 && /opt/ferry/bin/pip install --upgrade pip \
 && /opt/ferry/bin/pip install /src

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="ferry" \
      org.opencontainers.image.description="Move and replicate Kubernetes applications between clusters over NATS" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/ferry/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    FERRY_HTTP_PORT=8080
RUN groupadd --system --gid 10001 ferry \
 && useradd --system --uid 10001 --gid ferry --home-dir /home/ferry --create-home --shell /usr/sbin/nologin ferry
COPY --from=build /opt/ferry /opt/ferry
# Fail the build, not the pod, when a service module or an entry point's module is missing.
RUN python -c "import importlib.metadata as md, importlib.util as u, sys; \
mods = [f'services.{s}.__main__' for s in ('intake', 'discovery', 'snapshot', 'transfer', 'restore', 'verify', 'gateway')]; \
mods += [ep.module for ep in md.entry_points(group='console_scripts') if ep.dist and ep.dist.name == 'ferry']; \
found = lambda m: all(u.find_spec('.'.join(m.split('.')[:i + 1])) for i in range(m.count('.') + 1)); \
missing = [m for m in mods if not found(m)]; \
sys.exit(f'missing modules: {missing}' if missing else 0)" \
 && command -v ferry-mover && command -v ferry
USER 10001:10001
WORKDIR /home/ferry
EXPOSE 8080 8081
# Services drain on SIGTERM themselves (shared.runtime), so python runs as PID 1 without a shell.
STOPSIGNAL SIGTERM
CMD ["python", "-m", "services.gateway"]
