"""Declares the C extension; everything else lives in pyproject.toml.

Environment switches (read at build time):
  GBSIP_WERROR=1     add -Wall -Wextra -Werror (the test build uses it)
  GBSIP_SANITIZE=1   build with AddressSanitizer + UndefinedBehaviorSanitizer
  GBSIP_DEBUG=1      -O0 -g with C asserts on
"""
import glob
import os

from setuptools import Extension, setup


def _flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0", "false", "no")


# csrc/core (sans-IO), csrc/io (socket pumps) and csrc/python (the binding).
PARTS = ("core", "io", "python")
sources = sorted(f for part in PARTS for f in glob.glob(os.path.join("csrc", part, "*.c")))
compile_args = ["-std=c11", "-fvisibility=hidden"]
link_args: list[str] = []
undef: list[str] = []

if _flag("GBSIP_WERROR"):
    compile_args += ["-Wall", "-Wextra", "-Werror", "-Wno-missing-field-initializers"]
if _flag("GBSIP_SANITIZE"):
    san = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
           "-fno-omit-frame-pointer", "-g", "-O1"]
    compile_args += san
    link_args += ["-fsanitize=address,undefined"]
    undef.append("NDEBUG")
elif _flag("GBSIP_DEBUG"):
    compile_args += ["-O0", "-g"]
    undef.append("NDEBUG")
else:
    compile_args += ["-O3"]

setup(
    ext_modules=[
        Extension(
            "gbsip._core",
            sources=sources,
            include_dirs=[os.path.join("csrc", part) for part in PARTS],
            libraries=["crypto"],
            extra_compile_args=compile_args,
            extra_link_args=link_args,
            undef_macros=undef,
        )
    ],
)
