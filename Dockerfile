# The image compose.yaml runs: Horus and every first-party runner, installed as by hand.
FROM python:3.11-slim
# bubblewrap makes every job's sandbox (util-linux, with setpriv and prlimit, is in the base)
RUN apt-get update && apt-get install -y --no-install-recommends bubblewrap \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home horus
WORKDIR /opt/horus
COPY . .
RUN pip install --no-cache-dir . runners/*/
USER horus
# The compose volume horus-home mounts here: made by the horus user so that the volume is
# too, and `horus init` can write the keys and the policy into it.
RUN mkdir -p /home/horus/.horus
ENV HORUS_HOME=/home/horus/.horus
CMD ["horus", "--help"]
