#!/usr/bin/env python3
"""Checks the thread annotations (ABSL_GUARDED_BY, ABSL_EXCLUSIVE_LOCKS_REQUIRED, ...) of every
project source with clang's -Wthread-safety, using the compile commands of any configured build
(g++ or clang): python3 fuzz/thread_safety.py [BUILD_DIR]   (default: build)
Prints each warning and the count; exits 1 when there is any. Syntax-only: nothing is built."""
import json, os, shlex, subprocess, sys

build = sys.argv[1] if len(sys.argv) > 1 else "build"
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
commands = json.load(open(os.path.join(build, "compile_commands.json")))
warnings = []
for c in commands:
    src = os.path.realpath(c["file"])
    rel = os.path.relpath(src, root)
    if rel.startswith(("..", "build", "tests", "bench", "fuzz")) or not rel.endswith(".cc"):
        continue
    args = shlex.split(c["command"])[1:]
    out = []
    skip = False
    for a in args:
        if skip:
            skip = False
            continue
        if a == "-o":
            skip = True
            continue
        if a == "-c" or a.startswith("-fsanitize") or a.startswith("-fno-sanitize"):
            continue
        out.append(a)
    cmd = ["clang++", "-fsyntax-only", "-Wthread-safety", "-Wthread-safety-beta"] + out
    r = subprocess.run(cmd, cwd=c["directory"], capture_output=True, text=True)
    lines = [l for l in r.stderr.splitlines() if "-Wthread-safety" in l]
    print(f"{rel}: {len(lines)}", flush=True)
    for l in lines:
        print("   ", l, flush=True)
    warnings += lines
print(f"thread-safety warnings: {len(warnings)}")
sys.exit(1 if warnings else 0)
