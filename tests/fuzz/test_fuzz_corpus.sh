#!/usr/bin/env bash
#
# test_fuzz_corpus.sh — replay every seed of every fuzz harness in each
# `make test` (STYLE.md: "One libFuzzer harness per input format, its
# corpus replayed in make test").
#
# libFuzzer needs clang and is run on demand (`make fuzz`); the corpora it
# grows from are committed under fuzz/corpus/<harness>/.  So that a harness
# cannot rot between fuzzing sessions and a seed that once crashed stays
# fixed, this test compiles each fuzz/fuzz_*.c with fuzz/replay_main.c — a
# main() that feeds files to LLVMFuzzerTestOneInput — against the
# libmedtrust.a of the build under test ($MT_BUILD_DIR), with that build's
# compiler, and replays the harness's whole corpus.  In build-asan/ the
# library and the harness run under AddressSanitizer and UBSan, so a seed
# that reads out of bounds fails here exactly as under the fuzzer; in the
# release build the harnesses' own assertions (round trips, verdict
# consistency) still hold.
#
# The replay programs are built in a temporary directory, outside the build
# tree, so the hardening check never mistakes them for release binaries.
# A harness without a corpus, a harness that does not compile, and any
# crash fail the test.
set -euo pipefail

SRC=${MT_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${MT_BUILD_DIR:-$SRC/build}
cache="$BUILD/CMakeCache.txt"
if [[ ! -f "$cache" ]]; then
	echo "FAIL  no CMake build at $BUILD (set MT_BUILD_DIR)"
	exit 1
fi
lib="$BUILD/libmedtrust.a"
if [[ ! -f "$lib" ]]; then
	lib=$(find "$BUILD" -name libmedtrust.a -print -quit)
fi
if [[ -z "$lib" || ! -f "$lib" ]]; then
	echo "FAIL  libmedtrust.a not found under $BUILD (build first)"
	exit 1
fi

cc=$(sed -n 's/^CMAKE_C_COMPILER:[A-Z]*=//p' "$cache")
cc=${cc:-cc}
cflags=(-std=c11 -Wall -Wextra -Werror -O1 -g -I"$SRC/include" -I"$SRC/fuzz")
ldflags=()
mode=release
if grep -q '^MT_SANITIZE:BOOL=ON' "$cache"; then
	mode=sanitizer
	cflags+=(-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
	ldflags+=(-fsanitize=address,undefined)
fi
if grep -q '^MT_FUZZ:BOOL=ON' "$cache"; then
	# The library carries libFuzzer's coverage hooks; the runtime provides them.
	ldflags+=(-fsanitize=fuzzer-no-link)
fi
# libmedtrust's own dependencies (the root CMakeLists' pkg_check_modules).
read -r -a libs <<<"$(pkg-config --libs libcbor libcrypto p11-kit-1 sqlite3)"
libs+=(-ldl -lm)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

harnesses=("$SRC"/fuzz/fuzz_*.c)
if [[ ! -e "${harnesses[0]}" ]]; then
	echo "FAIL  no harnesses in $SRC/fuzz"
	exit 1
fi

fails=0 total_files=0
for h in "${harnesses[@]}"; do
	name=$(basename "$h" .c)
	corpus="$SRC/fuzz/corpus/$name"
	n=$(find "$corpus" -maxdepth 1 -type f 2>/dev/null | wc -l)
	if [[ $n -eq 0 ]]; then
		echo "FAIL  $name: no seed corpus in fuzz/corpus/$name"
		fails=$((fails + 1))
		continue
	fi
	if ! "$cc" "${cflags[@]}" "$h" "$SRC/fuzz/replay_main.c" "$lib" "${libs[@]}" \
		"${ldflags[@]}" -o "$tmp/$name" 2>"$tmp/$name.cc.log"; then
		echo "FAIL  $name: does not compile against $lib"
		cat "$tmp/$name.cc.log"
		fails=$((fails + 1))
		continue
	fi
	start=$(date +%s.%N)
	if timeout 600 "$tmp/$name" "$corpus" >"$tmp/$name.log" 2>&1; then
		secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
		echo "PASS  $name: $n seed files replayed ($mode build, ${secs} s)"
		total_files=$((total_files + n))
	else
		echo "FAIL  $name: crashed replaying fuzz/corpus/$name ($mode build)"
		tail -n 40 "$tmp/$name.log"
		fails=$((fails + 1))
	fi
done

echo "fuzz corpus: ${#harnesses[@]} harnesses, $total_files files replayed, $fails failed"
[[ $fails -eq 0 ]]
