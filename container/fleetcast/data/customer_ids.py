"""Customer ids that are safe as file names: they can never escape a folder or collide.

Used by `split` (folder names) and by `train` (checkpoint names for flat and bucket inputs), so a
customer has the same name at every stage.
"""

from __future__ import annotations

import hashlib
import re

MAX_ID_LENGTH = 100
_SAFE_ID = re.compile(rf"[A-Za-z0-9_-][A-Za-z0-9._-]{{0,{MAX_ID_LENGTH - 1}}}")
_UNSAFE_CHAR = re.compile(r"[^A-Za-z0-9._-]")


def safe_customer_id(raw: str) -> str:
    """A plain file name (no separators, not hidden, not '.' or '..') for a raw id.

    Ids that are already safe are kept; any other id gets a cleaned prefix plus a hash of the raw id, so
    distinct raw ids stay distinct. Safe names map to themselves, so `train` names a model exactly as
    `split` named its folder; the rare raw id spelled like a renamed one is caught by split's clash check.
    """
    if _SAFE_ID.fullmatch(raw):
        return raw
    cleaned = _UNSAFE_CHAR.sub("_", raw).lstrip(".")[:60] or "id"
    digest = hashlib.blake2b(raw.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()
    return f"{cleaned}--{digest}"
