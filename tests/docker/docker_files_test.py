#!/usr/bin/python3
"""Checks deploy/docker/*.Dockerfile against this build tree (no container engine needed).

Usage: docker_files_test.py SOURCE_DIR BUILD_DIR [DOCKERFILE...]
       docker_files_test.py --packages SOURCE_DIR BUILD_DIR BINARY...   (prints the Debian
       runtime packages the installed BINARYs need; to write a runtime-packages list)

Installs BUILD_DIR into a temporary prefix (cmake --install) and checks, for each Dockerfile:
  * builder stages (the ones that COPY the repository) RUN only what CI runs: the commands of
    .ci/run that install (deploy/install-deps.sh, exactly as .ci/run calls it) and `make` with
    targets that build what `make test` builds (build, install: both depend on `build`);
  * every `COPY --from=<builder>` source is a path `make install PREFIX=<prefix>` produces;
  * the final stage's USER is numeric and not 0, its ENTRYPOINT is exec form (JSON) and names a
    binary copied from the install;
  * its runtime-packages list (COPY'd into the final stage and fed to apt-get) is exactly the
    Debian packages that own the shared libraries `ldd` reports for the copied binaries and
    libraries (less libc6, libstdc++6, libgcc-s1, which debian:12-slim has), and every library no
    package owns (CUDA's, NCCL's) is copied from another image;
  * an image that copies the civetweb shim also makes the unversioned libcrypto.so civetweb
    dlopens (libssl-dev, which has it, is not installed at run time).
And that .dockerignore keeps build trees and .git out without dropping a file git tracks.
Exits 1 with one line per problem.
"""
import fnmatch
import glob
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile

BASE_PACKAGES = {"libc6", "libstdc++6", "libgcc-s1"}  # in debian:12-slim already
# The runtimes of `make test SANITIZE=address`: the images build without SANITIZE, so a sanitizer
# build tree's extra libraries are not theirs.
SANITIZER_PACKAGES = re.compile(r"^lib(asan|ubsan|lsan|tsan)\d*$")
BUILD_TARGETS = {"build", "install"}  # both depend on `build`, the build `make test` runs

problems = []


def fail(msg):
    problems.append(msg)


# --- Dockerfile parsing -----------------------------------------------------------------------
class Stage:
    def __init__(self, image, name, line):
        self.image, self.name, self.line = image, name, line
        self.instructions = []  # (keyword, args, line)


def parse_dockerfile(path):
    """Stages of a Dockerfile: continuation lines joined, comments dropped, ARGs before the first
    FROM substituted into FROM."""
    logical, buf, start = [], "", 0
    with open(path) as f:
        for n, raw in enumerate(f, 1):
            line = raw.rstrip("\n")
            if not buf and (not line.strip() or line.lstrip().startswith("#")):
                continue
            if buf and line.lstrip().startswith("#"):
                continue  # comment inside a continued instruction
            if not buf:
                start = n
            if line.endswith("\\"):
                buf += line[:-1] + " "
                continue
            logical.append((start, (buf + line).strip()))
            buf = ""
    if buf:
        fail(f"{path}: ends inside a continued line")
    args, stages = {}, []
    for n, text in logical:
        kw, _, rest = text.partition(" ")
        kw, rest = kw.upper(), rest.strip()
        if kw == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
            continue
        if kw == "FROM":
            for k, v in args.items():
                rest = rest.replace("${%s}" % k, v).replace("$" + k, v)
            words = rest.split()
            words = [w for w in words if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name, n))
            continue
        if not stages:
            fail(f"{path}:{n}: {kw} before the first FROM")
            continue
        stages[-1].instructions.append((kw, rest, n))
    return stages


def copy_parts(args):
    """COPY's flags, sources and destination (shell form only)."""
    words = shlex.split(args)
    flags = {}
    while words and words[0].startswith("--"):
        k, _, v = words.pop(0)[2:].partition("=")
        flags[k] = v
    if len(words) < 2:
        return flags, [], None
    return flags, words[:-1], words[-1]


def split_commands(run):
    """A RUN's shell command split at &&, ||, ; and | into word lists."""
    out = []
    for part in re.split(r"&&|\|\||;|\|", run):
        part = part.strip()
        if part:
            out.append(shlex.split(part))
    return out


# --- The install tree and the CI script --------------------------------------------------------
def ci_install_commands(source):
    """The lines of .ci/run that run a repository script (deploy/...)."""
    cmds = []
    with open(os.path.join(source, ".ci/run")) as f:
        for line in f:
            line = line.strip()
            if line.startswith("deploy/"):
                cmds.append(shlex.split(line))
            elif line.startswith("make "):
                cmds.append(shlex.split(line))
    return cmds


def make_prerequisites(source, target):
    with open(os.path.join(source, "Makefile")) as f:
        for line in f:
            m = re.match(r"^%s:(?!=)(.*)$" % re.escape(target), line)
            if m:
                return m.group(1).split()
    return None


def ldd_libraries(path):
    out = subprocess.run(["ldd", path], capture_output=True, text=True)
    libs = {}
    for line in out.stdout.splitlines():
        m = re.match(r"\s*(\S+) => (not found|\S+)", line)
        if m:
            libs[m.group(1)] = m.group(2)
    return libs


def path_variants(path):
    """A library path as dpkg may have recorded it: as given, real, /lib <-> /usr/lib."""
    out = [path, os.path.realpath(path)]
    for p in list(out):
        if p.startswith("/usr/lib/"):
            out.append(p[len("/usr"):])
        elif p.startswith("/lib/"):
            out.append("/usr" + p)
    return out


def owners(paths):
    """{path: package} for the paths dpkg knows, in one dpkg -S call."""
    out = subprocess.run(["dpkg", "-S"] + sorted(set(paths)), capture_output=True, text=True)
    found = {}
    for line in out.stdout.splitlines():
        pkg, sep, owned = line.partition(": ")
        if sep and "diversion" not in pkg:
            found[owned.strip()] = pkg.split(",")[0].split(":")[0]
    return found


def needed_packages(files):
    """{package: {sonames}} and {soname: path} of the libraries no package owns."""
    libs = {}
    for f in files:
        for soname, where in ldd_libraries(f).items():
            if where == "not found":
                fail(f"ldd {f}: {soname} not found")
            else:
                libs[soname] = where
    known = owners([v for w in libs.values() for v in path_variants(w)])
    packages, unowned = {}, {}
    for soname, where in libs.items():
        pkg = next((known[v] for v in path_variants(where) if v in known), None)
        if pkg is None:
            unowned[soname] = where
        elif pkg not in BASE_PACKAGES and not SANITIZER_PACKAGES.match(pkg):
            packages.setdefault(pkg, set()).add(soname)
    return packages, unowned


def read_package_list(path):
    pkgs = []
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                pkgs.append(line)
    return pkgs


# --- The checks ----------------------------------------------------------------------------------
def check_install_sources(rel, n, stage, prefix, sources, prefix_dir):
    """Fails for each COPY --from=<builder> source the install does not have; returns the matches
    (paths under prefix_dir)."""
    prefix = prefix.rstrip("/")
    matches = []
    for src in sources:
        if not (src == prefix or src.startswith(prefix + "/")):
            fail(f"{rel}:{n}: COPY --from={stage} {src}: not under the install prefix {prefix}")
            continue
        found = glob.glob(prefix_dir + src[len(prefix):])
        if not found:
            fail(f"{rel}:{n}: COPY --from={stage} {src}: `make install` does not produce it "
                 f"(nothing at {src[len(prefix) + 1:] or '.'} under the install)")
        matches += found
    return matches


def check_dockerfile(path, source, prefix_dir):
    rel = os.path.relpath(path, source)
    stages = parse_dockerfile(path)
    if not stages:
        fail(f"{rel}: no FROM")
        return
    names = {s.name for s in stages if s.name}
    ci = ci_install_commands(source)
    ci_scripts = [c for c in ci if c[0] != "make"]
    builders = {}  # stage name -> install prefix
    for s in stages:
        copies_repo = any(kw == "COPY" and copy_parts(a)[1][:1] == ["."] and
                          "from" not in copy_parts(a)[0] for kw, a, _ in s.instructions)
        if not copies_repo:
            continue
        if not s.name:
            fail(f"{rel}:{s.line}: the builder stage has no name (FROM ... AS builder)")
            continue
        prefix, seen_scripts = None, []
        for kw, a, n in s.instructions:
            if kw in ("ENV", "ARG", "SHELL"):
                fail(f"{rel}:{n}: {kw} in the builder stage: the image must build as CI does")
            if kw != "RUN":
                continue
            for words in split_commands(a):
                if words in ci_scripts:
                    seen_scripts.append(words)
                elif words[0] == "make":
                    targets = [w for w in words[1:] if "=" not in w and not w.startswith("-")]
                    extra = [w for w in words[1:] if w.startswith("-") and not w.startswith("-j")]
                    if not targets or set(targets) - BUILD_TARGETS or extra:
                        fail(f"{rel}:{n}: builder runs `{' '.join(words)}`; only `make` with "
                             f"{sorted(BUILD_TARGETS)} (what CI's `make test` builds) is allowed")
                    for w in words[1:]:
                        if w.startswith("PREFIX="):
                            prefix = w[len("PREFIX="):]
                        elif "=" in w and not w.startswith("JOBS="):
                            fail(f"{rel}:{n}: builder sets {w}: the image must build what CI "
                                 "builds (only PREFIX= and JOBS= may be given)")
                else:
                    fail(f"{rel}:{n}: builder stage runs `{' '.join(words)}`, which CI (.ci/run) "
                         f"does not; allowed: {[' '.join(c) for c in ci_scripts]} and make "
                         f"{sorted(BUILD_TARGETS)}")
        for c in ci_scripts:
            if c not in seen_scripts:
                fail(f"{rel}: builder stage '{s.name}' does not run `{' '.join(c)}` as .ci/run does")
        if prefix is None:
            fail(f"{rel}: builder stage '{s.name}' never runs `make install PREFIX=...`")
            continue
        builders[s.name] = prefix
    if not builders:
        fail(f"{rel}: no builder stage (one that COPYs the repository and runs .ci/run's scripts)")
        return

    for s in stages[:-1]:
        for kw, a, n in s.instructions:
            if kw in ("COPY", "ADD"):
                flags, sources, _ = copy_parts(a)
                if flags.get("from") in builders:
                    check_install_sources(rel, n, flags["from"], builders[flags["from"]],
                                          sources, prefix_dir)

    final = stages[-1]
    external = {s.name for s in stages if s.name and s.image not in names and s.name not in builders
                and not any(kw == "RUN" for kw, _, _ in s.instructions)}
    installed, copied_globs, list_file, runs = [], [], None, []
    for kw, a, n in final.instructions:
        if kw == "RUN":
            runs.append((a, n))
            for words in split_commands(a):
                if words[0] in ("make", "cmake") or any("install-deps" in w for w in words):
                    fail(f"{rel}:{n}: the runtime stage builds or installs build dependencies")
        if kw != "COPY" and kw != "ADD":
            continue
        flags, sources, dest = copy_parts(a)
        src_stage = flags.get("from")
        if src_stage in builders:
            for m in check_install_sources(rel, n, src_stage, builders[src_stage], sources,
                                           prefix_dir):
                if os.path.isdir(m):
                    for root, _, files in os.walk(m):
                        for f in files:
                            installed.append((os.path.join(root, f), None))
                else:
                    final_path = (os.path.join(dest, os.path.basename(m))
                                  if dest.endswith("/") else dest)
                    installed.append((m, final_path))
        elif src_stage in external:
            copied_globs += [os.path.basename(s) for s in sources]
        elif src_stage is None:
            for src in sources:
                if "runtime-packages" in os.path.basename(src):
                    list_file = src
                    list_dest = (dest + os.path.basename(src)) if dest.endswith("/") else dest
        elif src_stage:
            fail(f"{rel}:{n}: COPY --from={src_stage}: unknown stage")

    # USER and ENTRYPOINT of the final stage.
    users = [(a, n) for kw, a, n in final.instructions if kw == "USER"]
    if not users:
        fail(f"{rel}: the final stage has no USER (it would run as root)")
    else:
        user, n = users[-1]
        if not re.fullmatch(r"\d+(:\d+)?", user) or user.split(":")[0] == "0":
            fail(f"{rel}:{n}: USER {user}: must be a numeric, non-root uid[:gid]")
    entries = [(a, n) for kw, a, n in final.instructions if kw == "ENTRYPOINT"]
    if not entries:
        fail(f"{rel}: the final stage has no ENTRYPOINT")
    else:
        a, n = entries[-1]
        try:
            argv = json.loads(a)
        except ValueError:
            argv = None
        if not isinstance(argv, list) or not argv:
            fail(f"{rel}:{n}: ENTRYPOINT {a}: must be exec form (a JSON array), no shell")
        else:
            binaries = {dest: src for src, dest in installed if dest}
            if argv[0] not in binaries:
                fail(f"{rel}:{n}: ENTRYPOINT {argv[0]} is not a file copied from the install")
            elif not os.access(binaries[argv[0]], os.X_OK):
                fail(f"{rel}:{n}: ENTRYPOINT {argv[0]} is not executable in the install")

    # Runtime libraries.
    elf = [src for src, _ in installed if open(src, "rb").read(4) == b"\x7fELF"]
    if not elf:
        fail(f"{rel}: the final stage copies no binary from the install")
    needed, unowned = needed_packages(elf)
    if list_file is None:
        fail(f"{rel}: the final stage does not COPY a runtime-packages list")
    else:
        listed = read_package_list(os.path.join(source, list_file))
        if not any(list_dest in a and "apt-get install" in a for a, _ in runs):
            fail(f"{rel}: no RUN installs the packages of {list_file} (copied to {list_dest}) "
                 "with apt-get install")
        for pkg in sorted(set(needed) - set(listed)):
            fail(f"{list_file}: lacks {pkg} (provides {', '.join(sorted(needed[pkg]))}, which "
                 f"{rel}'s binaries need; ldd)")
        for pkg in sorted(set(listed) - set(needed)):
            fail(f"{list_file}: lists {pkg}, which no binary {rel} copies needs (ldd)")
    for soname, where in sorted(unowned.items()):
        if not any(fnmatch.fnmatch(soname, g) or fnmatch.fnmatch(g, soname + "*") or
                   g.startswith(soname) for g in copied_globs):
            fail(f"{rel}: {soname} ({where}, in no Debian package) is not copied from another "
                 "image into the final stage")
    if any(os.path.basename(s) == "libcohort_civetweb_ssl_compat.so" for s, _ in installed):
        if not any("libcrypto.so" in a for a, _ in runs):
            fail(f"{rel}: copies the civetweb shim but does not make libcrypto.so (civetweb "
                 "dlopens the unversioned name, from libssl-dev, which the runtime lacks)")


def check_dockerignore(source):
    path = os.path.join(source, ".dockerignore")
    if not os.path.exists(path):
        fail(".dockerignore: missing (the build context would carry build trees and .git)")
        return
    patterns = [l.strip() for l in open(path) if l.strip() and not l.startswith("#")]
    for must in (".git", "build"):
        if not any(fnmatch.fnmatch(must, p.rstrip("/")) for p in patterns):
            fail(f".dockerignore: does not exclude {must}")
    tracked = subprocess.run(["git", "-C", source, "ls-files"], capture_output=True, text=True)
    if tracked.returncode != 0:
        return  # not a git checkout: nothing to compare with
    for f in tracked.stdout.splitlines():
        parts = f.split("/")
        for p in patterns:
            if p.startswith("!"):
                continue
            p = p.rstrip("/")
            if any(fnmatch.fnmatch("/".join(parts[:i]), p) for i in range(1, len(parts) + 1)):
                fail(f".dockerignore: {p} excludes {f}, which git tracks (the build needs it)")
                break


def main(argv):
    if len(argv) >= 4 and argv[1] == "--packages":
        source, build = argv[2], argv[3]
        with tempfile.TemporaryDirectory() as prefix:
            install(build, prefix)
            needed, unowned = needed_packages([os.path.join(prefix, b) for b in argv[4:]])
        for pkg in sorted(needed):
            print(f"{pkg}  # {' '.join(sorted(needed[pkg]))}")
        for soname, where in sorted(unowned.items()):
            print(f"# in no package: {soname} ({where})")
        return 1 if problems else 0
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    source, build = argv[1], argv[2]
    dockerfiles = argv[3:] or sorted(glob.glob(os.path.join(source, "deploy/docker/*.Dockerfile")))
    if not dockerfiles:
        fail("no deploy/docker/*.Dockerfile")
    for target in BUILD_TARGETS:
        if "build" != target and "build" not in (make_prerequisites(source, target) or []):
            fail(f"Makefile: `{target}` no longer depends on `build`")
    if "build" not in (make_prerequisites(source, "test") or []):
        fail("Makefile: `test` no longer depends on `build`")
    with tempfile.TemporaryDirectory() as prefix:
        install(build, prefix)
        for d in dockerfiles:
            check_dockerfile(d, source, prefix)
    check_dockerignore(source)
    for p in problems:
        print("FAIL: " + p)
    if not problems:
        print(f"ok: {len(dockerfiles)} Dockerfiles and .dockerignore")
    return 1 if problems else 0


def install(build, prefix):
    out = subprocess.run(["cmake", "--install", build, "--prefix", prefix],
                         capture_output=True, text=True)
    if out.returncode != 0:
        print(f"cmake --install {build} failed:\n{out.stdout}{out.stderr}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
