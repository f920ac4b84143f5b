#!/usr/bin/env bash
# Builds llama.cpp's OpenAI-compatible server (`llama-server`) from the llama.cpp sources
# that the llama-cpp-python 0.3.36 source package on PyPI carries (verified by SHA-256), for
# the tests that evaluate a served model (tests/served.rs). The binary is cached: a second
# run on one machine only prints its path.
#
#   tests/models/llama-server.sh [CACHE_DIR]    # prints the path of llama-server
#
# Needs cmake and a C++ compiler (.ci/run installs them); no GPU, no curl, no web UI.
set -euo pipefail
version=0.3.36
sha=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
url=https://files.pythonhosted.org/packages/ec/e9/e7de2b0463ea3ffbf0ede6cb21b58c1258a8f6521aae45ca773a59fe7cf3/llama_cpp_python-$version.tar.gz
cache=${1:-${SYNTHPIPE_LLAMA:-$HOME/.cache/synthpipe-llama}}
bin=$cache/$version/llama-server
if [ -x "$bin" ]; then
    echo "$bin"
    exit 0
fi
mkdir -p "$cache/$version"
work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
tarball=$cache/llama_cpp_python-$version.tar.gz
if ! echo "$sha  $tarball" | sha256sum -c --status 2>/dev/null; then
    curl -fsSL --retry 3 -o "$tarball.part" "$url"
    echo "$sha  $tarball.part" | sha256sum -c --status || {
        echo "llama_cpp_python-$version.tar.gz: SHA-256 mismatch" >&2
        exit 1
    }
    mv "$tarball.part" "$tarball"
fi
tar xzf "$tarball" -C "$work" "llama_cpp_python-$version/vendor/llama.cpp"
src=$work/llama_cpp_python-$version/vendor/llama.cpp
# Portable (no -march=native: a cached binary may move between the CI machines' CPUs).
cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
    -DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
    -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF >"$work/cmake.log" 2>&1 || {
    tail -n 30 "$work/cmake.log" >&2
    exit 1
}
cmake --build "$work/build" --target llama-server -j "$(nproc)" >"$work/build.log" 2>&1 || {
    tail -n 30 "$work/build.log" >&2
    exit 1
}
cp "$work/build/bin/llama-server" "$bin.part"
mv "$bin.part" "$bin"
echo "$bin"
