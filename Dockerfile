# The controller image: substratus-controller run, as a non-root user, with only the runtime dependencies.
# Build: docker build -t substratus-controller .   (hack/image-install-check.sh runs the same install step
# outside Docker, which is how CI exercises it: no Docker engine there.)

FROM python:3.11.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY src ./src
RUN /opt/venv/bin/pip install --no-compile . \
    && /opt/venv/bin/substratus-controller crds > /dev/null

FROM python:3.11.11-slim-bookworm
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN groupadd --gid 65532 controller \
    && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin controller
COPY --from=build /opt/venv /opt/venv
USER 65532:65532
EXPOSE 8080 8081 8082
ENTRYPOINT ["substratus-controller", "run"]
