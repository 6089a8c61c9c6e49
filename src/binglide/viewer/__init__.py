"""`binglide view`: glide through a binary in the browser, every view refining live.

A local web server (`serve`) and its page (plain ES modules and CSS in
``static/``, no build step). The server is a client of the public API like
any other: every picture is a `binglide.Client` request, progressive and
cancelled when the page moves on. aiohttp is imported only when a viewer
starts, so ``import binglide.viewer`` costs nothing. See docs/viewer.md.
"""

from __future__ import annotations

from .server import Viewer as Viewer
from .server import ViewerStatistics as ViewerStatistics
from .server import serve as serve
from .tiles import ClassesService as ClassesService

__all__ = ("ClassesService", "Viewer", "ViewerStatistics", "serve")
