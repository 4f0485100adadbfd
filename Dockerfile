# Every Flotilla service, the `flotilla` command and nats-server, in one venv on Debian 12.
# Build with docker/build.sh: it makes the local base image (no registry is needed) and the
# wheels this installs, so nothing inside the build reaches the network.
ARG BASE=flotilla-base:bookworm
FROM ${BASE}
COPY docker/wheels /opt/flotilla-wheels
RUN python3 -m venv /opt/flotilla \
 && /opt/flotilla/bin/pip install -q --no-cache-dir --no-index --disable-pip-version-check \
      --find-links /opt/flotilla-wheels \
      flotilla-common flotilla-content flotilla-snapshots flotilla-images flotilla-tasks \
      flotilla-gateway flotilla-cli
ENV PATH=/opt/flotilla/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1
CMD ["flotilla", "--help"]
