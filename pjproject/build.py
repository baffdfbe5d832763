#!/usr/bin/env python3
"""Build pjsua2 from pjproject source with rtbridge's limits, cache the wheel, install it.

Why a build of our own: the PyPI ``pjsua2-python`` wheel keeps pjproject's compile-time
defaults — 4 call slots and a 64-handle select() ioqueue — so one process bridges one call
and dies under an INVITE burst (SPEC §8). The limits are macros; only a build changes them.

    python3 pjproject/build.py --python .venv/bin/python [--install] [--refresh-source]

Source, in this order:
  1. ``PJPROJECT_SOURCE``: a pjproject release tarball or an unpacked tree;
  2. the last Debian tarball this cache fetched (so a re-install needs no network);
  3. Debian's: the ``orig-Xpjproject`` tarball inside the ``asterisk`` source package of
     the suite named in build.toml, fetched with ``apt-get source --download-only`` under
     a private apt configuration (the machine's own apt setup is untouched). apt checks the
     file against the suite's signed index. ``--refresh-source`` fetches it anew.

Cache (``RTBRIDGE_CACHE``, default ``${XDG_CACHE_HOME:-~/.cache}/rtbridge``)::

    pjproject/debian/…               apt state and the fetched tarballs
    pjproject/wheels/<key>/*.whl      one wheel per build key
    pjproject/work/<key>/             the tree being built (left behind when a build fails)

The key is a SHA-256 over the source's checksum, every file of this folder and the target
Python's version and platform: the same inputs reuse the wheel in seconds, any change
rebuilds. Only the standard library is used, so this runs before ``.venv`` has anything.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Limits read back from the built headers (pjsua2_rtbridge.BUILD["limits"]).
LIMITS = (
    "PJSUA_MAX_CALLS",
    "PJSUA_MAX_CONF_PORTS",
    "PJSUA_MAX_RECORDERS",
    "PJSUA_MAX_PLAYERS",
    "PJMEDIA_FILE_PORT_BUFSIZE",
    "PJSUA_MAX_ACC",
    "PJ_IOQUEUE_MAX_HANDLES",
    "PJSIP_MAX_TSX_COUNT",
    "PJSIP_MAX_DIALOG_COUNT",
    "PJ_HAS_IPV6",
    "PJMEDIA_HAS_SRTP",
    "PJMEDIA_HAS_G722_CODEC",
    "PJMEDIA_HAS_BCG729",
    "PJSIP_HAS_TLS_TRANSPORT",
)


class BuildError(Exception):
    """A build step failed; the message says what is missing or where the log is."""


@dataclass(frozen=True)
class Source:
    path: Path  # tarball or directory
    sha256: str
    origin: str  # for humans: where it came from


def log(message: str) -> None:
    print(f"[pjsua2] {message}", file=sys.stderr, flush=True)


# -- inputs ----------------------------------------------------------------------------------


def load_config() -> dict:
    with (HERE / "build.toml").open("rb") as fh:
        return tomllib.load(fh)


def cache_root() -> Path:
    base = os.environ.get("RTBRIDGE_CACHE")
    if base:
        return Path(base) / "pjproject"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "rtbridge" / "pjproject"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_tree(root: Path) -> str:
    """Checksum of an unpacked tree: relative paths and contents, build products skipped."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and not path.is_symlink() and not rel.endswith((".o", ".a", ".depend")):
            digest.update(rel.encode() + b"\0")
            digest.update(sha256_file(path).encode())
    return digest.hexdigest()


def recipe_digest() -> str:
    """Every file of this folder and its patches: the recipe is part of what is built."""
    digest = hashlib.sha256()
    for path in sorted([*HERE.iterdir(), *(HERE / "patches").glob("*.patch")]):
        if path.is_file() and path.suffix in (".py", ".toml", ".h", ".patch"):
            digest.update(path.relative_to(HERE).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def python_tag(python: str) -> str:
    out = subprocess.run(
        [python, "-c", "import sys, sysconfig; print(sys.version.split()[0], sysconfig.get_platform())"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return out.stdout.strip()


# -- source ----------------------------------------------------------------------------------


def resolve_source(config: dict, cache: Path, refresh: bool) -> Source:
    given = os.environ.get("PJPROJECT_SOURCE")
    if given:
        path = Path(given).expanduser().resolve()
        if not path.exists():
            raise BuildError(f"PJPROJECT_SOURCE={given}: no such file or directory")
        if path.is_dir():
            return Source(path, sha256_tree(path), f"directory {path}")
        return Source(path, sha256_file(path), f"tarball {path}")
    debian = cache / "debian"
    remembered = debian / "source.json"
    if remembered.exists() and not refresh:
        known = json.loads(remembered.read_text())
        path = Path(known["path"])
        if path.exists() and sha256_file(path) == known["sha256"]:
            return Source(path, known["sha256"], known["origin"])
    source = fetch_debian_source(config["source"], debian)
    remembered.write_text(json.dumps({"path": str(source.path), "sha256": source.sha256,
                                      "origin": source.origin}))  # fmt: skip
    return source


def debian_mirror() -> tuple[str, str]:
    """(URI, keyring) of the first Debian archive the machine's apt sources name."""
    entries: list[tuple[str, str]] = []
    sources = Path("/etc/apt/sources.list.d")
    for path in sorted(sources.glob("*.sources")) if sources.is_dir() else []:
        for stanza in path.read_text().split("\n\n"):
            fields = {}
            for line in stanza.splitlines():
                if line.strip().startswith("#") or ":" not in line:
                    continue
                name, _, value = line.partition(":")
                fields[name.strip().lower()] = value.strip()
            for uri in fields.get("uris", "").split():
                entries.append((uri, fields.get("signed-by", "")))
    for path in [Path("/etc/apt/sources.list"), *sorted(sources.glob("*.list"))]:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            match = re.match(r"^\s*deb\s+(?:\[([^\]]*)\]\s+)?(\S+)", line)
            if match:
                options = dict(o.split("=", 1) for o in (match.group(1) or "").split() if "=" in o)
                entries.append((match.group(2), options.get("signed-by", "")))
    for uri, keyring in entries:
        if "security" not in uri and re.search(r"/debian/?$", uri):
            return uri.rstrip("/"), keyring or "/usr/share/keyrings/debian-archive-keyring.gpg"
    return "http://deb.debian.org/debian", "/usr/share/keyrings/debian-archive-keyring.gpg"


def fetch_debian_source(spec: dict, debian: Path) -> Source:
    """The pjproject tarball inside Debian's ``asterisk`` source package, checked by apt."""
    if shutil.which("apt-get") is None:
        raise BuildError(
            "apt-get is not available to fetch Debian's pjproject source: "
            "set PJPROJECT_SOURCE to a pjproject tarball or directory"
        )
    uri, keyring = debian_mirror()
    for sub in ("etc", "lists/partial", "cache/archives/partial", "download"):
        (debian / sub).mkdir(parents=True, exist_ok=True)
    (debian / "etc" / "sources.list").write_text(
        f"deb-src [signed-by={keyring}] {uri} {spec['debian_suite']} main\n"
    )
    options = [
        "-o", f"Dir::Etc::sourcelist={debian / 'etc' / 'sources.list'}",
        "-o", "Dir::Etc::sourceparts=-",
        "-o", f"Dir::State::lists={debian / 'lists'}",
        "-o", f"Dir::Cache={debian / 'cache'}",
        "-o", "APT::Sandbox::User=root" if os.geteuid() == 0 else "APT::Sandbox::User=",
        "-qq",
    ]  # fmt: skip
    log(f"fetching Debian's {spec['debian_package']} source ({spec['debian_suite']}) from {uri}")
    run(["apt-get", *options, "update"], debian, "apt-get update (private source list)")
    download = debian / "download"
    for old in download.iterdir():
        old.unlink()
    run(["apt-get", *options, "source", "--download-only", spec["debian_package"]], download,
        f"apt-get source --download-only {spec['debian_package']}")  # fmt: skip
    tarballs = sorted(download.glob(f"*.{spec['debian_component']}.tar.*"))
    if not tarballs:
        raise BuildError(
            f"Debian's {spec['debian_package']} source in {spec['debian_suite']} has no "
            f"{spec['debian_component']} tarball any more: set PJPROJECT_SOURCE to a "
            "pjproject release tarball (https://github.com/pjsip/pjproject/releases)"
        )
    dsc = next(download.glob("*.dsc"), None)
    version = ""
    if dsc is not None:
        match = re.search(r"^Version:\s*(\S+)", dsc.read_text(errors="replace"), re.M)
        version = match.group(1) if match else ""
    keep = debian / tarballs[0].name
    shutil.copyfile(tarballs[0], keep)
    for old in download.iterdir():
        old.unlink()
    origin = f"debian {spec['debian_suite']} {spec['debian_package']} {version} ({spec['debian_component']})"
    return Source(keep, sha256_file(keep), origin)


# -- build -----------------------------------------------------------------------------------


def check_prerequisites(config: dict, python: str) -> None:
    prereq = config["prerequisites"]
    missing = [pkg for cmd, pkg in prereq["commands"].items() if shutil.which(cmd) is None]
    missing += [pkg for pkg, path in prereq["headers"] if not Path(path).exists()]
    include, name = subprocess.run(
        [python, "-c", "import sys, sysconfig; print(sysconfig.get_paths()['include']); "
                       "print('python%d.%d' % sys.version_info[:2])"],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    if not Path(include, "Python.h").exists():
        missing.append(f"{name}-dev (Python.h for {python})")
    if missing:
        raise BuildError(
            "cannot build pjsua2, missing: " + ", ".join(sorted(set(missing)))
            + "\n  install them with scripts/system-deps (Debian, root or sudo)"
        )


def run(cmd: list[str], cwd: Path, what: str, logfile: Path | None = None,
        env: dict[str, str] | None = None) -> None:  # fmt: skip
    """Run a step; on failure raise with the tail of its output and where the rest is."""
    started = time.monotonic()
    if logfile is None:
        result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
        output = result.stdout + result.stderr
    else:
        with logfile.open("a") as fh:
            fh.write(f"\n$ {' '.join(cmd)}\n")
            fh.flush()
            result = subprocess.run(cmd, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT)
        output = logfile.read_text(errors="replace")
    if result.returncode != 0:
        tail = "\n".join(output.strip().splitlines()[-25:])
        where = f"\n  full log: {logfile}" if logfile else ""
        raise BuildError(f"{what} failed (exit {result.returncode}):\n{tail}{where}")
    if logfile is not None:
        log(f"{what}: {time.monotonic() - started:.0f} s")


def unpack(source: Source, work: Path) -> Path:
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    if source.path.is_dir():
        tree = work / "pjproject"
        shutil.copytree(source.path, tree, symlinks=True)
        return tree
    with tarfile.open(source.path) as tar:
        tar.extractall(work, filter="data")
    roots = [p for p in work.iterdir() if p.is_dir()]
    if len(roots) != 1 or not (roots[0] / "version.mak").exists():
        raise BuildError(f"{source.origin}: not a pjproject source tarball (no version.mak)")
    return roots[0]


def pjproject_version(tree: Path) -> str:
    text = (tree / "version.mak").read_text()
    parts = {k: v.strip() for k, v in re.findall(r"export PJ_VERSION_(\w+)[ \t]*:=[ \t]*([^\n]*)", text)}
    version = f"{parts.get('MAJOR', '')}.{parts.get('MINOR', '')}"
    if parts.get("REV"):
        version += "." + parts["REV"]
    return version + parts.get("SUFFIX", "")


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version)[:3])


def prepare(tree: Path, logfile: Path) -> None:
    """Apply patches/, install config_site.h, fit a DFSG-stripped tree (drop audio-device
    objects whose sources Debian removed, bdimad_dev.c today)."""
    for patch in sorted((HERE / "patches").glob("*.patch")):
        run(["patch", "-p1", "--forward", "--batch", "-i", str(patch)], tree,
            f"patch {patch.name}", logfile)  # fmt: skip
    shutil.copyfile(HERE / "config_site.h", tree / "pjlib" / "include" / "pj" / "config_site.h")
    makefile = tree / "pjmedia" / "build" / "Makefile"
    audiodev = tree / "pjmedia" / "src" / "pjmedia-audiodev"
    text = makefile.read_text()
    block = re.search(r"export PJMEDIA_AUDIODEV_OBJS \+=(?:[^\n]*\\\n)*[^\n]*\n", text)
    if block is None:
        raise BuildError("pjmedia/build/Makefile: no PJMEDIA_AUDIODEV_OBJS list to adjust")
    objs = block.group(0)
    for name in re.findall(r"\b(\w+)\.o\b", objs):
        if not any((audiodev / f"{name}{ext}").exists() for ext in (".c", ".cpp", ".m")):
            objs = re.sub(rf"(?<=[ \t]){name}\.o(?=[ \t\\\n])", "", objs)
    makefile.write_text(text.replace(block.group(0), objs))


def read_limits(tree: Path, swig: Path, logfile: Path) -> dict[str, int]:
    """The limits as the compiler sees them, defaults included: the build's own truth."""
    program = ["#include <pjsua-lib/pjsua.h>", "#include <stdio.h>", "int main(void) {"]
    for name in LIMITS:
        program.append(f'#ifdef {name}\n printf("{name} %ld\\n", (long)({name}));\n#endif')
    program.append(" return 0; }")
    probe = tree / "rtbridge_limits.c"
    probe.write_text("\n".join(program) + "\n")
    cflags = subprocess.run(
        ["make", "--no-print-directory", "-f", "helper.mak", "cflags"],
        cwd=swig, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    exe = tree / "rtbridge_limits"
    run(["gcc", *cflags, "-x", "c", str(probe), "-o", str(exe)], tree,
        "reading the build's limits", logfile)  # fmt: skip
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    return {name: int(value) for name, value in (line.split() for line in out.splitlines())}


def build_wheel(config: dict, source: Source, python: str, key: str, out: Path, cache: Path) -> Path:
    work = cache / "work" / key
    logfile = cache / "work" / f"{key}.log"
    logfile.parent.mkdir(parents=True, exist_ok=True)
    logfile.write_text(f"rtbridge pjsua2 build {key}\nsource: {source.origin}\n")
    log(f"building pjproject from {source.origin} (log: {logfile})")
    tree = unpack(source, work)
    version = pjproject_version(tree)
    minimum = config["source"]["minimum_version"]
    if version_tuple(version) < version_tuple(minimum):
        raise BuildError(f"{source.origin} is pjproject {version}; rtbridge needs >= {minimum}")
    prepare(tree, logfile)
    jobs = str(os.cpu_count() or 2)
    env = dict(os.environ, CFLAGS=config["configure"]["cflags"], CXXFLAGS=config["configure"]["cflags"])
    run(["./configure", *config["configure"]["flags"]], tree, "configure", logfile, env)
    run(["make", "dep"], tree, "make dep", logfile, env)
    run(["make", f"-j{jobs}", "lib"], tree, "make (pjproject libraries)", logfile, env)
    swig = tree / "pjsip-apps" / "src" / "swig" / "python"
    limits = read_limits(tree, swig, logfile)
    run(["make", "pjsua2_wrap.cpp"], swig, "swig (pjsua2 Python binding)", logfile, env)
    shutil.copyfile(HERE / "setup.py", swig / "setup.py")
    (swig / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools==80.9.0"]\nbuild-backend = "setuptools.build_meta"\n'
    )
    wheel_version = f"{version}+{config['wheel']['local_version']}"
    info = {
        "wheel_version": wheel_version,
        "pjproject": version,
        "source": source.origin,
        "source_sha256": source.sha256,
        "key": key,
        "limits": limits,
        "configure": config["configure"]["flags"],
    }
    env["RTBRIDGE_PJSUA2_BUILD"] = json.dumps(info)
    dist = work / "dist"
    run([python, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), "."], swig,
        "pip wheel (compiling the SWIG module)", logfile, env)  # fmt: skip
    wheels = list(dist.glob("pjsua2-*.whl"))
    if len(wheels) != 1:
        raise BuildError(f"expected one pjsua2 wheel in {dist}, found {wheels}")
    out.mkdir(parents=True, exist_ok=True)
    final = out / wheels[0].name
    shutil.copyfile(wheels[0], final)
    (out / "build.json").write_text(json.dumps(info, indent=2))
    shutil.rmtree(work)
    return final


# -- install ---------------------------------------------------------------------------------


def installed_key(python: str) -> str | None:
    probe = "import pjsua2_rtbridge as b; print(b.BUILD['key'])"
    result = subprocess.run([python, "-c", probe], capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else None


def install(python: str, wheel: Path, key: str) -> None:
    if installed_key(python) == key:
        log(f"installed: {wheel.name} (build {key[:12]})")
        return
    run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps",
         "--force-reinstall", str(wheel)], HERE, f"pip install {wheel.name}")  # fmt: skip
    smoke = (
        "import pjsua2 as pj, pjsua2_rtbridge as b\n"
        "ep = pj.Endpoint(); ep.libCreate()\n"
        "slots = pj.UaConfig().maxCalls\n"
        "assert slots == b.BUILD['limits']['PJSUA_MAX_CALLS'], slots\n"
        "print('rtbridge-smoke', ep.libVersion().full, slots, flush=True); ep.libDestroy()\n"
    )
    result = subprocess.run([python, "-c", smoke], capture_output=True, text=True)
    if result.returncode != 0:
        raise BuildError(f"the installed pjsua2 does not load:\n{result.stderr.strip()[-2000:]}")
    # pjlib logs to stdout too: pick our line.
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("rtbridge-smoke "))
    _, version, slots = line.split()
    log(f"installed: {wheel.name} (pjproject {version}, {slots} call slots)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default=sys.executable,
                        help="interpreter the wheel is built for (and installed into)")  # fmt: skip
    parser.add_argument("--install", action="store_true", help="install the wheel into --python")
    parser.add_argument("--refresh-source", action="store_true",
                        help="fetch Debian's source again instead of reusing the cached tarball")  # fmt: skip
    parser.add_argument("--rebuild", action="store_true", help="ignore a cached wheel")
    args = parser.parse_args(argv)
    python = os.path.abspath(args.python)  # not resolve(): a venv's python is a symlink
    config = load_config()
    cache = cache_root()
    try:
        cache.mkdir(parents=True, exist_ok=True)
        source = resolve_source(config, cache, args.refresh_source)
        target = python_tag(python)
        key = hashlib.sha256(
            "\n".join((source.sha256, recipe_digest(), target)).encode()
        ).hexdigest()[:32]
        out = cache / "wheels" / key
        wheel = next(out.glob("pjsua2-*.whl"), None) if out.is_dir() else None
        if wheel is None or args.rebuild:
            check_prerequisites(config, python)
            started = time.monotonic()
            wheel = build_wheel(config, source, python, key, out, cache)
            log(f"built {wheel.name} in {time.monotonic() - started:.0f} s")
        else:
            log(f"cached: {wheel}")
        if args.install:
            install(python, wheel, key)
        else:
            print(wheel)
    except BuildError as exc:
        log(f"error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
