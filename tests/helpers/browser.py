"""Pages checked in a real headless Chromium: serve a directory over HTTP, load a harness page
from it, and read back the JSON the harness writes into ``<pre id="result">``."""

from __future__ import annotations

import functools
import http.server
import json
import re
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest

from conftest import run_tool


def harness_result(site: Path, harness: str, profile: Path) -> Any:
    """Write ``harness`` as ``site/harness.html``, load it in Chromium and return its result.
    Skips the test where no Chromium is installed."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no chromium on PATH")
    (site / "harness.html").write_text(harness)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        dom = run_tool([
            chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", "--virtual-time-budget=20000", "--dump-dom",
            f"http://127.0.0.1:{server.server_address[1]}/harness.html",
        ], timeout=180)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    match = re.search(r'<pre id="result">(.*?)</pre>', dom.stdout)
    assert match, f"harness did not report:\n{dom.stdout[-2000:]}\n{dom.stderr[-2000:]}"
    return json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))


# The end of a harness whose load handler gathered ``result``: written into <pre id="result">.
RESULT_TAIL = """  const pre = document.createElement("pre");
  pre.id = "result";
  pre.textContent = JSON.stringify(result);
  document.body.appendChild(pre);
});
</script></body></html>
"""

# A harness for a report page (``.format(page=...)``): what a reader sees once it has loaded: headings, the verdict, images decoded.
PAGE_HARNESS = """<!DOCTYPE html><html><body><pre id="result"></pre>
<iframe id="page" src="{page}" style="width:1200px;height:900px"></iframe>
<script>
document.getElementById("page").addEventListener("load", () => {{
  const doc = document.getElementById("page").contentDocument;
  const imgs = [...doc.images];
  document.getElementById("result").textContent = JSON.stringify({{
    title: doc.title,
    headings: [...doc.querySelectorAll("h1,h2,h3")].map(h => h.textContent),
    text: doc.body.innerText,
    images: imgs.length,
    decoded: imgs.filter(i => i.complete && i.naturalWidth > 100).length,
    rows: doc.querySelectorAll("tr").length,
  }});
}});
</script></body></html>"""
