"""The tiny checkpoint build: deterministic, cached, rebuilt only when its source changes, never half-written."""

import hashlib
import json

from course_lib.tiny_internvl2 import build


def _digest(folder):
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.iterdir())
        if p.name != "build_info.json"
    }


def test_two_builds_are_byte_identical(tmp_path):
    first = build.ensure_tiny_checkpoint(tmp_path / "a", log=lambda *_: None)
    second = build.ensure_tiny_checkpoint(tmp_path / "b", log=lambda *_: None)
    assert first.name == second.name
    assert _digest(first) == _digest(second)


def test_cached_build_is_reused(tmp_path):
    messages = []
    path = build.ensure_tiny_checkpoint(tmp_path, log=messages.append)
    stamp = (path / "model.safetensors").stat().st_mtime_ns
    assert build.ensure_tiny_checkpoint(tmp_path, log=messages.append) == path
    assert (path / "model.safetensors").stat().st_mtime_ns == stamp
    assert len([m for m in messages if m.startswith("Building")]) == 1
    info = json.loads((path / "build_info.json").read_text())
    assert info["source_hash"] == build.source_hash()
    assert 1e6 < info["parameters"] < 10e6


def test_changed_source_builds_a_new_folder(tmp_path, monkeypatch):
    before = build.checkpoint_dir(tmp_path)
    monkeypatch.setitem(build.SPEC["llm_config"], "num_hidden_layers", 2)
    assert build.checkpoint_dir(tmp_path) != before


def test_a_half_written_folder_is_rebuilt(tmp_path):
    target = build.checkpoint_dir(tmp_path)
    target.mkdir(parents=True)
    (target / "config.json").write_text("{ truncated")
    path = build.ensure_tiny_checkpoint(tmp_path, log=lambda *_: None)
    assert path == target and build.is_complete(path)
    assert json.loads((path / "config.json").read_text())["model_type"] == "internvl_chat"
    assert not [p for p in tmp_path.iterdir() if "-building-" in p.name]
