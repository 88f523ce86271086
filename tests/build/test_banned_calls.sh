#!/usr/bin/env bash
#
# test_banned_calls.sh — no call of a banned C function in our code
# (STYLE.md "Errors and memory", in the manner of curl's checksrc).
#
# Banned: atoi (no error reporting, undefined on overflow), sprintf and
# vsprintf (unbounded), strcpy and strcat (unbounded), strtok (hidden global
# state) and strtok_r too (it writes into its input, which the parsers here
# never own; split with memchr/strcspn instead), gets (unbounded by design).
# The bounded replacements — snprintf, vsnprintf, strtoul/strtoll with end
# and errno checks, memcpy with an explicit length — are not matched: the
# pattern requires a word boundary before the name, so "snprintf(" is not
# "sprintf(" and "fgets(" is not "gets(".
#
# Scanned: every .c and .h file under src/, include/, fuzz/, bench/,
# plugins/ and tests/.  Comments and string/character literals are blanked out first
# (keeping line numbers), so prose that names a banned function is fine;
# only code is judged.  A self-test of the matcher runs first, so a broken
# pattern cannot pass silently.
set -euo pipefail

SRC=${MT_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$SRC"

dirs=()
for d in src include fuzz bench tests plugins; do
	[[ -d "$d" ]] && dirs+=("$d")
done

/usr/bin/python3 - "${dirs[@]}" <<'PY'
import os, re, sys

BANNED = ["atoi", "sprintf", "vsprintf", "strcpy", "strcat", "strtok", "strtok_r", "gets"]
CALL = re.compile(r"(?<![A-Za-z0-9_])(" + "|".join(BANNED) + r")\s*\(")

def blank_comments_and_literals(text):
    """Replace comments and string/char literals by spaces, keeping newlines."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append(c + re.sub(r"[^\n]", " ", text[i + 1:j - 1]) + (c if j - 1 > i else ""))
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)

def offenders(text):
    clean = blank_comments_and_literals(text)
    for ln, line in enumerate(clean.split("\n"), 1):
        for m in CALL.finditer(line):
            yield ln, m.group(1)

# Self-test: the matcher must catch each banned call and nothing bounded.
sample = "\n".join([
    "x = atoi(s);", "sprintf(b, f);", "vsprintf (b, f, ap);", "strcpy(a, b);",
    "strcat(a, b);", "p = strtok(s, d);", "p = strtok_r(s, d, &q);", "gets(b);",
    "snprintf(b, n, f); vsnprintf(b, n, f, ap); fgets(b, n, f); strtoul(s, &e, 10);",
    "/* sprintf(b) in a comment */ puts(\"strcpy(a, b)\"); // atoi(x)",
    "my_strcpy(a, b); x.gets(b);",
])
got = [name for _, name in offenders(sample)]
want = ["atoi", "sprintf", "vsprintf", "strcpy", "strcat", "strtok", "strtok_r", "gets", "gets"]
# "x.gets(b)" is a member call the simple matcher also flags; the expected
# list says so, which keeps the self-test honest about the matcher's reach.
if got != want:
    print("FAIL  matcher self-test: got %s, want %s" % (got, want))
    sys.exit(1)

bad, files = 0, 0
for top in sys.argv[1:]:
    for root, dnames, fnames in os.walk(top):
        dnames[:] = sorted(d for d in dnames if not d.startswith("."))
        for f in sorted(fnames):
            if not f.endswith((".c", ".h")):
                continue
            path = os.path.join(root, f)
            files += 1
            with open(path, encoding="utf-8", errors="replace") as fh:
                text = fh.read()
            lines = text.split("\n")
            for ln, name in offenders(text):
                bad += 1
                print("FAIL  %s:%d: %s: %s" % (path, ln, name, lines[ln - 1].strip()))
print("banned calls: %d C files scanned, %d offence(s)" % (files, bad))
sys.exit(1 if bad else 0)
PY
