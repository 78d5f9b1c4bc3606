"""Does the JetPack wheel index answer, and does it serve torch for this Python? (reference §4.1)

pip reads a PEP 503 "simple" index: `<index>/<project>/` is an HTML page with one anchor per
file. `doctor` asks for `<index>/torch/` before `install` needs it, so a moved host (the community
index has moved twice) or a wrong platform/CUDA path is found before anything is installed.
"""

from __future__ import annotations

import html
import re
import urllib.error
import urllib.request
from dataclasses import dataclass

ANCHOR_TEXT = re.compile(r"<a\s[^>]*>([^<]+)</a>", re.IGNORECASE)


@dataclass(frozen=True)
class IndexAnswer:
    ok: bool
    detail: str  # one line: what the index serves, or why it could not be asked


def torch_wheels(page: str, python: str) -> list[str]:
    """The torch wheels on a PEP 503 project page built for CPython `python` (3.10) on aarch64."""
    tag = "cp" + python.replace(".", "")
    names = [html.unescape(m.group(1)).strip() for m in ANCHOR_TEXT.finditer(page)]
    return [n for n in names
            if n.startswith("torch-") and n.endswith(".whl") and f"-{tag}-" in n and "aarch64" in n]


def check_index(index_url: str, python: str, timeout_s: float = 5.0) -> IndexAnswer:
    """Fetch `<index_url>/torch/` and look for a torch wheel for `python` on aarch64."""
    page_url = index_url.rstrip("/") + "/torch/"
    try:
        with urllib.request.urlopen(page_url, timeout=timeout_s) as response:  # follows redirects
            page = response.read(4 * 2**20).decode("utf-8", errors="replace")
    except urllib.error.HTTPError as e:
        return IndexAnswer(False, f"{page_url} answered HTTP {e.code}: no torch here (wrong platform/CUDA path?)")
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        return IndexAnswer(False, f"{page_url} did not answer: {str(reason)[:120]}")
    wheels = torch_wheels(page, python)
    if not wheels:
        return IndexAnswer(False, f"{page_url} answers but serves no torch wheel for Python {python} on aarch64")
    return IndexAnswer(True, f"{page_url} serves {len(wheels)} torch wheels for Python {python}, "
                             f"e.g. {sorted(wheels)[-1]}")
