# One image for every mmbus process; compose.yaml picks the command.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY mmbus ./mmbus
COPY services ./services
COPY schemas ./schemas
RUN pip install --no-cache-dir ".[services]" && useradd --system mmbus
USER mmbus
ENTRYPOINT []
CMD ["mmbus", "--help"]
