"""The on-disk chunk cache: keys, the store, and covering ranges with cached blocks.

Depends only on the standard library, numpy, attrs, platformdirs and
`binglide.errors`. A miss is None, never an error; an unusable directory
disables caching with one `CacheDisabledWarning`. `parse_size` reads byte
counts as people write them (``4G``): the cache's bound, the command's options.
"""

from __future__ import annotations

from .cover import Cover as Cover
from .cover import aligned_blocks as aligned_blocks
from .cover import commit_levels as commit_levels
from .cover import find_cover as find_cover
from .keys import ChunkKey as ChunkKey
from .keys import key_prefix as key_prefix
from .sizes import parse_size as parse_size
from .store import DEFAULT_MAX_BYTES as DEFAULT_MAX_BYTES
from .store import CacheDisabledWarning as CacheDisabledWarning
from .store import CacheInfo as CacheInfo
from .store import ChunkStore as ChunkStore
from .store import default_cache_dir as default_cache_dir
from .store import default_max_bytes as default_max_bytes

__all__ = (
    "DEFAULT_MAX_BYTES",
    "CacheDisabledWarning",
    "CacheInfo",
    "ChunkKey",
    "ChunkStore",
    "Cover",
    "aligned_blocks",
    "commit_levels",
    "default_cache_dir",
    "default_max_bytes",
    "find_cover",
    "key_prefix",
    "parse_size",
)
