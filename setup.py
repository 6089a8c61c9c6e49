"""The one thing pyproject.toml cannot say: binglide's optional C extension.

``binglide.transports._zmqio`` receives and sends a whole ZeroMQ message in
one call (``src/binglide/transports/_zmqio.c`` says why). It is optional:
where no C compiler is found the build goes on without it, with a warning,
and binglide goes through pyzmq (the same frames, slower).
"""

from __future__ import annotations

import sys

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "binglide.transports._zmqio",
            ["src/binglide/transports/_zmqio.c"],
            # dlopen/dlsym: in libc from glibc 2.34 on, in libdl before.
            libraries=["dl"] if sys.platform.startswith("linux") else [],
            optional=True,
        )
    ]
)
