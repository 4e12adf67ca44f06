"""LMDeploy says what runs: which of its engines starts (it may fall back from TurboMind to PyTorch, with one
warning), in which dtype, and which AWQ checkpoints an engine cannot load; the kit's answers checked against
LMDeploy 0.18's own functions.

The serving-environment tests run tests/lmdeploy_probe.py with its Python: LMDeploy's decisions need lmdeploy,
not a GPU. The rest runs anywhere. Starting an engine needs a GPU (test_serving_engine, test_api_server)."""

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
from conftest import REPO_ROOT

from course_lib.serving.lmdeploy_backend import (
    AWQ_GROUP_SIZE,
    CannotServe,
    EnginePlan,
    LMDeployEngine,
    awq_refusal,
    check_awq,
    quantization_config,
    running_engine,
)

# As `lmdeploy lite auto_awq` writes it: into the language model's config, llm_config (lite/apis/auto_awq.py).
AWQ = {"quant_method": "awq", "version": "gemm", "bits": 4, "group_size": AWQ_GROUP_SIZE, "zero_point": True}
FALLBACK = "Fallback to pytorch engine because"  # lmdeploy/archs.py autoget_backend, both of its warnings


def _variant(source, folder, edit):
    import shutil

    shutil.copytree(source, folder)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    edit(config)
    (folder / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def checkpoints(tiny_path, tmp_path_factory):
    """The tiny checkpoint with other config.json quantisation settings (weights unchanged: nothing loads them)."""
    root = tmp_path_factory.mktemp("quantised")

    def in_llm(**changes):
        return lambda config: config["llm_config"].update(quantization_config=dict(AWQ, **changes))

    return {
        "plain": tiny_path,
        "awq": _variant(tiny_path, root / "awq", in_llm()),
        "awq_top": _variant(tiny_path, root / "awq_top", lambda config: config.update(quantization_config=dict(AWQ))),
        "awq_g64": _variant(tiny_path, root / "awq_g64", in_llm(group_size=64)),
        "awq_gemv": _variant(tiny_path, root / "awq_gemv", in_llm(version="gemv")),
        "smooth_quant": _variant(
            tiny_path,
            root / "smooth_quant",
            lambda config: config["llm_config"].update(quantization_config={"quant_method": "smooth_quant"}),
        ),
    }


@pytest.fixture(scope="module")
def facts(checkpoints):
    """What tests/lmdeploy_probe.py finds with LMDeploy 0.18 (about 20 s: lmdeploy's imports, then a start-up
    that fails without a GPU)."""
    from course_lib.serving.lmdeploy_backend import renderer_status
    from course_lib.serving.serving_env import lmdeploy_importable, serving_python

    ok, why = renderer_status()
    if not ok:
        pytest.skip(f"LMDeploy's own decisions need lmdeploy: {why}")
    python = sys.executable if lmdeploy_importable() else str(serving_python())
    cases = {
        "tiny": str(checkpoints["plain"]),
        "awq": {name: str(path) for name, path in checkpoints.items() if name.startswith("awq")},
        "smooth_quant": str(checkpoints["smooth_quant"]),
        "start": True,
    }
    done = subprocess.run(
        [python, str(REPO_ROOT / "tests" / "lmdeploy_probe.py")],
        input=json.dumps(cases),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1"),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


# ---- which engine runs (LMDeploy's decision, in the serving environment, no GPU needed) --------------------------
@pytest.mark.timeout(600)
def test_the_engine_that_runs_is_lmdeploys_own_choice(facts):
    engines = facts["engines"]
    here = engines["here"]
    for bf16 in (True, False):
        asked_turbomind, asked_pytorch = here[f"turbomind-{bf16}"], here[f"pytorch-{bf16}"]
        assert asked_turbomind["runs"] == here["lmdeploy"]  # what lmdeploy.archs.autoget_backend says
        assert asked_pytorch["runs"] == "pytorch" and asked_pytorch["warnings"] == []
        assert asked_pytorch["reasons"][0] == "LMDeploy runs its pytorch engine, as asked"
        if not engines["turbomind_available"]:  # its CUDA library does not load here: LMDeploy falls back, and says so
            assert asked_turbomind["runs"] == "pytorch" and asked_turbomind["config"] == "PytorchEngineConfig"
            assert asked_turbomind["warnings"] == [
                "LMDeploy: Fallback to pytorch engine because turbomind is not built."
            ]
            assert asked_turbomind["reasons"][0].startswith("LMDeploy runs its pytorch engine, not the turbomind asked")
    # Where TurboMind's library loads (a GPU machine), LMDeploy asks whether it knows the architecture.
    loads = engines["turbomind_loads"]
    assert loads["tiny"]["runs"] == loads["tiny"]["lmdeploy"] == "turbomind" and loads["tiny"]["warnings"] == []
    assert loads["smooth_quant"]["runs"] == loads["smooth_quant"]["lmdeploy"] == "pytorch"
    (said,) = loads["smooth_quant"]["warnings"]
    assert FALLBACK in said and "not supported by turbomind engine" in said


@pytest.mark.timeout(600)
def test_the_engine_config_carries_the_precision_chosen_for_the_gpu(facts):
    """bf16=True is a GPU of compute capability 8.0 or more; bf16=False a V100, T4 or RTX 20xx (precision.choose).
    The dtype survives LMDeploy's own move of a TurbomindEngineConfig into a PytorchEngineConfig on fall-back."""
    for plans in (facts["engines"]["here"], facts["engines"]["turbomind_loads"]):
        for name, plan in plans.items():
            if name == "lmdeploy":
                continue
            bf16 = not name.endswith("False")
            assert plan["dtype"] == ("bfloat16" if bf16 else "float16"), name
            assert (
                plan["config"] == {"turbomind": "TurbomindEngineConfig", "pytorch": "PytorchEngineConfig"}[plan["runs"]]
            )
            assert plan["session_len"] == 4096
            assert plan["reasons"][1].startswith(f"dtype {plan['dtype']}: a test GPU")


@pytest.mark.timeout(600)
def test_lmdeploys_warnings_reach_the_student_when_the_engine_starts(facts):
    """LMDeployEngine's whole start-up on a machine without a GPU: LMDeploy's fall-back warning comes out as an
    LMDeployWarning (the kit used to pass log_level="ERROR", which hid it), then LMDeploy's own error."""
    start = facts["start"]
    if "skipped" in start:
        pytest.skip(start["skipped"])
    assert not start["started"] and "Found no NVIDIA driver" in start["error"]
    if not facts["engines"]["turbomind_available"]:
        assert start["warnings"] == ["LMDeploy: Fallback to pytorch engine because turbomind is not built."]


@pytest.mark.timeout(600)
def test_running_engine_reads_where_lmdeploy_keeps_the_engine(facts):
    assert facts["attributes"] == {"pipeline_keeps_async_engine": True, "async_engine_keeps_backend": True}


# ---- AWQ: the kit's refusals against LMDeploy's own code -----------------------------------------------------------
@pytest.mark.timeout(600)
def test_the_kit_finds_the_quantisation_where_lmdeploy_does(facts):
    for name, found in facts["awq"].items():
        assert found["kit_quantization"] == found["lmdeploy_quantization"], name


@pytest.mark.timeout(600)
def test_awq_refusals_for_the_pytorch_engine_agree_with_lmdeploy(facts):
    awq = facts["awq"]
    # model_format="awq" on plain weights: LMDeploy's PyTorch engine raises; the kit refuses first (both engines).
    assert awq["plain"]["pytorch_model_format_awq"] == "RuntimeError: Unsupported weight quantization method: awq"
    assert all(awq["plain"]["kit"]["awq"].values()) and not any(awq["plain"]["kit"]["None"].values())
    for name, found in awq.items():
        if name == "plain":
            continue
        assert found["pytorch_model_format_awq"] == "accepted", name  # LMDeploy ignores it for quantised weights
        # The PyTorch engine can load the 4-bit weights exactly when its language model sees the AWQ settings.
        assert (found["kit"]["None"]["pytorch"] is None) == found["pytorch_llm_sees_awq"], name


@pytest.mark.timeout(600)
def test_awq_refusals_for_turbomind_agree_with_its_converter(facts):
    """TurboMind's own AWQ checks (turbomind/converter.py get_tm_config) import its CUDA library: a GPU machine."""
    for name, found in facts["awq"].items():
        for model_format, (accepted, why) in found["turbomind"].items():
            if accepted is None:
                pytest.skip(why)
            if name == "plain" and model_format == "awq":
                continue  # its converter does not check this; the kit refuses it (no 4-bit weights to read)
            assert (found["kit"][model_format]["turbomind"] is None) == accepted, (name, model_format, why)


def test_awq_refusals_say_why_and_what_to_do(checkpoints):
    assert quantization_config(checkpoints["plain"]) == {} and quantization_config(checkpoints["awq"]) == AWQ
    for engine in ("turbomind", "pytorch"):
        assert awq_refusal(checkpoints["awq"], engine) is None  # as `lmdeploy lite auto_awq` writes it: both load it
        assert awq_refusal(checkpoints["awq"], engine, "awq") is None
        with pytest.raises(CannotServe, match=f"(?s)LMDeploy's {engine} engine cannot serve.*lmdeploy lite auto_awq"):
            check_awq(checkpoints["plain"], engine, model_format="awq")
    assert "unquantised model" in awq_refusal(checkpoints["awq_g64"], "turbomind")
    assert awq_refusal(checkpoints["awq_g64"], "pytorch") is None
    assert "version='gemv'" in awq_refusal(checkpoints["awq_gemv"], "turbomind")
    assert "model_format unset" in awq_refusal(checkpoints["awq"], "turbomind", "hf")
    assert awq_refusal(checkpoints["awq"], "pytorch", "hf") is None
    top = awq_refusal(checkpoints["awq_top"], "pytorch")
    assert "outside llm_config" in top and "TurboMind (engine='turbomind')" in top
    assert awq_refusal(checkpoints["awq_top"], "turbomind") is None
    assert awq_refusal("OpenGVLab/InternVL2-2B-AWQ", "pytorch") is None  # a hub name: LMDeploy judges it itself
    with pytest.raises(ValueError, match="engine must be one of"):
        awq_refusal(checkpoints["awq"], "vllm")


# ---- after start-up: the engine LMDeploy started (GPU-free stand-ins for its pipeline) ----------------------------
def test_running_engine_is_read_from_the_pipeline():
    assert running_engine(SimpleNamespace(async_engine=SimpleNamespace(backend="pytorch"))) == "pytorch"
    turbomind_config = type("TurbomindEngineConfig", (), {})()
    assert running_engine(SimpleNamespace(backend_config=turbomind_config)) == "turbomind"
    with pytest.raises(RuntimeError, match="serving.lock"):
        running_engine(SimpleNamespace())


def test_the_label_and_the_reasons_name_the_engine_that_runs(tiny_path):
    from course_lib.precision import choose

    engine = LMDeployEngine.__new__(LMDeployEngine)  # the attributes __init__ sets, without a GPU
    engine.model_path, engine.asked, engine.engine = tiny_path, "turbomind", "pytorch"
    assert engine.label == f"{tiny_path.name} (lmdeploy/pytorch, not the turbomind asked for)"
    engine.engine = "turbomind"
    assert engine.label == f"{tiny_path.name} (lmdeploy/turbomind)"
    said = "Fallback to pytorch engine because turbomind is not built."
    plan = EnginePlan("turbomind", "pytorch", None, choose("cuda", bf16=False, gpu="T4"), (said,))
    assert plan.reasons() == [
        f"LMDeploy runs its pytorch engine, not the turbomind asked for: {said}",
        "dtype float16: T4 has no bfloat16 arithmetic (compute capability below 8.0, e.g. V100, T4, RTX 20xx): "
        "float16 instead",
    ]


def test_what_lmdeploys_logger_warns_comes_out_as_a_python_warning():
    import logging

    from course_lib.serving.lmdeploy_backend import LMDeployWarning, lmdeploy_warnings

    with pytest.warns(LMDeployWarning, match="LMDeploy: Fallback to pytorch engine because turbomind is not built"):
        with lmdeploy_warnings() as said:
            logging.getLogger("lmdeploy").info("not a warning")
            logging.getLogger("lmdeploy").warning("Fallback to pytorch engine because turbomind is not built.")
    assert said == ["Fallback to pytorch engine because turbomind is not built."]
