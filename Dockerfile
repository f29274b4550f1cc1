# fleetcast: one image for every SageMaker role.
#   training job:    docker run IMAGE train         (SageMaker's own invocation)
#   endpoint (MME):  docker run IMAGE serve         (SageMaker's own invocation)
#   processing job:  ContainerEntrypoint ["fleetcast", "split"]
# Build: docker build -t fleetcast .   (or ./build_and_push.sh fleetcast)

# ---- java: a Java runtime holding only what Multi Model Server's frontend needs ----
FROM python:3.11-slim AS java

# jlink cuts the base release's own JDK (17 on bookworm) down to a few modules: ~75 MB instead of the
# ~300 MB that the distribution's full headless JRE and its dependencies add. Slim images drop man pages,
# but the JDK's postinst needs the man1 directory to exist. Versions follow the base image's release.
# hadolint ignore=DL3008
RUN mkdir -p /usr/share/man/man1 \
    && apt-get update \
    && apt-get install -y --no-install-recommends default-jdk-headless \
    && rm -rf /var/lib/apt/lists/*
RUN jlink --output /opt/java --strip-java-debug-attributes --no-man-pages --no-header-files \
        --add-modules java.base,java.compiler,java.desktop,java.logging,java.management,java.naming,java.scripting,java.sql,java.xml,jdk.crypto.ec,jdk.management,jdk.unsupported \
    && /opt/java/bin/java -version

# ---- builder: every Python dependency installed into a virtualenv, compilers only here ----
FROM python:3.11-slim AS builder

# A compiler for any dependency that ships only as source; this stage is discarded, so it never reaches
# the final image. Versions are not pinned: they follow the base image's Debian release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*

# The venv's interpreter links to the base image's python wherever that lives (/usr/local/bin in the
# official image, /usr/bin in Debian-based stand-ins), so no path is hard-coded here.
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# The hashed lock (make lock): every package at its exact version, each file checked against its hash;
# the development environment's lock holds the same versions. Nothing is fetched at run time.
# matplotlib stays although nothing in serving draws: prophet declares it (so `pip check` holds) and
# `fleetcast plot` needs it.
COPY requirements/image.lock /tmp/requirements/
RUN pip install --no-cache-dir --disable-pip-version-check --require-hashes -r /tmp/requirements/image.lock \
    # The test suites bundled in these wheels (~130 MB) are never imported at run time.
    && find /opt/venv/lib -type d -name tests \
        \( -path '*/site-packages/pandas/*' -o -path '*/site-packages/scipy/*' -o -path '*/site-packages/numpy/*' \) \
        -prune -exec rm -rf {} + \
    && pip check --disable-pip-version-check

# ---- final image ----
FROM python:3.11-slim

LABEL org.opencontainers.image.title="fleetcast" \
      org.opencontainers.image.description="Train and serve thousands of per-customer Prophet models on Amazon SageMaker" \
      com.amazonaws.sagemaker.capabilities.multi-models=true \
      com.amazonaws.sagemaker.capabilities.accept-bind-to-port=true

# Multi Model Server runs on Java; the runtime needs only glibc, libstdc++ and zlib from the base image.
COPY --from=java /opt/java /opt/java
COPY --from=builder /opt/venv /opt/venv
ENV JAVA_HOME=/opt/java \
    PATH=/opt/venv/bin:/opt/java/bin:$PATH \
    PYTHONUNBUFFERED=1

# The package itself: its dependencies are all in the venv already, so pip needs no network here.
# requirements/image.txt is its declared dependency list (pyproject.toml), which `pip check` verifies.
COPY pyproject.toml /tmp/fleetcast/
COPY requirements/image.txt /tmp/fleetcast/requirements/
COPY container /tmp/fleetcast/container
# `train` and `serve` are links to the `fleetcast` console script, which dispatches on the name it was
# called by: `docker run IMAGE train` execs Python directly as PID 1, so SIGTERM reaches it.
RUN pip install --no-cache-dir --disable-pip-version-check --no-deps --no-build-isolation /tmp/fleetcast \
    && rm -rf /tmp/fleetcast \
    && ln -s fleetcast /opt/venv/bin/train \
    && ln -s fleetcast /opt/venv/bin/serve \
    && pip check --disable-pip-version-check \
    && fleetcast --help >/dev/null \
    && java -version

EXPOSE 8080
CMD ["fleetcast", "--help"]
