# ERI worker and API image. Run the roles with `eri worker`, `eri api`, `eri migrate`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    ERI_ENVIRONMENT=production ERI_LOG_FORMAT=json ERI_DATA_DIR=/var/lib/eri

RUN useradd --system --uid 10001 --home-dir /var/lib/eri --create-home eri
WORKDIR /app
COPY pyproject.toml README.md ./
COPY eri ./eri
COPY api ./api
COPY workflows ./workflows
COPY activities ./activities
COPY protocols ./protocols
RUN pip install . && rm -rf /root/.cache

USER eri
ENTRYPOINT ["eri"]
CMD ["api"]
