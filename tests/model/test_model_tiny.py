"""The tiny model builder: a loadable, deterministic pipeline directory and its CLI."""

from __future__ import annotations

import json
import pathlib

import pytest

from t2v.model.manifest import MANIFEST_FILE, config_digest, read_manifest
from t2v.model.tiny import build_tiny_mochi, is_built, main
from t2v.model.vocab import build_tokenizer

PIPELINE_PARTS = ("scheduler", "text_encoder", "tokenizer", "transformer", "vae")


def _weight_bytes(model_dir: pathlib.Path) -> dict[str, bytes]:
    return {
        path.relative_to(model_dir).as_posix(): path.read_bytes()
        for path in sorted(model_dir.rglob("*.safetensors"))
    }


def test_build_writes_a_full_pipeline_and_manifest(
    tiny_model_dir: pathlib.Path, tiny_seed: int
) -> None:
    index = json.loads((tiny_model_dir / "model_index.json").read_text())
    assert index["_class_name"] == "MochiPipeline"
    for part in PIPELINE_PARTS:
        assert part in index
        assert (tiny_model_dir / part).is_dir()
    manifest = read_manifest(tiny_model_dir)
    assert manifest is not None
    assert (manifest.name, manifest.profile, manifest.seed) == ("tiny-mochi", "tiny", tiny_seed)
    assert manifest.revision == config_digest(tiny_model_dir, salt=f"seed={tiny_seed}")
    assert len(manifest.revision) == 64
    # Nothing is left over from the scratch directory the build renames into place.
    assert sorted(p.name for p in tiny_model_dir.parent.iterdir()) == ["tiny-mochi"]


def test_vae_keeps_mochi_geometry(tiny_model_dir: pathlib.Path) -> None:
    vae_config = json.loads((tiny_model_dir / "vae" / "config.json").read_text())
    assert vae_config["latent_channels"] == 12
    assert vae_config["temporal_expansions"] == [1, 2, 3]  # 6x in time
    assert vae_config["spatial_expansions"] == [2, 2, 2]  # 8x in space
    transformer_config = json.loads((tiny_model_dir / "transformer" / "config.json").read_text())
    text_config = json.loads((tiny_model_dir / "text_encoder" / "config.json").read_text())
    assert transformer_config["patch_size"] == 2
    assert transformer_config["text_embed_dim"] == text_config["d_model"]


def test_same_seed_rebuilds_identically_and_other_seeds_differ(
    tiny_model_dir: pathlib.Path, tiny_seed: int, tmp_path: pathlib.Path
) -> None:
    again = build_tiny_mochi(tmp_path / "again", seed=tiny_seed)
    other = build_tiny_mochi(tmp_path / "other", seed=tiny_seed + 1)
    first_manifest, again_manifest = read_manifest(tiny_model_dir), read_manifest(again)
    other_manifest = read_manifest(other)
    assert first_manifest is not None and again_manifest is not None
    assert other_manifest is not None
    assert again_manifest.revision == first_manifest.revision
    assert _weight_bytes(again) == _weight_bytes(tiny_model_dir)
    assert other_manifest.revision != first_manifest.revision
    assert _weight_bytes(other) != _weight_bytes(tiny_model_dir)


def test_cli_skips_an_existing_build_unless_forced(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "cli-model"
    assert not is_built(out_dir, seed=3)
    assert main(["--out", str(out_dir), "--seed", "3"]) == 0
    assert is_built(out_dir, seed=3)
    assert "built tiny model" in capsys.readouterr().out

    marker = out_dir / "marker"
    marker.write_text("kept while the build is skipped")
    assert main(["--out", str(out_dir), "--seed", "3"]) == 0
    assert "already built" in capsys.readouterr().out
    assert marker.exists()

    assert main(["--out", str(out_dir), "--seed", "3", "--force"]) == 0
    assert not marker.exists()
    assert is_built(out_dir, seed=3)

    # Another seed is a different model, so it is rebuilt without --force.
    assert main(["--out", str(out_dir), "--seed", "4"]) == 0
    manifest = read_manifest(out_dir)
    assert manifest is not None and manifest.seed == 4
    assert (out_dir / MANIFEST_FILE).is_file()


def test_tokenizer_round_trips_prompts_without_unknown_tokens() -> None:
    tokenizer = build_tokenizer()
    prompt = "A red fox running through a snowy forest, cinematic 4K!"
    ids = tokenizer(prompt).input_ids
    assert ids[-1] == tokenizer.eos_token_id
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == prompt
    # Known words are single tokens; unknown ones fall back to characters.
    assert len(tokenizer("red fox").input_ids) == 3
    assert len(tokenizer("zyx").input_ids) > 2
