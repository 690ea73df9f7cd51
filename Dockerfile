# usage-exporter: the same install as the README documents, as a non-root user.
FROM python:3.11-slim

RUN useradd --system --uid 10191 --no-create-home --shell /usr/sbin/nologin usage-exporter

WORKDIR /opt/usage-exporter
COPY pyproject.toml README.md ./
COPY exporter ./exporter
COPY collectors ./collectors
# Installs this project from its own source tree; its dependency ranges live in pyproject.toml.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir '.[postgres,mysql]'

USER 10191
EXPOSE 10191
HEALTHCHECK --interval=30s --timeout=5s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:10191/-/healthy', timeout=4)"]
ENTRYPOINT ["usage-exporter"]
CMD ["run", "--config", "/etc/usage-exporter/config.yaml"]
