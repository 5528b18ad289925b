# The image compose.yaml runs: Horus and every first-party runner, installed as by hand.
FROM python:3.11-slim
RUN useradd --create-home horus
WORKDIR /opt/horus
COPY . .
RUN pip install --no-cache-dir .
USER horus
ENV HORUS_HOME=/home/horus/.horus
CMD ["horus", "--help"]
