# seqstream's jobs on the official Spark image: the Spark the pinned pyspark expects, Java 17,
# Python 3, then torch's CPU build and the pinned dependencies (pyspark itself is the image's).
ARG SPARK_IMAGE=apache/spark:4.3.0-scala2.13-java17-python3-ubuntu
FROM ${SPARK_IMAGE}
# The CPU build by default; docker-compose.gpu.yml passes a CUDA wheel index.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu

USER root
WORKDIR /opt/seqstream
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 OMP_NUM_THREADS=1
COPY requirements.lock ./
RUN python3 -m pip install --index-url ${TORCH_INDEX} torch==2.13.0 \
 && grep -v '^pyspark==' requirements.lock > /tmp/requirements.txt \
 && python3 -m pip install -r /tmp/requirements.txt
COPY pyproject.toml README.md __init__.py ./
COPY pipeline/ pipeline/
COPY model/ model/
COPY jobs/ jobs/
COPY docker/ docker/
RUN python3 -m pip install --no-deps . && mkdir -p /data && chown -R spark /data /opt/seqstream
USER spark
