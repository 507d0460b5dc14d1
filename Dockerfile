# syntax=docker/dockerfile:1
# ironlb: one image for both components. The entry point is `ironlb`; the manifests choose the component with the
# first argument (`controller` or `speaker`, see config/manifests/ironlb.yaml).
#
#   docker build -t ironlb:0.1.0 .
#
# Without a registry or docker, scripts/build-images.py builds this very file: ironlb.lab.imagebuild runs each
# instruction in order (RUN in a chroot of the stage), from a local stand-in for PYTHON_IMAGE that
# ironlb.lab.debian_base makes with debootstrap (Debian 12 + Debian's Python 3.11), and writes a docker-archive
# tar, which `ctr -n k8s.io images import` loads on a node (the cluster lab of src/ironlb/lab/kube_cluster.py does).
# Keep to the instructions it runs (FROM, ARG, ENV, WORKDIR, COPY, RUN, USER, ENTRYPOINT, CMD, LABEL, EXPOSE):
# anything else fails that build with the line.
#
# The image runs as nobody (65534) and writes nothing outside /tmp, so it works with readOnlyRootFilesystem (the
# byte code is compiled at build time). The speaker's DaemonSet runs it as root with only CAP_NET_RAW.
#
# Reproducible with a SOURCE_DATE_EPOCH build argument (scripts/build-images.py passes one): each stage declares it,
# so its RUNs see it (pip and compileall then write hash-checked byte code rather than the files' mtimes), and the
# apt step leaves no logs or caches. With BuildKit, also clamp the layers' mtimes as the lab's builder does:
#   docker buildx build --build-arg SOURCE_DATE_EPOCH=1700000000 --output type=docker,rewrite-timestamp=true -t ironlb:0.1.0 .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG SOURCE_DATE_EPOCH
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY requirements/ironlb.txt ./requirements/
COPY src ./src
# The dependencies at the versions of requirements/ironlb.txt, each file checked against its sha256 (the lock of
# scripts/lock-python.py), then ironlb built by the locked setuptools, so nothing unpinned is downloaded.
RUN python -m venv /opt/ironlb \
 && /opt/ironlb/bin/pip install --require-hashes -r requirements/ironlb.txt \
 && /opt/ironlb/bin/pip install --no-deps --no-build-isolation . \
 && /opt/ironlb/bin/python -m compileall -q /opt/ironlb/lib

FROM ${PYTHON_IMAGE}
ARG SOURCE_DATE_EPOCH
# openssl: the controller makes the webhooks' certificates with it. iproute2: the speaker looks up the address of
# the other family beside a dual-stack BGP session's own (`ip -j addr`).
RUN apt-get update \
 && apt-get install -y --no-install-recommends openssl iproute2 \
 && rm -rf /var/lib/apt/lists/* /var/log/apt/* /var/log/dpkg.log /var/log/alternatives.log \
           /var/cache/ldconfig/aux-cache
COPY --from=build /opt/ironlb /opt/ironlb
ENV PATH=/opt/ironlb/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 65534:65534
ENTRYPOINT ["ironlb"]
CMD ["--help"]
