"""Customer ids that are safe as file names: they can never escape a folder or collide."""

from __future__ import annotations

import hashlib
import re

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def safe_customer_id(raw: str) -> str:
    """`raw` itself when it is a plain name; otherwise a cleaned name plus a hash of the original.

    The hash suffix keeps two different raw ids (say `a/b` and `a_b`) from mapping to one name.
    """
    if raw and not _UNSAFE.search(raw) and not raw.startswith(".") and len(raw) <= 128:
        return raw
    cleaned = _UNSAFE.sub("_", raw).lstrip(".")[:100] or "customer"
    digest = hashlib.blake2b(raw.encode("utf-8", "surrogatepass"), digest_size=4).hexdigest()
    return f"{cleaned}-{digest}"
