"""Tests for webui.assets: the allowlist of static files and what it refuses."""

from __future__ import annotations

from pathlib import Path

from webui.assets import STATIC_DIR, Assets


def test_the_shipped_assets_are_all_listed_with_their_types() -> None:
    """The page, its script and style and the vendored chart library (with its licence) ship."""
    assets = Assets.load()
    assert {"index.html", "app.js", "style.css", "vendor/uPlot.iife.min.js", "vendor/uPlot.min.css",
            "vendor/uPlot.LICENSE"} <= set(assets.names())  # fmt: skip
    licence = assets.get("vendor/uPlot.LICENSE")
    assert licence is not None and b"MIT" in licence.body and licence.content_type.startswith("text/plain")


def test_symlinks_and_unknown_types_are_not_served(tmp_path: Path) -> None:
    """A symlink (which could point anywhere) and files of unlisted types stay out of the allowlist."""
    (tmp_path / "page.html").write_text("<p>ok</p>")
    (tmp_path / "secret.key").write_text("k")
    (tmp_path / "link.html").symlink_to(Path("/etc/hostname"))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x.js").write_text("1")
    assert Assets.load(tmp_path).names() == ["page.html", "sub/x.js"]


def test_the_page_never_uses_inner_html() -> None:
    """Entries are hostile text: the page's script builds nodes with textContent only."""
    script = (STATIC_DIR / "app.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in script, sink
