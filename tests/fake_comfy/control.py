"""`/__fake__/…` routes: drive a fake running as a subprocess the way tests drive `FakeComfy`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from .fake import FakeComfy


def add_control_routes(app: web.Application, fake: FakeComfy) -> None:
    async def body(request: web.Request) -> dict[str, Any]:
        if not request.can_read_body:
            return {}
        data = await request.json()
        return data if isinstance(data, dict) else {}

    async def state(request: web.Request) -> web.Response:
        return web.json_response(fake.state())

    async def counters(request: web.Request) -> web.Response:
        return web.json_response(fake.counters)

    async def reset_counters(request: web.Request) -> web.Response:
        fake.reset_counters()
        return web.json_response(fake.counters)

    async def faults(request: web.Request) -> web.Response:
        fake.faults.update(await body(request))
        return web.json_response(fake.faults.snapshot())

    async def clear_faults(request: web.Request) -> web.Response:
        fake.faults.clear()
        return web.json_response(fake.faults.snapshot())

    async def drop(request: web.Request) -> web.Response:
        runtime = fake.runtime
        dropped = runtime.hub.drop_all() if runtime else 0
        fake._counters.add("ws_drops", dropped)
        return web.json_response({"dropped": dropped})

    async def delays(request: web.Request) -> web.Response:
        data = await body(request)
        fake.set_delays(step=data.get("step_delay"), load=data.get("load_delay"),
                        node=data.get("node_delay"))
        return web.json_response(fake.state()["delays"])

    async def models(request: web.Request) -> web.Response:
        for folder, names in (await body(request)).items():
            fake.set_models(folder, names)
        return web.json_response(fake.config.models)

    async def hidden(request: web.Request) -> web.Response:
        fake.config.hidden_classes = set((await body(request)).get("classes", []))
        return web.json_response(sorted(fake.config.hidden_classes))

    async def vram(request: web.Request) -> web.Response:
        data = await body(request)
        if "total_gb" in data:
            fake.set_vram_total(data["total_gb"])
        if "other_tenant_gb" in data:
            fake.set_other_tenant(data["other_tenant_gb"])
        return web.json_response(fake.state()["memory"])

    async def previews(request: web.Request) -> web.Response:
        method = (await body(request)).get("method")
        try:
            fake.set_preview_method(str(method))
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"preview_method": fake.config.preview_method})

    async def packs(request: web.Request) -> web.Response:
        data = await body(request)
        if "gguf" in data:
            fake.set_gguf(bool(data["gguf"]))
        return web.json_response(fake.state()["packs"])

    async def empty_files(request: web.Request) -> web.Response:
        fake.set_empty_files(*(await body(request)).get("files", []))
        return web.json_response(sorted(fake.config.empty_files))

    async def restart(request: web.Request) -> web.Response:
        fake._schedule(fake._restart_async())
        return web.json_response({"restarting": True})

    async def down(request: web.Request) -> web.Response:
        seconds = float((await body(request)).get("seconds", 1.0))
        fake._schedule(fake._down_async(seconds))
        return web.json_response({"down_for": seconds})

    for method, path, handler in (
        ("GET", "/__fake__/state", state),
        ("GET", "/__fake__/counters", counters),
        ("POST", "/__fake__/counters/reset", reset_counters),
        ("POST", "/__fake__/faults", faults),
        ("POST", "/__fake__/faults/clear", clear_faults),
        ("POST", "/__fake__/drop_websockets", drop),
        ("POST", "/__fake__/delays", delays),
        ("POST", "/__fake__/models", models),
        ("POST", "/__fake__/hidden_classes", hidden),
        ("POST", "/__fake__/vram", vram),
        ("POST", "/__fake__/previews", previews),
        ("POST", "/__fake__/packs", packs),
        ("POST", "/__fake__/empty_files", empty_files),
        ("POST", "/__fake__/restart", restart),
        ("POST", "/__fake__/down", down),
    ):
        app.router.add_route(method, path, handler)
