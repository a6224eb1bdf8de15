# Voxdesk image: API, console, voice endpoints and pipelines (offline models inside the wheels).
FROM python:3.11.7-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
    VOXDESK_DATA_DIR=/var/lib/voxdesk
RUN apt-get update && apt-get install -y --no-install-recommends flite espeak-ng sox libsox-fmt-all curl gcc g++ \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY requirements.lock pyproject.toml README.md ./
# torch first, from the CPU index: an unpinned torch would pull the multi-GB CUDA build.
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
    && pip install --no-cache-dir -r requirements.lock --extra-index-url https://download.pytorch.org/whl/cpu
COPY . .
RUN pip install --no-cache-dir --no-deps . && useradd -r -u 10001 voxdesk && mkdir -p /var/lib/voxdesk \
    && chown voxdesk /var/lib/voxdesk
USER voxdesk
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --retries=12 CMD curl -fsS http://127.0.0.1:8000/health/ready || exit 1
CMD ["voxdesk", "serve", "--host", "0.0.0.0", "--port", "8000"]
