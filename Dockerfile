# usage-exporter: the same install as the README documents, as a non-root user whose history lives
# on a volume. Python 3.11.15 on Debian trixie, pinned by the digest of the multi-platform index
# that the official image's tag pointed at (docker-library/repo-info, python:3.11-slim).
FROM python:3.11.15-slim-trixie@sha256:90744cff8f32887f075c47d747a173ff333e9e98801667af93c357fa9f5e28ff

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1

RUN groupadd --system --gid 10191 usage-exporter \
 && useradd --system --uid 10191 --gid 10191 --home-dir /var/lib/usage-exporter --no-create-home \
      --shell /usr/sbin/nologin usage-exporter \
 && install -d -o usage-exporter -g usage-exporter -m 0750 /var/lib/usage-exporter

WORKDIR /opt/usage-exporter
COPY pyproject.toml README.md LICENSE ./
COPY exporter ./exporter
COPY collectors ./collectors
# This project from its own source tree; its dependency ranges live in pyproject.toml.
RUN pip install --no-cache-dir './[postgres,mysql]'
# Configured from the environment (README, Docker); mount a config over it to change anything else.
COPY deploy/container/config.yaml /etc/usage-exporter/config.yaml

USER 10191:10191
WORKDIR /var/lib/usage-exporter
VOLUME ["/var/lib/usage-exporter"]
EXPOSE 10191
# Alive, not ready: the daemon answers /-/healthy on the address its config listens on (a
# collector that keeps failing is a metric, not a reason to restart it). A config mounted over
# the image's is followed; one at another path needs this line changed to name it.
HEALTHCHECK --interval=30s --timeout=5s --start-period=2m --retries=3 \
  CMD ["usage-exporter", "healthcheck", "--config.file", "/etc/usage-exporter/config.yaml"]
ENTRYPOINT ["usage-exporter"]
CMD ["run", "--config.file", "/etc/usage-exporter/config.yaml"]
