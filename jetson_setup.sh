#!/usr/bin/env bash
# Bootstrap tinyvla-edge on a freshly flashed Jetson (JetPack 6 or 7), or on an x86 dev box.
#
#   ./jetson_setup.sh --profile orin-nano-8gb
#
# 1. apt prerequisites;
# 2. a virtual environment (on a Jetson with --system-site-packages: TensorRT's Python bindings
#    exist only for the system Python);
# 3. torch for the platform: the JetPack build from the wheel index on a Jetson (never plain
#    PyPI torch: CPU-only or built for SBSA servers), torch==2.13.0 CPU on x86;
# 4. this project with the `jetson` extra;
# 5. `tinyvla-edge install` with the arguments given here (as root on a Jetson).
#
# --dry-run prints every command instead of running it and is passed on to install, which then
# prints its plan. Settings: TINYVLA_EDGE_VENV (default ./.venv), TINYVLA_EDGE_INDEX_URL (or
# --index-url; default: the Jetson AI Lab community index, the same one install uses),
# TINYVLA_EDGE_TORCH_INDEX (x86 only: an index serving the CPU torch build).
set -euo pipefail

REPO=$(cd "$(dirname "$0")" && pwd)
VENV=${TINYVLA_EDGE_VENV:-$REPO/.venv}
# Keep in step with DEFAULT_INDEX_URL in edge/install/context.py ({platform}/{cuda_tag} filled in below).
DEFAULT_INDEX_URL='https://pypi.jetson-ai-lab.io/{platform}/{cuda_tag}'
INDEX_URL=${TINYVLA_EDGE_INDEX_URL:-$DEFAULT_INDEX_URL}
X86_TORCH=torch==2.13.0
DRY_RUN=0
STAGED=0

args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    case "${args[i]}" in
        --dry-run) DRY_RUN=1 ;;
        --root | --root=*) STAGED=1 ;;
        --index-url) INDEX_URL=${args[i + 1]:-} ;;
        --index-url=*) INDEX_URL=${args[i]#--index-url=} ;;
        -h | --help)
            sed -n '2,17p' "$0"
            exit 0
            ;;
    esac
done

say() { printf '==> %s\n' "$*"; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# Run a command, or print it (shell-quoted) under --dry-run.
run() {
    if [ "$DRY_RUN" = 1 ]; then
        printf '+'
        printf ' %q' "$@"
        printf '\n'
    else
        "$@"
    fi
}

as_root() {
    if [ "$(id -u)" = 0 ]; then run "$@"; else run sudo "$@"; fi
}

is_jetson() {
    [ "$(uname -m)" = aarch64 ] && [ -f /etc/nv_tegra_release ]
}

# L4T major from the first line of /etc/nv_tegra_release: "# R36 (release), REVISION: 4.3, ...".
l4t_major() {
    sed -n '1s/^# R\([0-9]*\) (release).*/\1/p' /etc/nv_tegra_release
}

# The community index path segment: jp6 on JetPack 6, sbsa on JetPack 7 (Thor, Orin on 7.2).
wheel_platform() {
    case "$1" in
        36) echo jp6 ;;
        38 | 39) echo sbsa ;;
    esac
}

# cu126 from the installed CUDA (/usr/local/cuda -> cuda-12.6), else JetPack's default.
cuda_tag() {
    local target
    target=$(readlink -f /usr/local/cuda 2>/dev/null || true)
    if [[ "$target" =~ cuda-([0-9]+)\.([0-9]+)$ ]]; then
        echo "cu${BASH_REMATCH[1]}${BASH_REMATCH[2]}"
        return
    fi
    case "$1" in
        36) echo cu126 ;;
        38) echo cu130 ;;
        39) echo cu132 ;;
    esac
}

if is_jetson; then
    MAJOR=$(l4t_major)
    case "$MAJOR" in
        36) PY=python3.10 ;;
        38 | 39) PY=python3.12 ;;
        34 | 35) die "JetPack 5 (L4T R$MAJOR) is not supported: its Python 3.8 is too old and TensorRT's bindings exist only for it; reflash with JetPack 6.2 or newer" ;;
        *) die "unknown L4T release R$MAJOR in /etc/nv_tegra_release; supported: JetPack 6 (R36), 7 (R38/R39)" ;;
    esac
    say "Jetson, L4T R$MAJOR, system $PY"
    say "apt prerequisites"
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        python3-venv python3-pip python3-dev libopenblas-dev libjpeg-dev zlib1g-dev
    if [ ! -x "$VENV/bin/python" ]; then
        say "virtual environment $VENV (system site-packages for TensorRT)"
        run "/usr/bin/$PY" -m venv --system-site-packages "$VENV"
    fi
    [ -n "$INDEX_URL" ] || die "empty wheel index: pass --index-url URL or unset TINYVLA_EDGE_INDEX_URL for the default ($DEFAULT_INDEX_URL); plain PyPI torch does not work on a Jetson"
    PLATFORM=$(wheel_platform "$MAJOR")
    TAG=$(cuda_tag "$MAJOR")
    URL=${INDEX_URL//\{platform\}/$PLATFORM}
    URL=${URL//\{cuda_tag\}/$TAG}
    say "torch for $PLATFORM/$TAG from $URL"
    run "$VENV/bin/python" -m pip install --index-url "$URL" torch
else
    say "$(uname -m) machine (not a Jetson): development setup"
    if ! python3 -m venv --help >/dev/null 2>&1; then
        as_root apt-get update
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-venv python3-pip
    fi
    if [ ! -x "$VENV/bin/python" ]; then
        say "virtual environment $VENV"
        run python3 -m venv "$VENV"
    fi
    # The CPU build first, or pip pulls a multi-GB CUDA build to satisfy the project's torch>=2.1.
    say "torch CPU ($X86_TORCH)"
    if [ -n "${TINYVLA_EDGE_TORCH_INDEX:-}" ]; then
        run "$VENV/bin/python" -m pip install --index-url "$TINYVLA_EDGE_TORCH_INDEX" "$X86_TORCH"
    else
        run "$VENV/bin/python" -m pip install "$X86_TORCH"
    fi
fi

say "tinyvla-edge with the jetson extra"
run "$VENV/bin/python" -m pip install -e "${REPO}[jetson]"

INSTALL=("$VENV/bin/tinyvla-edge" install "$@")
if ! is_jetson && [ "$STAGED" = 0 ]; then
    say "not a Jetson: skipping 'tinyvla-edge install' (pass --root DIR to stage a Jetson image)"
    exit 0
fi
if [ "$DRY_RUN" = 1 ] && [ ! -x "$VENV/bin/tinyvla-edge" ]; then
    run "${INSTALL[@]}"
    exit 0
fi
say "tinyvla-edge install $*"
if [ "$DRY_RUN" = 1 ] || [ "$STAGED" = 1 ] || [ "$(id -u)" = 0 ]; then
    # Read-only (dry run) or staging a tree: no root needed. Printing the plan is the point.
    "${INSTALL[@]}"
else
    sudo "${INSTALL[@]}"
fi
