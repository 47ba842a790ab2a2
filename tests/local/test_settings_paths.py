"""Settings resolve the data directory and the model to absolute paths, from any folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from t2v.settings import Settings, tiny_model_dir, user_data_dir


def test_the_data_directory_is_per_user_by_default() -> None:
    assert user_data_dir({"XDG_DATA_HOME": "/srv/xdg", "HOME": "/home/a"}) == Path("/srv/xdg/t2v")
    assert user_data_dir({"HOME": "/home/a"}) == Path("/home/a/.local/share/t2v")
    # The XDG rules ignore a relative XDG_DATA_HOME.
    assert user_data_dir({"XDG_DATA_HOME": "rel", "HOME": "/home/a"}) == Path(
        "/home/a/.local/share/t2v"
    )
    settings = Settings.from_env({"HOME": "/home/a"})
    assert settings.data_dir == Path("/home/a/.local/share/t2v")
    assert settings.model == str(tiny_model_dir(settings.data_dir))
    assert settings.model == "/home/a/.local/share/t2v/models/tiny-mochi"
    assert settings.model_profile == "tiny"
    assert settings.store_url == "sqlite:////home/a/.local/share/t2v/jobs.db"


def test_relative_paths_become_absolute_against_the_folder_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({"T2V_DATA_DIR": "data", "T2V_MODEL": "./models/m"})
    assert settings.data_dir == tmp_path / "data"
    assert settings.model == str(tmp_path / "models" / "m")
    assert settings.artifacts_url == f"file://{tmp_path / 'data' / 'artifacts'}"


def test_a_hub_id_stays_a_hub_id_and_is_the_mochi_profile() -> None:
    settings = Settings.from_env({"HOME": "/h", "T2V_MODEL": "genmo/mochi-1-preview"})
    assert settings.model == "genmo/mochi-1-preview"
    assert settings.model_profile == "mochi-1"
    assert settings.gpu == "h100"


def test_the_profile_comes_from_the_model_manifest(tiny_model_dir: Path) -> None:
    # The tiny model named by its own path (not the default location) is still tiny.
    settings = Settings.from_env({"HOME": "/h", "T2V_MODEL": str(tiny_model_dir)})
    assert settings.model_profile == "tiny"
    assert settings.gpu == "cpu-tiny"
    named = Settings.from_env({"T2V_MODEL": str(tiny_model_dir), "T2V_MODEL_PROFILE": "mochi-1"})
    assert named.model_profile == "mochi-1"
