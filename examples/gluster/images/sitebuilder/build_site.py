#!/usr/bin/python3
"""Generate the static gluster.org site into $SITE_OUTPUT_DIR, then exit.

Sources: $SITE_SOURCE_DIR (default /usr/share/gluster-site) holds pages/*.md
(a header of `key: value` lines, a `---` line, then Markdown), templates/
(Jinja2) and static/ (copied as is). Every page becomes <url>/index.html.
$SITE_BASE_URL (default https://www.gluster.org) makes the sitemap's links
absolute. The output directory is emptied first; everything is world-readable,
for a web server that runs as another user.
"""

from __future__ import annotations

import datetime
import os
import shutil
import sys
from pathlib import Path
from xml.sax.saxutils import escape

import jinja2
import markdown
from markupsafe import Markup

SOURCE = Path(os.environ.get("SITE_SOURCE_DIR", "/usr/share/gluster-site"))
OUTPUT = Path(os.environ.get("SITE_OUTPUT_DIR", "/srv/site"))
BASE_URL = os.environ.get("SITE_BASE_URL", "https://www.gluster.org").rstrip("/")


def read_page(path: Path) -> dict[str, object]:
    header, separator, body = path.read_text(encoding="utf-8").partition("\n---\n")
    if not separator:
        raise SystemExit(f"{path}: no '---' line after the header")
    meta: dict[str, object] = {}
    for line in header.splitlines():
        if line.strip():
            key, _, value = line.partition(":")
            meta[key.strip()] = value.strip()
    slug = path.stem
    meta.setdefault("url", "/" if slug == "index" else f"/{slug}/")
    meta["source"] = path.name
    meta["markdown"] = body
    return meta


def main() -> int:
    os.umask(0o022)
    started = datetime.datetime.now(datetime.UTC)
    pages = [read_page(p) for p in sorted((SOURCE / "pages").glob("*.md"))]
    nav = sorted((p for p in pages if "nav" in p), key=lambda p: int(str(p["nav"])))
    templates = jinja2.Environment(
        loader=jinja2.FileSystemLoader(SOURCE / "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
    )

    OUTPUT.mkdir(parents=True, exist_ok=True)
    staging = OUTPUT / f".build-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(SOURCE / "static", staging)

    for page in pages:
        converter = markdown.Markdown(
            extensions=["extra", "toc", "sane_lists", "md_in_html"],
            extension_configs={"toc": {"permalink": False}},
        )
        content = converter.convert(str(page["markdown"]))
        template = templates.get_template(str(page.get("template", "page.html")))
        html = template.render(
            page=page,
            content=Markup(content),
            nav=nav,
            year=started.year,
            built=started.strftime("%Y-%m-%d %H:%M UTC"),
        )
        url = str(page["url"])
        target = staging / url.strip("/")
        if not url.endswith(".html"):
            target = target / "index.html"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(html, encoding="utf-8")
        print(f"  {url:22} <- pages/{page['source']}")

    listed = [p for p in pages if p.get("sitemap", "yes") != "no"]
    (staging / "sitemap.xml").write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n'
        + "".join(f"  <url><loc>{escape(BASE_URL + str(p['url']))}</loc></url>\n" for p in listed)
        + "</urlset>\n",
        encoding="utf-8",
    )
    (staging / "robots.txt").write_text(f"User-agent: *\nSitemap: {BASE_URL}/sitemap.xml\n")

    # Replace the old site entry by entry: the volume's own directory stays.
    for entry in OUTPUT.iterdir():
        if entry != staging:
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    for entry in staging.iterdir():
        entry.rename(OUTPUT / entry.name)
    staging.rmdir()
    for path in [OUTPUT, *OUTPUT.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    files = sum(1 for p in OUTPUT.rglob("*") if p.is_file())
    print(f"sitebuilder: {len(pages)} pages, {files} files in {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
