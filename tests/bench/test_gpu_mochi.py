"""bench/gpu_mochi.py: the FLOP formula, and the whole harness in its tiny CPU mode."""

from __future__ import annotations

import json
import pathlib
from types import SimpleNamespace

import pytest

from bench.mochi.models import latent_shape, step_flops, visual_tokens
from bench.mochi.options import OPTIONS
from tests.bench.runner import run_bench

MOCHI_DEFAULTS = SimpleNamespace(
    num_attention_heads=24,
    attention_head_dim=128,
    pooled_projection_dim=1536,
    num_layers=48,
    patch_size=2,
    in_channels=12,
)


def test_visual_tokens_at_full_size() -> None:
    assert latent_shape(163, 480, 848) == (28, 60, 106)
    assert visual_tokens(MOCHI_DEFAULTS, 163, 480, 848) == 44_520


def test_step_flops_at_full_size_match_the_issue_estimate() -> None:
    flops = step_flops(MOCHI_DEFAULTS, visual=44_520, text=256, text_embed_dim=4096)
    assert 3.30e15 < flops < 3.36e15
    single = step_flops(MOCHI_DEFAULTS, visual=44_520, text=256, text_embed_dim=4096, cfg=False)
    assert flops == pytest.approx(2 * single)


def test_geometry_is_checked() -> None:
    with pytest.raises(ValueError):
        latent_shape(8, 480, 848)


def test_tiny_run_reports_every_stage_and_option(report_path: pathlib.Path) -> None:
    report = run_bench(
        ["bench/gpu_mochi.py", "--tiny", "--frames", "7", "--repeats", "1",
         "--compile-backend", "eager"],
        report_path,
    )  # fmt: skip
    assert report["mode"] == "tiny"
    assert report["text_encoding"]["median_s"] > 0
    (size,) = report["sizes"]
    assert size["frames"] == 7
    assert size["visual_tokens"] > 0
    assert size["step"]["median_s"] > 0
    assert size["step_tflop"] > 0
    assert size["achieved_tflops"] > 0
    assert size["mfu"] is None  # no GPU peak on a CPU
    assert size["vae_decode_tiled"]["status"] == "ok"
    assert size["vae_decode_untiled"]["status"] == "ok"
    assert size["mp4_encode"]["median_s"] > 0
    assert size["mp4_bytes"] > 0
    options = report["options"]
    assert options["frames"] == 7
    results = {result["name"]: result for result in options["results"]}
    assert list(results) == list(OPTIONS)
    for result in results.values():
        assert result["status"] in ("ok", "skipped"), result
        if result["status"] == "skipped":
            assert result["reason"]
        else:
            assert result["timing"]["median_s"] > 0
            assert result["speedup"] > 0
    # What a CPU cannot run is reported with its reason, never dropped.
    assert results["sdpa-cudnn"]["status"] == "skipped"
    assert results["fp8-torchao"]["status"] == "skipped"
    for name in ("torch-compile", "first-block-cache", "combined"):
        assert results[name]["status"] == "ok"
    assert results["first-block-cache"]["steps_fully_computed"] >= 1


class _LeaseEnded(Exception):
    pass


def test_a_run_cut_short_leaves_every_figure_it_got(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A GPU lease can end mid-run: what ran before the cut is on disk already."""
    from bench import gpu_mochi

    def lease_ends(*_: object) -> None:
        raise _LeaseEnded

    monkeypatch.setattr(gpu_mochi, "_tiled_decode_stage", lease_ends)
    out = tmp_path / "cut.json"
    args = ["--tiny", "--frames", "7", "--repeats", "1", "--options", "sdpa-flash"]
    with pytest.raises(_LeaseEnded):
        gpu_mochi.main([*args, "--out", str(out)])
    report = json.loads(out.read_text())
    assert report["complete"] is False
    (size,) = report["sizes"]
    assert size["step"]["median_s"] > 0
    assert size["vae_decode_tiled"] is None  # the stage the lease cut
    (option,) = report["options"]["results"]
    assert option["name"] == "sdpa-flash" and option["status"] == "ok"
