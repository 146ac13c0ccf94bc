"""`/upload/image`, `/upload/mask` and `/view`, ported from ComfyUI's server (same naming
rules, same status codes and empty bodies)."""

from __future__ import annotations

import hashlib
import json
import mimetypes
import os
from io import BytesIO
from pathlib import Path
from typing import Any

from aiohttp import web
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from .state import Config


def _upload_dir(config: Config, kind: Any) -> tuple[Path, str]:
    kind = kind or "input"
    path = config.dir_for_type(kind)
    if path is None:
        # The real server hits an unbound variable here: a 500.
        raise ValueError(f"unknown upload type {kind!r}")
    return path, kind


def _same_bytes(path: Path, data: bytes) -> bool:
    return path.exists() and hashlib.sha256(path.read_bytes()).digest() == \
        hashlib.sha256(data).digest()


def annotated(config: Config, name: str) -> tuple[str, Path | None]:
    for suffix, kind in ((" [output]", "output"), (" [input]", "input"), (" [temp]", "temp")):
        if name.endswith(suffix):
            return name[: -len(suffix)], config.dir_for_type(kind)
    return name, None


async def upload(request: web.Request, config: Config, *, mask: bool = False) -> web.Response:
    return _store_upload(await request.post(), config, mask)


def _store_upload(post: Any, config: Config, mask: bool) -> web.Response:
    image = post.get("image")
    overwrite = post.get("overwrite")
    upload_dir, kind = _upload_dir(config, post.get("type"))
    if not isinstance(image, web.FileField) or image.file is None:
        return web.Response(status=400)
    filename = image.filename
    if not filename:
        return web.Response(status=400)
    data = image.file.read()
    subfolder = str(post.get("subfolder", ""))
    folder = upload_dir / os.path.normpath(subfolder)
    filepath = (folder / filename).resolve()
    if os.path.commonpath((str(upload_dir.resolve()), str(filepath))) != str(upload_dir.resolve()):
        return web.Response(status=400)
    folder.mkdir(parents=True, exist_ok=True)
    stem, suffix = os.path.splitext(filename)
    duplicate = False
    if overwrite not in ("true", "1"):
        i = 1
        while filepath.exists():
            if _same_bytes(filepath, data):
                duplicate = True
                break
            filename = f"{stem} ({i}){suffix}"
            filepath = folder / filename
            i += 1
    if not duplicate:
        if mask:
            _save_mask(config, post.get("original_ref"), data, filepath)
        else:
            filepath.write_bytes(data)
    return web.json_response({"name": filename, "subfolder": subfolder, "type": kind})


def _save_mask(config: Config, original_ref: Any, data: bytes, filepath: Path) -> None:
    """The uploaded image's alpha put into a copy of the original; raises without a ref."""
    ref = json.loads(original_ref)    # None → TypeError → 500, as the real server
    filename, base = annotated(config, ref["filename"])
    if not filename or filename[0] == "/" or ".." in filename:
        return
    if base is None:
        base = config.dir_for_type(ref.get("type", "output"))
    if base is None:
        return
    if ref.get("subfolder", ""):
        base = base / ref["subfolder"]
    original = base / filename
    if not original.is_file():
        return                        # 200, nothing written (recorded)
    with Image.open(original) as original_pil:
        metadata = PngInfo()
        for key, value in getattr(original_pil, "text", {}).items():
            metadata.add_text(key, value)
        rgba = original_pil.convert("RGBA")
        alpha = Image.open(BytesIO(data)).convert("RGBA").getchannel("A")
        rgba.putalpha(alpha)
        rgba.save(filepath, compress_level=4, pnginfo=metadata)


def _image_response(img: Image.Image, fmt: str, filename: str, **save: Any) -> web.Response:
    buffer = BytesIO()
    img.save(buffer, format=fmt, **save)
    return web.Response(body=buffer.getvalue(), content_type=f"image/{fmt.lower()}",
                        headers={"Content-Disposition": f'filename="{filename}"'})


async def view(request: web.Request, config: Config) -> web.StreamResponse:
    query = request.rel_url.query
    if "filename" not in query:
        return web.Response(status=404)
    filename, output_dir = annotated(config, query["filename"])
    if not filename or filename[0] == "/" or ".." in filename:
        return web.Response(status=400)
    if output_dir is None:
        output_dir = config.dir_for_type(query.get("type", "output"))
    if output_dir is None:
        return web.Response(status=400)
    if "subfolder" in query:
        full = (output_dir / query["subfolder"]).resolve()
        if os.path.commonpath((str(full), str(output_dir.resolve()))) != str(output_dir.resolve()):
            return web.Response(status=403)
        output_dir = full
    filename = os.path.basename(filename)
    file = output_dir / filename
    if not file.is_file():
        return web.Response(status=404)

    channel = query.get("channel", "")
    if "preview" in query:
        with Image.open(file) as img:
            info = query["preview"].split(";")
            fmt = info[0] if info[0] in ("webp", "jpeg") and "a" not in channel else "webp"
            quality = int(info[-1]) if info[-1].isdigit() else 90
            if fmt == "jpeg" or channel == "rgb":
                img = img.convert("RGB")
            return _image_response(img, fmt.upper(), filename, quality=quality)
    if channel == "rgb":
        with Image.open(file) as img:
            rgb = Image.merge("RGB", img.split()[:3]) if img.mode == "RGBA" else img.convert("RGB")
            return _image_response(rgb, "PNG", filename)
    if channel == "a":
        with Image.open(file) as img:
            alpha = img.getchannel("A") if img.mode == "RGBA" else Image.new("L", img.size, 255)
            out = Image.new("RGBA", img.size)
            out.putalpha(alpha)
            return _image_response(out, "PNG", filename)
    content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    if content_type in {"text/html", "text/html-sandboxed", "application/xhtml+xml",
                        "text/javascript", "text/css"}:
        content_type = "application/octet-stream"
    return web.FileResponse(file, headers={"Content-Disposition": f'filename="{filename}"',
                                           "Content-Type": content_type})
