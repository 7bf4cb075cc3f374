# seqstream's jobs on the official Spark image: the Spark the pinned pyspark expects, Java 17,
# Python 3, then torch and the pinned dependencies (pyspark itself is the image's).
ARG SPARK_IMAGE=apache/spark:4.2.0-scala2.13-java17-python3-ubuntu
FROM ${SPARK_IMAGE}
# torch from pip's configured index (on Linux, PyPI's torch is a CUDA build that also runs on
# CPUs); for a smaller CPU-only image pass a torch wheel index: --build-arg TORCH_INDEX=<url>.
ARG TORCH_INDEX=

USER root
WORKDIR /opt/seqstream
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 OMP_NUM_THREADS=1
COPY requirements.lock ./
RUN python3 -m pip install ${TORCH_INDEX:+--index-url ${TORCH_INDEX}} torch==2.13.0 \
 && grep -v '^pyspark==' requirements.lock > /tmp/requirements.txt \
 && python3 -m pip install -r /tmp/requirements.txt
COPY pyproject.toml README.md __init__.py ./
COPY pipeline/ pipeline/
COPY model/ model/
COPY jobs/ jobs/
COPY docker/ docker/
RUN python3 -m pip install --no-deps . && mkdir -p /data && chown -R spark /data /opt/seqstream
USER spark
