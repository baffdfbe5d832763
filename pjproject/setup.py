"""Wheel of pjsua2 (pjproject's SWIG binding) as rtbridge builds it.

build.py copies this file into ``pjsip-apps/src/swig/python`` of a configured and built
pjproject tree, after SWIG has written ``pjsua2.py`` and ``pjsua2_wrap.cpp`` there, and runs
``pip wheel`` on that directory. It differs from upstream's setup.py in two ways: the
version carries rtbridge's local label (``2.17+rtbridge.2``), and the wheel holds one more
module, ``pjsua2_rtbridge``, describing the build (source checksum, compile-time limits)
so the agent can report it and check it at start.
"""

from __future__ import annotations

import json
import os
import subprocess

from setuptools import Extension, setup


def helper(target: str) -> list[str]:
    """Compiler/linker settings of the built tree, as pjproject's helper.mak prints them."""
    out = subprocess.run(
        [os.environ.get("MAKE", "make"), "--no-print-directory", "-f", "helper.mak", target],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [line for line in out.splitlines() if line.strip()]


build = json.loads(os.environ["RTBRIDGE_PJSUA2_BUILD"])
with open("pjsua2_rtbridge.py", "w") as fh:
    fh.write(
        '"""How this pjsua2 was built (written by rtbridge\'s pjproject/setup.py)."""\n\n'
        f"BUILD = {json.dumps(build, indent=4, sort_keys=True)}\n"
    )

setup(
    name="pjsua2",
    version=build["wheel_version"],
    description="pjsua2 (pjproject SIP user agent library), built by rtbridge with B2BUA limits",
    url="https://www.pjsip.org",
    license="GPL-2.0-or-later",
    py_modules=["pjsua2", "pjsua2_rtbridge"],
    ext_modules=[
        Extension(
            "_pjsua2",
            ["pjsua2_wrap.cpp"],
            libraries=helper("libs"),
            extra_compile_args=[*helper("cflags"), "-O2", "-DNDEBUG", "-w"],
            extra_link_args=helper("ldflags"),
        )
    ],
)
