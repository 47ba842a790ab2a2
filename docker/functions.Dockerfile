# syntax=docker/dockerfile:1
# submit, status and notify: CPU only. Build from the repository root:
#   docker build -f docker/functions.Dockerfile -t t2v/functions:0.1.0 .
# Base images are pinned by tag (no digest was available where these files were written);
# pin them by digest in your registry mirror for reproducible builds.

FROM rust:1.95.0-slim-bookworm AS rust-toolchain

# The web UI (web/ built by Vite to web/dist) and the docs page's renderer (Swagger UI), from
# npm at the versions package-lock.json pins; no install scripts run (Swagger UI's only script
# is usage analytics; esbuild and rollup come as prebuilt optional packages).
FROM node:20.19.0-bookworm-slim AS web
WORKDIR /src
COPY package.json package-lock.json ./
RUN PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --ignore-scripts --no-audit --no-fund
COPY web/ web/
RUN npm run build:web

# Builder: compiles the rust_infer extension (PyO3, abi3) and builds the t2v wheel.
FROM python:3.11.11-bookworm AS builder
ENV RUSTUP_HOME=/usr/local/rustup \
    CARGO_HOME=/usr/local/cargo \
    PATH=/usr/local/cargo/bin:$PATH \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=rust-toolchain /usr/local/rustup /usr/local/rustup
COPY --from=rust-toolchain /usr/local/cargo /usr/local/cargo
# nasm: openh264 compiles its x86 SIMD assembly only when nasm is present (3x faster encode).
RUN apt-get update \
    && apt-get install -y --no-install-recommends nasm=2.16.01-1 \
    && rm -rf /var/lib/apt/lists/*
RUN pip install "maturin==1.16.0" "uv==0.13.9"
WORKDIR /src
COPY rust_infer/ rust_infer/
RUN maturin build --release --strip --manifest-path rust_infer/Cargo.toml --out /wheels
COPY pyproject.toml uv.lock README.md ./
COPY t2v/ t2v/
# The client package (the `t2v` command's base) is a path dependency: built as a wheel too.
COPY clients/python/ clients/python/
# Exactly the locked dependency set, with hashes: the image installs what CI tested.
RUN uv export --frozen --no-emit-project --no-emit-package t2v-client \
      --extra cluster --output-file /wheels/requirements.txt \
    && pip wheel --no-deps --wheel-dir /wheels . ./clients/python

FROM python:3.11.11-slim-bookworm AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN groupadd --system --gid 10001 t2v \
    && useradd --system --uid 10001 --gid t2v --home-dir /app --shell /usr/sbin/nologin t2v
COPY --from=builder /wheels /wheels
# The cluster extras: Redis job store and rate limits, S3 artifacts.
RUN pip install --require-hashes -r /wheels/requirements.txt \
    && pip install --no-deps /wheels/rust_infer-*.whl /wheels/t2v-*.whl /wheels/t2v_client-*.whl \
    && rm -rf /wheels
WORKDIR /app
COPY functions/ functions/
# The built web UI status serves at / and the docs page's renderer (found beside functions/).
COPY --from=web /src/web/dist/ web/dist/
COPY --from=web /src/node_modules/swagger-ui-dist/ node_modules/swagger-ui-dist/
USER 10001:10001
EXPOSE 8080
# Knative sets PORT; the Service's args pick the function:
#   --target submit --source functions/submit/main.py
ENTRYPOINT ["functions-framework", "--asgi"]
