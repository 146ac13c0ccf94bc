"""The fake ComfyUI's mode nodes mean what ComfyUI's mean: sizes, mask polarity, padding,
compositing, deterministic sampling with every reference mattering, grounding, VRAM sizes.

Node functions are called directly through the registry with a recording ExecContext."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.fake_comfy.nodes import image_ops, masks, models, sampling, segmentation  # noqa: F401
from tests.fake_comfy.nodes.base import REGISTRY, NodeFailure, NodeOutput
from tests.fake_comfy.nodes.models import Conditioning, DiffusionModel, TextEncoder, Vae, Weights

GEN_UNET = "qwen_image_2512_fp8_e4m3fn.safetensors"
EDIT_UNET = "qwen_image_edit_2511_fp8mixed.safetensors"
TEXT_ENCODER = "qwen_2.5_vl_7b_fp8_scaled.safetensors"
VAE_FILE = "qwen_image_vae.safetensors"


@dataclass
class RecordingContext:
    """The ExecContext protocol, recording what nodes ask of the executor."""

    prompt_id: str = "prompt"
    node_id: str = "1"
    class_type: str = "Node"
    input_dir: Path = Path("input")
    output_dir: Path = Path("output")
    temp_dir: Path = Path("temp")
    step_delay: float = 0.0
    previews: bool = True
    files: dict[str, list[str]] = field(
        default_factory=lambda: {
            "diffusion_models": [GEN_UNET, EDIT_UNET, "broken_unet.safetensors"],
            "text_encoders": [TEXT_ENCODER],
            "vae": [VAE_FILE, "broken.safetensors"],
            "loras": ["lightning.safetensors"],
        }
    )
    progress_calls: list[tuple[int, int, Image.Image | None]] = field(default_factory=list)
    loads: list[tuple[str, str, float]] = field(default_factory=list)

    async def progress(self, value: int, maximum: int, preview: Image.Image | None = None) -> None:
        self.progress_calls.append((value, maximum, preview))

    async def load_model(self, folder: str, name: str, vram_gb: float) -> None:
        self.loads.append((folder, name, vram_gb))

    def model_files(self, folder: str) -> list[str]:
        return self.files.get(folder, [])

    def resident_gb(self) -> float:
        return sum({(f, n): gb for f, n, gb in self.loads}.values())


async def run(class_type: str, ctx: RecordingContext | None = None, **inputs: Any) -> NodeOutput:
    return await REGISTRY.impls[class_type](ctx or RecordingContext(), inputs)


def solid(colour: tuple[float, float, float], h: int = 32, w: int = 48) -> np.ndarray:
    return np.broadcast_to(np.array(colour, np.float32), (1, h, w, 3)).copy()


MODEL = DiffusionModel(Weights("diffusion_models", GEN_UNET, 20.95))
VAE = Vae(Weights("vae", VAE_FILE, 0.25))


async def sample(
    seed: int = 1,
    text: str = "a banana",
    latent: dict | None = None,
    cond: Conditioning | None = None,
    ctx: RecordingContext | None = None,
    **extra: Any,
) -> np.ndarray:
    if latent is None:
        latent = (await run("EmptySD3LatentImage", width=64, height=48, batch_size=1)).values[0]
    inputs = dict(
        model=MODEL,
        seed=seed,
        steps=3,
        cfg=2.5,
        sampler_name="euler",
        scheduler="simple",
        positive=cond or Conditioning(text),
        negative=Conditioning(""),
        latent_image=latent,
        denoise=1.0,
    )
    inputs.update(extra)
    out = await run("KSampler", ctx, **inputs)
    return (await run("VAEDecode", samples=out.values[0], vae=VAE)).values[0]


# --- loaders and VRAM ------------------------------------------------------------------------


async def test_loaders_report_vram_so_mode_peaks_match_the_operations_guide() -> None:
    async def resident(*loaders: tuple[str, dict[str, Any]]) -> float:
        ctx = RecordingContext()
        for class_type, inputs in loaders:
            await run(class_type, ctx, **inputs)
        return ctx.resident_gb()

    clip = ("CLIPLoader", {"clip_name": TEXT_ENCODER, "type": "qwen_image"})
    vae = ("VAELoader", {"vae_name": VAE_FILE})
    generate = await resident(("UNETLoader", {"unet_name": GEN_UNET}), clip, vae)
    edit = await resident(("UNETLoader", {"unet_name": EDIT_UNET}), clip, vae)
    region = await resident(
        ("UNETLoader", {"unet_name": EDIT_UNET}),
        clip,
        vae,
        ("DownloadAndLoadFlorence2Model", {"model": "microsoft/Florence-2-base"}),
        ("DownloadAndLoadSAM2Model", {"model": "sam2.1_hiera_base_plus.safetensors"}),
    )
    assert generate == pytest.approx(30.0, abs=0.3)
    assert edit == pytest.approx(30.0, abs=0.3)
    assert region == pytest.approx(33.0, abs=0.3)

    ctx = RecordingContext()
    image = solid((0.2, 0.3, 0.4))
    await run("BiRefNetRMBG", ctx, image=image, model="BiRefNet-general")
    assert ctx.loads == [("rmbg", "BiRefNet-general", pytest.approx(3.0))]


async def test_loader_outputs_describe_the_files() -> None:
    ctx = RecordingContext()
    model = (await run("UNETLoader", ctx, unet_name=GEN_UNET, weight_dtype="default")).values[0]
    assert model.weights.name == GEN_UNET
    assert ctx.loads[0][:2] == ("diffusion_models", GEN_UNET)
    patched = (await run("ModelSamplingAuraFlow", model=model, shift=3.1)).values[0]
    patched = (await run("CFGNorm", model=patched, strength=1.0)).values[0]
    assert patched.weights == model.weights and patched.patches == ("shift=3.1", "cfgnorm=1")
    lora = await run("LoraLoaderModelOnly", ctx, model=patched, lora_name="lightning.safetensors")
    assert lora.values[0].loras[0][0].name == "lightning.safetensors"
    assert (await run("VAELoader", vae_name="pixel_space")).values[0] == Vae(None)


async def test_broken_model_file_fails_like_the_recorded_safetensors_error() -> None:
    with pytest.raises(NodeFailure) as err:
        await run("VAELoader", vae_name="broken.safetensors")
    assert err.value.exception_type == "safetensors._safetensors_rust.SafetensorError"
    assert err.value.message.startswith("Error while deserializing header: header too small")
    with pytest.raises(NodeFailure) as err:
        await run("UNETLoader", unet_name="broken_unet.safetensors", weight_dtype="default")
    assert err.value.exception_type.endswith("SafetensorError")
    with pytest.raises(NodeFailure) as err:
        await run("UNETLoader", unet_name="absent.safetensors", weight_dtype="default")
    assert err.value.exception_type == "FileNotFoundError"


async def test_using_a_model_accounts_it_again_so_an_evicted_model_reloads() -> None:
    ctx = RecordingContext()
    await sample(ctx=ctx)
    await run(
        "CLIPTextEncode", ctx, text="x", clip=TextEncoder(Weights("text_encoders", "te", 8.8))
    )
    assert ("diffusion_models", GEN_UNET, 20.95) in ctx.loads
    assert ("text_encoders", "te", 8.8) in ctx.loads


# --- encoders --------------------------------------------------------------------------------


async def test_encoders_carry_text_and_connected_reference_images() -> None:
    clip = TextEncoder(Weights("text_encoders", TEXT_ENCODER, 8.8))
    cond = (await run("CLIPTextEncode", text="a red bicycle", clip=clip)).values[0]
    assert cond.text == "a red bicycle" and cond.images == ()
    a, b = solid((1, 0, 0)), solid((0, 0, 1))
    ctx = RecordingContext()
    edit = await run(
        "TextEncodeQwenImageEditPlus", ctx, clip=clip, prompt="p", vae=VAE, image1=a, image3=b
    )
    cond = edit.values[0]
    assert cond.text == "p" and cond.has_vae and len(cond.images) == 2
    assert np.array_equal(cond.images[1], b)
    assert {f for f, _, _ in ctx.loads} == {"text_encoders", "vae"}
    no_vae = (await run("TextEncodeQwenImageEditPlus", clip=clip, prompt="p", image1=a)).values[0]
    assert not no_vae.has_vae


# --- latents and the VAE ---------------------------------------------------------------------


async def test_empty_latent_has_comfyui_shape_and_decodes_to_its_size() -> None:
    latent = (await run("EmptySD3LatentImage", width=1328, height=928, batch_size=2)).values[0]
    assert latent["samples"].shape == (2, 16, 116, 166)
    image = (await run("VAEDecode", samples=latent, vae=VAE)).values[0]
    assert image.shape == (2, 928, 1328, 3) and image.dtype == np.float32


async def test_vae_round_trip_keeps_pixels_and_crops_to_multiples_of_8_centred() -> None:
    rng = np.random.default_rng(0)
    pixels = rng.random((1, 35, 42, 3), dtype=np.float32)
    latent = (await run("VAEEncode", pixels=pixels, vae=VAE)).values[0]
    assert latent["samples"].shape == (1, 16, 4, 5)
    decoded = (await run("VAEDecode", samples=latent, vae=VAE)).values[0]
    assert np.array_equal(decoded, pixels[:, 1:33, 1:41])


async def test_set_latent_noise_mask_stores_a_full_resolution_mask() -> None:
    latent = (await run("EmptySD3LatentImage", width=64, height=32, batch_size=1)).values[0]
    out = (
        await run("SetLatentNoiseMask", samples=latent, mask=np.ones((16, 32), np.float32))
    ).values[0]
    assert out["noise_mask"].shape == (1, 32, 64) and "noise_mask" not in latent


# --- samplers --------------------------------------------------------------------------------


async def test_sampler_is_deterministic_in_seed_and_text() -> None:
    first, again = await sample(seed=7), await sample(seed=7)
    assert first.shape == (1, 48, 64, 3)
    assert np.array_equal(first, again)
    assert not np.allclose(first, await sample(seed=8), atol=1e-3)
    assert not np.allclose(first, await sample(seed=7, text="a lemon"), atol=1e-3)
    assert first.std() > 0.01  # a pattern, not a flat fill


async def test_sampler_reports_every_step_with_a_small_preview() -> None:
    ctx = RecordingContext()
    await sample(ctx=ctx, steps=5)
    assert [(v, m) for v, m, _ in ctx.progress_calls] == [(i, 5) for i in range(1, 6)]
    previews = [p for _, _, p in ctx.progress_calls]
    assert all(p is not None and max(p.size) <= 64 and p.mode == "RGB" for p in previews)


async def test_every_reference_image_changes_the_sampler_output() -> None:
    refs = [solid((0.9, 0.1, 0.1)), solid((0.1, 0.9, 0.1)), solid((0.1, 0.1, 0.9))]
    base = await sample(cond=Conditioning("p", images=tuple(refs), has_vae=True))
    alone = await sample(cond=Conditioning("p"))
    assert not np.allclose(base, alone, atol=1e-3)
    for i in range(3):
        changed = list(refs)
        changed[i] = solid((0.5, 0.5, 0.0))
        out = await sample(cond=Conditioning("p", images=tuple(changed), has_vae=True))
        assert not np.allclose(out, base, atol=1e-3), f"reference {i + 1} had no effect"


async def test_denoise_blends_with_the_latent_pixels() -> None:
    pixels = solid((0.2, 0.4, 0.6), 48, 64)
    latent = (await run("VAEEncode", pixels=pixels, vae=VAE)).values[0]
    assert np.allclose(await sample(latent=latent, denoise=0.0), pixels)
    other = (await run("VAEEncode", pixels=solid((0.9, 0.9, 0.1), 48, 64), vae=VAE)).values[0]
    # denoise 1.0 ignores what the latent held
    assert np.array_equal(await sample(latent=latent), await sample(latent=other))
    half = await sample(latent=latent, denoise=0.5)
    assert np.allclose(half, 0.5 * (await sample(latent=latent)) + 0.5 * pixels, atol=1e-5)


async def test_noise_mask_keeps_the_latent_pixels_exactly_where_it_is_zero() -> None:
    rng = np.random.default_rng(1)
    pixels = rng.random((1, 48, 64, 3), dtype=np.float32)
    mask = np.zeros((1, 48, 64), np.float32)
    mask[:, 10:30, 20:50] = 1.0
    latent = (await run("VAEEncode", pixels=pixels, vae=VAE)).values[0]
    latent = (await run("SetLatentNoiseMask", samples=latent, mask=mask)).values[0]
    for sampler in ("KSampler", "LanPaint_KSampler"):
        out = await run(
            sampler,
            model=MODEL,
            seed=3,
            steps=2,
            cfg=1.0,
            sampler_name="euler",
            scheduler="simple",
            positive=Conditioning("fill"),
            negative=Conditioning(""),
            latent_image=latent,
            denoise=1.0,
        )
        image = (await run("VAEDecode", samples=out.values[0], vae=VAE)).values[0]
        keep = mask[0] == 0
        assert np.array_equal(image[0][keep], pixels[0][keep])
        assert not np.allclose(image[0][~keep], pixels[0][~keep], atol=1e-3)


async def test_inpaint_model_conditioning_returns_a_masked_latent() -> None:
    pixels = solid((0.3, 0.3, 0.3), 40, 40)
    mask = np.zeros((40, 40), np.float32)
    mask[8:16, 8:16] = 1
    pos, neg, latent = (
        await run(
            "InpaintModelConditioning",
            positive=Conditioning("a"),
            negative=Conditioning("b"),
            vae=VAE,
            pixels=pixels,
            mask=mask,
            noise_mask=True,
        )
    ).values
    assert pos.inpaint and neg.inpaint and pos.text == "a"
    assert latent["samples"].shape == (1, 16, 5, 5) and latent["noise_mask"].shape == (1, 40, 40)


async def test_ksampler_advanced_runs_only_its_step_range() -> None:
    ctx = RecordingContext()
    latent = (await run("EmptySD3LatentImage", width=32, height=32, batch_size=1)).values[0]
    inputs = dict(
        model=MODEL,
        add_noise="enable",
        noise_seed=5,
        steps=10,
        cfg=1.0,
        sampler_name="euler",
        scheduler="simple",
        positive=Conditioning("x"),
        negative=Conditioning(""),
        latent_image=latent,
        start_at_step=4,
        end_at_step=10000,
        return_with_leftover_noise="disable",
    )
    await run("KSamplerAdvanced", ctx, **inputs)
    assert [m for _, m, _ in ctx.progress_calls] == [6] * 6


# --- image ops -------------------------------------------------------------------------------


def png_to_image(data: bytes) -> np.ndarray:
    """What LoadImage does with an RGB PNG."""
    rgb = Image.open(io.BytesIO(data)).convert("RGB")
    return (np.asarray(rgb, np.float32) / 255.0)[None]


async def test_image_to_mask_red_of_white_on_black_png_is_one_where_white() -> None:
    canvas = Image.new("RGB", (20, 10), "black")
    canvas.paste((255, 255, 255), (5, 2, 15, 8))
    buf = io.BytesIO()
    canvas.save(buf, "PNG")
    mask = (await run("ImageToMask", image=png_to_image(buf.getvalue()), channel="red")).values[0]
    assert mask.shape == (1, 10, 20)
    assert (
        mask[0, 2:8, 5:15].min() == 1.0 and mask[0, :2].max() == 0.0 and mask[0, :, :5].max() == 0.0
    )
    with pytest.raises(NodeFailure) as err:
        await run("ImageToMask", image=png_to_image(buf.getvalue()), channel="alpha")
    assert err.value.exception_type == "IndexError"


async def test_pad_for_outpaint_sizes_grey_fill_and_feathered_mask() -> None:
    rng = np.random.default_rng(2)
    image = rng.random((1, 100, 80, 3), dtype=np.float32)
    padded, mask = (
        await run(
            "ImagePadForOutpaint", image=image, left=16, top=0, right=24, bottom=8, feathering=10
        )
    ).values
    assert padded.shape == (1, 108, 120, 3) and mask.shape == (1, 108, 120)
    assert np.array_equal(padded[:, 0:100, 16:96], image)
    assert np.all(padded[:, :, :16] == 0.5) and np.all(padded[:, 100:] == 0.5)
    assert (
        np.all(mask[:, :, :16] == 1.0)
        and np.all(mask[:, :, 96:] == 1.0)
        and np.all(mask[:, 100:] == 1)
    )
    # Inside: tapering from the padded edges, 0 beyond `feathering`, top edge not feathered.
    assert mask[0, 50, 16] == pytest.approx(1.0) and mask[0, 50, 20] == pytest.approx(0.36)
    assert mask[0, 50, 50] == 0.0 and mask[0, 0, 50] == 0.0
    _, no_feather = (await run("ImagePadForOutpaint", image=image, right=16, feathering=0)).values
    assert no_feather[0, :, :80].max() == 0.0 and no_feather[0, :, 80:].min() == 1.0


async def test_composite_masked_keeps_destination_exactly_where_mask_is_zero() -> None:
    rng = np.random.default_rng(3)
    dest = rng.random((1, 40, 50, 3), dtype=np.float32)
    src = rng.random((1, 40, 50, 3), dtype=np.float32)
    mask = np.zeros((1, 40, 50), np.float32)
    mask[:, 10:20, 10:30] = 1.0
    mask[:, 25, 25] = 0.5
    out = (
        await run(
            "ImageCompositeMasked",
            destination=dest,
            source=src,
            x=0,
            y=0,
            resize_source=False,
            mask=mask,
        )
    ).values[0]
    assert np.array_equal(out[mask == 0], dest[mask == 0])
    assert np.array_equal(out[mask == 1], src[mask == 1])
    assert np.allclose(out[0, 25, 25], 0.5 * src[0, 25, 25] + 0.5 * dest[0, 25, 25])
    small = solid((1, 0, 0), 5, 5)
    placed = (await run("ImageCompositeMasked", destination=dest, source=small, x=47, y=2)).values[
        0
    ]
    assert np.array_equal(placed[0, 2:7, 47:50], small[0, :, :3]) and np.array_equal(
        placed[0, 7:], dest[0, 7:]
    )


async def test_join_and_split_alpha_use_comfyui_polarity() -> None:
    image = solid((0.1, 0.2, 0.3), 8, 8)
    mask = np.zeros((1, 8, 8), np.float32)
    mask[:, :4] = 1.0
    rgba = (await run("JoinImageWithAlpha", image=image, alpha=mask)).values[0]
    assert rgba.shape == (1, 8, 8, 4)
    assert np.all(rgba[0, :4, :, 3] == 0.0) and np.all(rgba[0, 4:, :, 3] == 1.0)
    rgb, back = (await run("SplitImageWithAlpha", image=rgba)).values
    assert rgb.shape == (1, 8, 8, 3) and np.array_equal(back, mask)


async def test_scaling_and_size_nodes() -> None:
    image = solid((0.5, 0.5, 0.5), 100, 200)
    scaled = (
        await run("ImageScaleToTotalPixels", image=image, upscale_method="lanczos", megapixels=0.01)
    ).values[0]
    assert scaled.shape == (1, 72, 145, 3)
    by = (await run("ImageScaleBy", image=image, upscale_method="bilinear", scale_by=0.25)).values[
        0
    ]
    assert by.shape == (1, 25, 50, 3)
    assert (await run("GetImageSize", image=by)).values == (50, 25, 1)
    blurred = (await run("ImageBlur", image=by, blur_radius=2, sigma=1.0)).values[0]
    assert blurred.shape == by.shape and np.allclose(blurred, 0.5)
    sharp = (await run("ImageSharpen", image=by, sharpen_radius=1, sigma=1.0, alpha=1.0)).values[0]
    assert np.allclose(sharp, 0.5, atol=1e-5)


# --- masks -----------------------------------------------------------------------------------


async def test_grow_mask_grows_and_shrinks_with_tapered_or_square_corners() -> None:
    dot = np.zeros((1, 11, 11), np.float32)
    dot[0, 5, 5] = 1.0
    diamond = (await run("GrowMask", mask=dot, expand=2, tapered_corners=True)).values[0]
    square = (await run("GrowMask", mask=dot, expand=2, tapered_corners=False)).values[0]
    assert diamond.sum() == 13 and square.sum() == 25
    shrunk = (await run("GrowMask", mask=square, expand=-1, tapered_corners=False)).values[0]
    assert shrunk.sum() == 9
    assert np.array_equal((await run("GrowMask", mask=dot[0], expand=0)).values[0], dot)


async def test_feather_threshold_invert_solid_and_mask_to_image() -> None:
    ones = np.ones((1, 6, 10), np.float32)
    feathered = (await run("FeatherMask", mask=ones, left=4, top=0, right=0, bottom=0)).values[0]
    assert list(feathered[0, 0, :5]) == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0])
    ramp = np.linspace(0, 1, 11, dtype=np.float32)[None, None, :]
    assert (await run("ThresholdMask", mask=ramp, value=0.5)).values[0].sum() == 5
    assert np.array_equal((await run("InvertMask", mask=ramp)).values[0], 1 - ramp)
    solid_mask = (await run("SolidMask", value=0.25, width=7, height=3)).values[0]
    assert solid_mask.shape == (1, 3, 7) and np.all(solid_mask == 0.25)
    image = (await run("MaskToImage", mask=ramp)).values[0]
    assert image.shape == (1, 1, 11, 3) and np.array_equal(image[..., 1], ramp)


# --- segmentation ----------------------------------------------------------------------------


def subject_on_background() -> np.ndarray:
    image = solid((0.85, 0.85, 0.85), 64, 64)
    image[:, 16:48, 20:44] = (0.8, 0.1, 0.1)
    return image


async def test_birefnet_alpha_is_the_subject_with_soft_edges() -> None:
    image = subject_on_background()
    rgba, mask, mask_image = (
        await run("BiRefNetRMBG", image=image, model="BiRefNet-general")
    ).values
    assert (
        rgba.shape == (1, 64, 64, 4)
        and mask.shape == (1, 64, 64)
        and mask_image.shape == (1, 64, 64, 3)
    )
    assert np.array_equal(rgba[..., :3], image) and np.array_equal(rgba[..., 3], mask)
    assert mask[0, 30, 30] == 1.0 and mask[0, 2, 2] == 0.0
    assert ((mask > 0.05) & (mask < 0.95)).any()  # soft edge
    inside = mask[0, 16:48, 20:44].mean()
    assert inside > 0.9 and mask[0].mean() == pytest.approx(32 * 24 / 64 / 64, abs=0.05)
    colour = (
        await run(
            "BiRefNetRMBG",
            image=image,
            model="BiRefNet-general",
            background="Color",
            background_color="#00ff00",
        )
    ).values[0]
    assert colour.shape == (1, 64, 64, 3) and np.allclose(colour[0, 2, 2], (0, 1, 0))
    inverted = (
        await run("BiRefNetRMBG", image=image, model="BiRefNet-general", invert_output=True)
    ).values[1]
    assert inverted[0, 2, 2] == 1.0


async def florence(text: str, image: np.ndarray) -> tuple:
    model = (await run("DownloadAndLoadFlorence2Model", model="microsoft/Florence-2-base")).values[
        0
    ]
    return (
        await run(
            "Florence2Run",
            image=image,
            florence2_model=model,
            text_input=text,
            task="caption_to_phrase_grounding",
            fill_mask=True,
        )
    ).values


async def test_grounding_finds_one_deterministic_box_and_nothing_for_nothing() -> None:
    image = solid((0.5, 0.5, 0.5), 120, 200)
    annotated, mask, caption, data = await florence("the red car", image)
    assert annotated.shape == image.shape and mask.shape == (1, 120, 200)
    (box,) = data[0]["bboxes"]
    assert data[0]["labels"] == ["the red car"] and caption.startswith("the red car<loc_")
    x0, y0, x1, y1 = box
    area = (x1 - x0) * (y1 - y0) / (200 * 120)
    assert 0.19 <= area <= 0.51 and 0 <= x0 < x1 <= 200 and 0 <= y0 < y1 <= 120
    assert mask.sum() == pytest.approx(area * 200 * 120, rel=0.1)
    assert (await florence("the red car", image))[3] == data
    assert (await florence("the blue door", image))[3] != data
    for nothing in ("nothing", "None", "", "there is nothing here"):
        _, empty_mask, _, empty = await florence(nothing, image)
        assert empty == [{"bboxes": [], "labels": []}] and empty_mask.max() == 0.0


async def test_florence_rejects_text_for_tasks_without_text_input() -> None:
    model = (await run("DownloadAndLoadFlorence2Model", model="microsoft/Florence-2-base")).values[
        0
    ]
    with pytest.raises(NodeFailure):
        await run(
            "Florence2Run",
            image=solid((0, 0, 0)),
            florence2_model=model,
            text_input="x",
            task="caption",
        )


async def sam(bboxes: Any, image: np.ndarray) -> np.ndarray:
    model = (
        await run(
            "DownloadAndLoadSAM2Model",
            model="sam2.1_hiera_base_plus.safetensors",
            segmentor="single_image",
            device="cuda",
            precision="fp16",
        )
    ).values[0]
    inputs = dict(sam2_model=model, image=image, keep_model_loaded=False, individual_objects=True)
    return (await run("Sam2Segmentation", **inputs, bboxes=bboxes)).values[0]


async def test_coordinates_and_sam_turn_boxes_into_a_soft_mask_inside_them() -> None:
    image = solid((0.5, 0.5, 0.5), 120, 200)
    data = (await florence("the red car", image))[3]
    centers, bboxes = (await run("Florence2toCoordinates", data=data, index="", batch=False)).values
    assert bboxes == data[0]["bboxes"]
    (x0, y0, x1, y1) = bboxes[0]
    assert centers == f'[{{"x": {int((x0 + x1) / 2)}, "y": {int((y0 + y1) / 2)}}}]'
    mask = await sam(bboxes, image)
    assert mask.shape == (1, 120, 200)
    assert mask[0, int((y0 + y1) / 2), int((x0 + x1) / 2)] == 1.0
    outside = np.ones((120, 200), bool)
    outside[int(y0) : int(y1) + 1, int(x0) : int(x1) + 1] = False
    assert mask[0][outside].max() == 0.0
    assert ((mask > 0) & (mask < 1)).any()  # soft edge


async def test_empty_grounding_gives_an_all_zero_mask_of_the_image_size() -> None:
    image = solid((0.5, 0.5, 0.5), 30, 40)
    data = (await florence("nothing", image))[3]
    centers, bboxes = (await run("Florence2toCoordinates", data=data, index="", batch=False)).values
    assert (centers, bboxes) == ("[]", [])
    mask = await sam(bboxes, image)
    assert mask.shape == (1, 30, 40) and mask.max() == 0.0
    # An explicit index that matched nothing is skipped too (the pack's 2025-03 behaviour).
    assert (await run("Florence2toCoordinates", data=data, index="0", batch=False)).values[1] == []


async def test_sam2_loader_rejects_half_precision_on_cpu_like_the_pack() -> None:
    with pytest.raises(NodeFailure, match="not supported on cpu"):
        await run(
            "DownloadAndLoadSAM2Model",
            model="sam2.1_hiera_tiny.safetensors",
            device="cpu",
            precision="fp16",
        )


# --- end to end over HTTP --------------------------------------------------------------------


def post_and_wait(fake_comfy: Any, graph: dict[str, Any]) -> dict[str, Any]:
    """POST /prompt, wait until the fake is idle, return the prompt's history entry."""
    import httpx

    with httpx.Client(base_url=fake_comfy.url, timeout=10) as http:
        posted = http.post("/prompt", json={"prompt": graph, "client_id": "node-semantics"})
        assert posted.status_code == 200, posted.text
        prompt_id = posted.json()["prompt_id"]
        assert fake_comfy.wait_idle(10)
        entry = http.get(f"/history/{prompt_id}").json()[prompt_id]
        assert entry["status"]["status_str"] == "success", entry["status"]
        return entry


def view(fake_comfy: Any, ref: dict[str, str]) -> Image.Image:
    import httpx

    response = httpx.get(f"{fake_comfy.url}/view", params=ref, timeout=10)
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    return Image.open(io.BytesIO(response.content))


def test_generate_graph_over_http_gives_a_png_of_the_latent_size(fake_comfy: Any) -> None:
    graph = {
        "1": {
            "class_type": "UNETLoader",
            "inputs": {"unet_name": GEN_UNET, "weight_dtype": "default"},
        },
        "2": {"class_type": "ModelSamplingAuraFlow", "inputs": {"model": ["1", 0], "shift": 3.1}},
        "3": {
            "class_type": "CLIPLoader",
            "inputs": {"clip_name": TEXT_ENCODER, "type": "qwen_image"},
        },
        "4": {"class_type": "CLIPTextEncode", "inputs": {"text": "a banana", "clip": ["3", 0]}},
        "5": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["3", 0]}},
        "6": {
            "class_type": "EmptySD3LatentImage",
            "inputs": {"width": 96, "height": 64, "batch_size": 1},
        },
        "7": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["2", 0],
                "seed": 42,
                "steps": 3,
                "cfg": 2.5,
                "sampler_name": "euler",
                "scheduler": "simple",
                "positive": ["4", 0],
                "negative": ["5", 0],
                "latent_image": ["6", 0],
                "denoise": 1.0,
            },
        },
        "8": {"class_type": "VAELoader", "inputs": {"vae_name": VAE_FILE}},
        "9": {"class_type": "VAEDecode", "inputs": {"samples": ["7", 0], "vae": ["8", 0]}},
        "10": {
            "class_type": "SaveImage",
            "inputs": {"images": ["9", 0], "filename_prefix": "e2e/gen"},
        },
    }
    entry = post_and_wait(fake_comfy, graph)
    (ref,) = entry["outputs"]["10"]["images"]
    png = view(fake_comfy, ref)
    assert png.size == (96, 64) and png.mode == "RGB"
    # The image the node functions compute for the same seed and text, 8-bit rounded.
    expected = sampling.generate(42, Conditioning("a banana"), 1, 64, 96)[0]
    assert np.abs(np.asarray(png, np.float32) / 255.0 - expected).max() <= 1 / 255 + 1e-6
    assert {GEN_UNET, TEXT_ENCODER, VAE_FILE} <= set(fake_comfy.resident_models)


def test_remove_background_graph_over_http_saves_an_rgba_png(fake_comfy: Any) -> None:
    buf = io.BytesIO()
    Image.fromarray((subject_on_background()[0] * 255).astype(np.uint8)).save(buf, "PNG")
    name = fake_comfy.put_input("subject.png", buf.getvalue())
    graph = {
        "1": {"class_type": "LoadImage", "inputs": {"image": name}},
        "2": {
            "class_type": "BiRefNetRMBG",
            "inputs": {"image": ["1", 0], "model": "BiRefNet-general", "background": "Alpha"},
        },
        "3": {
            "class_type": "SaveImage",
            "inputs": {"images": ["2", 0], "filename_prefix": "e2e/rmbg"},
        },
    }
    entry = post_and_wait(fake_comfy, graph)
    png = view(fake_comfy, entry["outputs"]["3"]["images"][0])
    assert png.mode == "RGBA" and png.size == (64, 64)
    alpha = np.asarray(png.getchannel("A"))
    assert alpha[30, 30] == 255 and alpha[2, 2] == 0
