# One image for every mmbus process; compose.yaml picks the command.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY mmbus ./mmbus
COPY services ./services
COPY schemas ./schemas
# The demo campaign `mmbus send-csv demo/campaign.csv` publishes (compose's demo job).
COPY demo ./demo
# The process runs as mmbus, not root: /data (the projector's SQLite store) is
# made its own here, before VOLUME, because a build step after VOLUME would not
# persist and a fresh named volume copies the directory's owner from the image.
RUN pip install --no-cache-dir ".[services]" \
    && useradd --system --create-home mmbus \
    && mkdir -p /data \
    && chown mmbus:mmbus /data
VOLUME ["/data"]
USER mmbus
ENTRYPOINT []
CMD ["mmbus", "--help"]
