"""A fake ComfyUI 0.3.64 for tests: same routes (also under /api/), status codes, bodies,
websocket message order and validation as the recorded real server (tests/fixtures/comfy/).

Python (tests)::

    fake = FakeComfy(step_delay=0.0, load_delay=0.0).start()   # free port, own thread + loop
    FakeComfy(vram_total_gb=24, other_tenant_gb=6)   # a shared 24 GB card (default 48, none)
    FakeComfy(cpu=True)                  # `main.py --cpu`: RAM as the device, as recorded
    FakeComfy(preview_method="none")     # none | auto (default) | latent2rgb
    FakeComfy(gguf=False)                # without the ComfyUI-GGUF pack (default: installed,
                                         # with the recorded .gguf files in unet_gguf/clip_gguf)
    fake.url, fake.ws_url(client_id)                           # http://127.0.0.1:PORT
    fake.stop() / fake.start()     # down (sockets cut, port closed) / up again, same port
    fake.restart()                 # same port; queue, history, cache, VRAM lost (files kept)
    fake.down(seconds)             # down now, back after `seconds`
    fake.close()                   # for good (removes its temporary folders)

    fake.set_models("diffusion_models", [...])  # folder listing → /models, loader combos
    fake.hide_classes("Florence2Run")           # a custom pack that is not installed
    fake.set_delays(step=0.05, load=1.0, node=0.2)   # per sampler step / model load / node
    fake.set_vram_total(24)                      # GiB of the simulated card
    fake.set_other_tenant(6)                     # GiB another process holds on it
    fake.set_preview_method("none"); fake.set_gguf(False)
    fake.set_empty_files("qwen_image_vae.safetensors")   # listed, 0 bytes: fails to load
    fake.put_input("x.png", data, subfolder="")  # a file in input/ without uploading

    fake.oom_at("KSampler", times=1)   # node id, class or model file → torch.OutOfMemoryError
    fake.fail_at("3", "ValueError", "boom", times=None)   # any other execution_error
    fake.fail_http("/prompt", "GET /queue", times=2)      # 500, empty body (no args = all)
    fake.stall_websockets(True)        # open but silent (pings unanswered)
    fake.drop_websockets()             # cut every socket now (no close frame)
    fake.clear_faults()

    fake.counters      # interrupts, interrupts_applied, prompts_posted/rejected/executed,
                       # model_loads, model_swaps, model_unloads, frees, ws_connections,
                       # ws_drops, requests {"GET /queue": n}, loads_by_model {file: n}
    fake.reset_counters(); fake.resident_models; fake.vram_free; fake.history(id)
    fake.queue_ids() -> (running, pending); fake.wait_idle(timeout) -> bool; fake.state()

HTTP (a fake started with `python -m tests.fake_comfy --host H --port P`; see `--help` for
--step-delay, --load-delay, --preview-method, --vram-gb, --other-tenant-gb, --cpu, --no-gguf)::

    GET  /__fake__/state                 everything above as JSON
    GET  /__fake__/counters, POST /__fake__/counters/reset
    POST /__fake__/faults        {"oom_at", "oom_times", "error_at", "error_type",
                                  "error_message", "error_times", "http_500": [routes] | "*"
                                  | null, "http_500_times", "ws_stalled": bool}
    POST /__fake__/faults/clear, POST /__fake__/drop_websockets
    POST /__fake__/delays        {"step_delay", "load_delay", "node_delay"}
    POST /__fake__/models        {"folder": [file, ...], ...}
    POST /__fake__/hidden_classes {"classes": [...]}
    POST /__fake__/vram          {"total_gb", "other_tenant_gb"}
    POST /__fake__/previews      {"method": "none" | "auto" | "latent2rgb"}
    POST /__fake__/packs         {"gguf": bool}
    POST /__fake__/empty_files   {"files": [...]}
    POST /__fake__/restart, POST /__fake__/down {"seconds"}

Nodes: tests/fake_comfy/nodes/ (REGISTRY in base.py); classes without an implementation
return placeholders per their RETURN_TYPES, so any graph that validates runs.
"""

from __future__ import annotations

from .fake import FakeComfy

__all__ = ["FakeComfy"]
