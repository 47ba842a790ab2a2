# syntax=docker/dockerfile:1
# infer: Mochi-1 on one NVIDIA GPU (also runs on CPU, e.g. the dev overlay's tiny model).
# Build from the repository root:
#   docker build -f docker/infer.Dockerfile -t t2v/infer:0.1.0 .
# CUDA comes with PyTorch's Linux wheels (the CUDA 12 runtime, cuDNN and NCCL as pip
# packages); the node's NVIDIA driver is mounted by the NVIDIA container toolkit, so the
# runtime image needs no CUDA base. Base images are pinned by tag (no digest was available
# where these files were written); pin them by digest in your registry mirror.

FROM rust:1.95.0-slim-bookworm AS rust-toolchain

# Builder: compiles the rust_infer extension (PyO3 abi3, openh264 from source) and builds
# the t2v wheel.
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
      --extra model --extra cluster --output-file /wheels/requirements.txt \
    && pip wheel --no-deps --wheel-dir /wheels . ./clients/python

FROM python:3.11.11-slim-bookworm AS runtime
# HF_HOME: the model cache volume is mounted at /models (knative/base/infer.yaml).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    HF_HOME=/models/hf
RUN groupadd --system --gid 10001 t2v \
    && useradd --system --uid 10001 --gid t2v --home-dir /app --shell /usr/sbin/nologin t2v
COPY --from=builder /wheels /wheels
# The model stack (torch with CUDA, diffusers) and the cluster extras. nvidia-ml-py lets
# t2v.metrics report GPU utilisation.
RUN pip install --require-hashes -r /wheels/requirements.txt \
    && pip install --no-deps /wheels/rust_infer-*.whl /wheels/t2v-*.whl /wheels/t2v_client-*.whl \
        "nvidia-ml-py==12.560.30" \
    && rm -rf /wheels
WORKDIR /app
COPY functions/infer/ functions/infer/
RUN mkdir -p /models && chown 10001:10001 /models
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["functions-framework", "--asgi"]
CMD ["--target", "infer", "--source", "functions/infer/main.py"]
