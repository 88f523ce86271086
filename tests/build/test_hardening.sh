#!/usr/bin/env bash
#
# test_hardening.sh — prove that the release build is hardened (DESIGN.md:
# "release builds with PIE, full RELRO, stack protector, NX and
# _FORTIFY_SOURCE"; threat model: memory-corruption exploitation of the hub
# and the CLI).
#
# For every ELF executable under $MT_BUILD_DIR (the CLI, the test binaries,
# the benchmark; CMake's own probe programs under CMakeFiles/ excluded) it
# reads the ELF with readelf/nm and asserts:
#
#   pie      ELF type DYN with DF_1_PIE (a position-independent executable)
#   relro    a GNU_RELRO segment and BIND_NOW (full RELRO: GOT read-only)
#   nx       GNU_STACK present and not executable
#   ssp      references __stack_chk_fail (-fstack-protector-strong)
#   fortify  references some __*_chk function; a binary without any must not
#            import a function that FORTIFY always rewrites (printf family);
#            the CLI must have them
#   cet      .note.gnu.property with IBT and SHSTK (x86-64 only).  The linker
#            keeps the marking only when every input object has it, and
#            Debian 12's glibc is not built with CET: its Scrt1.o, crti.o and
#            crtn.o carry no property, so no program linked on Debian 12 is
#            marked.  When the platform's startup files lack the property the
#            check proves what is ours to prove instead — every object file
#            of our build carries IBT and SHSTK — and says so; when they have
#            it, the binary itself must be marked.
#
# Stack-clash protection leaves no trace in the ELF, so the compile commands
# are checked too (CMAKE_EXPORT_COMPILE_COMMANDS, set by the Makefile): every
# command must carry -fstack-clash-protection, -fstack-protector-strong,
# -fcf-protection, -D_FORTIFY_SOURCE=3 as the last word on FORTIFY, an
# optimisation level above -O0 (FORTIFY needs it), -Wall -Wextra -Werror and
# -std=c11 (a GNU dialect is refused: the code is ISO C with POSIX asked for
# explicitly).
#
# The sanitizer build is not a release build (ASan replaces FORTIFY): there
# the test skips itself (exit 77).  One line is printed per binary and
# property; the exit status is 1 when anything failed.
set -euo pipefail

BUILD=${MT_BUILD_DIR:-}
SRC=${MT_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
if [[ -z "$BUILD" ]]; then
	BUILD="$SRC/build"
fi
if [[ ! -f "$BUILD/CMakeCache.txt" ]]; then
	echo "FAIL  no CMake build at $BUILD (set MT_BUILD_DIR)"
	exit 1
fi
if grep -q '^MT_SANITIZE:BOOL=ON' "$BUILD/CMakeCache.txt"; then
	echo "SKIP  $BUILD is the sanitizer build: hardening is checked in the release build"
	exit 77
fi
for tool in readelf nm /usr/bin/python3; do
	command -v "$tool" >/dev/null || { echo "FAIL  $tool not installed (make deps)"; exit 1; }
done

fails=0
checks=0
pass() { printf 'PASS  %-28s %-8s %s\n' "$1" "$2" "$3"; checks=$((checks + 1)); }
fail() { printf 'FAIL  %-28s %-8s %s\n' "$1" "$2" "$3"; checks=$((checks + 1)); fails=$((fails + 1)); }
note() { printf 'NOTE  %s\n' "$*"; }

arch=$(uname -m)

# --- CET: can the platform's startup files carry the marking at all? --------
has_cet_note() { # file → 0 when its .note.gnu.property has IBT and SHSTK
	local n
	n=$(readelf -n "$1" 2>/dev/null | grep -i 'x86 feature' || true)
	[[ "$n" == *IBT* && "$n" == *SHSTK* ]]
}
platform_cet=yes
platform_missing=()
if [[ "$arch" == x86_64 ]]; then
	cc=$(sed -n 's/^CMAKE_C_COMPILER:[A-Z]*=//p' "$BUILD/CMakeCache.txt")
	cc=${cc:-cc}
	for crt in Scrt1.o crti.o crtn.o; do
		f=$("$cc" -print-file-name="$crt" 2>/dev/null || true)
		if [[ -f "$f" ]] && ! has_cet_note "$f"; then
			platform_cet=no
			platform_missing+=("$crt")
		fi
	done
	# Our own objects, checked once for all binaries.
	objs_total=0
	objs_bad=()
	while IFS= read -r -d '' o; do
		objs_total=$((objs_total + 1))
		has_cet_note "$o" || objs_bad+=("${o#"$BUILD"/}")
	done < <(find "$BUILD" -path "$BUILD/CMakeFiles/[0-9]*" -prune -o -type f -name '*.o' -print0)
fi

# --- the binaries ------------------------------------------------------------
mapfile -d '' candidates < <(find "$BUILD" -path "$BUILD/CMakeFiles" -prune -o \
	-path '*/CMakeFiles/[0-9]*' -prune -o -type f -perm -u+x -print0 | sort -z)
bins=()
for f in "${candidates[@]}"; do
	# An executable is an ELF file with a program interpreter.
	if head -c 4 "$f" 2>/dev/null | grep -q $'^\x7fELF' &&
		readelf -lW "$f" 2>/dev/null | grep -q 'INTERP'; then
		bins+=("$f")
	fi
done
if [[ ${#bins[@]} -eq 0 ]]; then
	echo "FAIL  no ELF executables under $BUILD (build first)"
	exit 1
fi

cli_seen=no
for b in "${bins[@]}"; do
	name=${b#"$BUILD"/}
	hdr=$(readelf -hW "$b")
	dyn=$(readelf -dW "$b")
	seg=$(readelf -lW "$b")
	syms=$(nm -D --undefined-only "$b" 2>/dev/null | awk '{print $NF}' | sed 's/@.*//')

	# pie
	if grep -q 'Type:[[:space:]]*DYN' <<<"$hdr" && grep -q 'FLAGS_1.*PIE' <<<"$dyn"; then
		pass "$name" pie "DYN with DF_1_PIE"
	else
		fail "$name" pie "not a PIE ($(sed -n 's/.*Type:[[:space:]]*//p' <<<"$hdr"))"
	fi

	# relro
	relro=no now=no
	grep -q 'GNU_RELRO' <<<"$seg" && relro=yes
	if grep -qE '\(FLAGS\).*BIND_NOW' <<<"$dyn" || grep -qE '\(FLAGS_1\).*NOW' <<<"$dyn" ||
		grep -q '(BIND_NOW)' <<<"$dyn"; then
		now=yes
	fi
	if [[ $relro == yes && $now == yes ]]; then
		pass "$name" relro "GNU_RELRO + BIND_NOW"
	else
		fail "$name" relro "GNU_RELRO=$relro BIND_NOW=$now"
	fi

	# nx
	stackflags=$(awk '$1 == "GNU_STACK" { f = ""; for (i = 7; i < NF; i++) f = f $i; print f }' <<<"$seg")
	if [[ -z "$stackflags" ]]; then
		fail "$name" nx "no GNU_STACK header (stack executable by default)"
	elif [[ "$stackflags" == *E* ]]; then
		fail "$name" nx "GNU_STACK is $stackflags"
	else
		pass "$name" nx "GNU_STACK $stackflags"
	fi

	# ssp
	if grep -qx '__stack_chk_fail' <<<"$syms"; then
		pass "$name" ssp "__stack_chk_fail"
	else
		fail "$name" ssp "no reference to __stack_chk_fail"
	fi

	# fortify
	chk=$(grep -E '^__[a-z0-9_]+_chk$' <<<"$syms" | grep -vx '__stack_chk_fail' || true)
	base=$(basename "$b")
	if [[ "$base" == medtrust ]]; then
		cli_seen=yes
	fi
	if [[ -n "$chk" ]]; then
		pass "$name" fortify "$(wc -l <<<"$chk") _chk functions ($(head -n 3 <<<"$chk" | paste -sd, -)...)"
	else
		plain=$(grep -xE '(printf|fprintf|vprintf|vfprintf|snprintf|vsnprintf|sprintf|vsprintf|dprintf|vdprintf|fgets|read|pread|realpath)' <<<"$syms" | paste -sd, - || true)
		if [[ "$base" == medtrust ]]; then
			fail "$name" fortify "the CLI references no __*_chk function"
		elif [[ -n "$plain" ]]; then
			fail "$name" fortify "no __*_chk but imports always-fortified $plain"
		else
			pass "$name" fortify "uses no fortifiable call"
		fi
	fi

	# cet
	if [[ "$arch" != x86_64 ]]; then
		pass "$name" cet "n/a on $arch"
	elif has_cet_note "$b"; then
		pass "$name" cet "IBT and SHSTK in .note.gnu.property"
	elif [[ $platform_cet == no ]]; then
		if [[ ${#objs_bad[@]} -eq 0 && $objs_total -gt 0 ]]; then
			pass "$name" cet "binary unmarked (platform ${platform_missing[*]} lack the note); all $objs_total objects of ours have IBT+SHSTK"
		elif [[ $objs_total -eq 0 ]]; then
			fail "$name" cet "binary unmarked and no object files under $BUILD to check instead"
		else
			fail "$name" cet "${#objs_bad[@]} objects without IBT+SHSTK: ${objs_bad[*]:0:5}"
		fi
	else
		fail "$name" cet "no IBT+SHSTK although the platform's startup files have it"
	fi
done

if [[ $cli_seen == no ]]; then
	if compgen -G "$SRC/src/cli/*.c" >/dev/null; then
		fail medtrust present "src/cli exists but $BUILD has no medtrust binary"
	else
		note "no CLI sources yet: the CLI's own FORTIFY check waits for src/cli"
	fi
fi
if [[ "$arch" == x86_64 && $platform_cet == no ]]; then
	note "the C library's startup files (${platform_missing[*]}) carry no CET property (Debian 12's glibc is built without CET), so the linker cannot mark any executable; checked our $objs_total object files instead"
fi

# --- compile commands ----------------------------------------------------------
ccjson="$BUILD/compile_commands.json"
if [[ ! -f "$ccjson" ]]; then
	fail compile_commands.json present "missing: configure with -DCMAKE_EXPORT_COMPILE_COMMANDS=ON (the Makefile does)"
else
	out=$(/usr/bin/python3 - "$ccjson" "$BUILD" <<'PY'
import json, os, shlex, sys

entries = json.load(open(sys.argv[1]))
build = sys.argv[2]
required = ["-fstack-clash-protection", "-fstack-protector-strong", "-Wall", "-Wextra", "-Werror"]
bad = 0
for e in entries:
    args = e.get("arguments") or shlex.split(e["command"])
    src = os.path.relpath(e["file"], os.path.dirname(os.path.abspath(build)))
    problems = [f for f in required if f not in args]
    if not any(a == "-fcf-protection" or a.startswith("-fcf-protection=full") for a in args):
        problems.append("-fcf-protection")
    fort = [a for a in args if a.startswith("-D_FORTIFY_SOURCE") or a == "-U_FORTIFY_SOURCE"]
    if not fort or fort[-1] != "-D_FORTIFY_SOURCE=3":
        problems.append("-D_FORTIFY_SOURCE=3 (last: %s)" % (fort[-1] if fort else "none"))
    opts = [a for a in args if a.startswith("-O")]
    if not opts or opts[-1] in ("-O0",):
        problems.append("optimisation (FORTIFY needs -O1 or more)")
    stds = [a for a in args if a.startswith("-std=")]
    if not stds or stds[-1] != "-std=c11":
        problems.append("-std=c11 (got %s)" % (stds[-1] if stds else "none"))
    if any(a.startswith("-fno-stack-protector") or a == "-fcf-protection=none"
           or a == "-fno-stack-clash-protection" for a in args):
        problems.append("a hardening flag switched off")
    if problems:
        bad += 1
        print("FAIL  %-28s %-8s missing %s" % (src, "flags", ", ".join(problems)))
    else:
        print("PASS  %-28s %-8s %s" % (src, "flags", "clash, ssp-strong, cf, FORTIFY=3, -O, warnings, c11"))
print("#bad %d %d" % (bad, len(entries)))
PY
)
	grep -v '^#bad' <<<"$out" || true
	read -r _ bad total < <(grep '^#bad' <<<"$out")
	checks=$((checks + total))
	fails=$((fails + bad))
	if [[ $total -eq 0 ]]; then
		fail compile_commands.json entries "no compile commands"
	fi
fi

echo "hardening: ${#bins[@]} binaries, $checks checks, $fails failed"
[[ $fails -eq 0 ]]
