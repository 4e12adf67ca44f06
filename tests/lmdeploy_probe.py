"""What LMDeploy 0.18 itself decides about engines and AWQ, next to what the kit decides, as JSON on stdout.

Run by tests/test_lmdeploy_truth.py with the serving environment's Python (it needs lmdeploy, not a GPU):

    .venv-serving/bin/python tests/lmdeploy_probe.py < checkpoints.json > facts.json

stdin: {"tiny": PATH, "awq": {NAME: PATH, ...}, "smooth_quant": PATH, "start": true|false}. Each answer pairs the
kit's function with LMDeploy's own: lmdeploy/archs.py autoget_backend (which engine runs), turbomind/converter.py
get_tm_config (what TurboMind accepts of an AWQ checkpoint), pytorch/config.py _patch_quantization_config and the
config the PyTorch engine's language model reads its AWQ settings from. "start" also builds LMDeployEngine, which
on a machine without a GPU must surface LMDeploy's warnings and then fail with LMDeploy's own error.
"""

import contextlib
import inspect
import json
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # course_lib, run from anywhere

QUANT_ERRORS = ("mismatched quant method", "unsupported quant config", "Unsupported group_size")


def _caught(call):
    """(result or None, LMDeployWarning messages, error "Type: message" or None)."""
    from course_lib.serving.lmdeploy_backend import LMDeployWarning

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        try:
            result, error = call(), None
        except Exception as exc:  # noqa: BLE001 - reported to the test, which judges it
            result, error = None, f"{type(exc).__name__}: {exc}"
    said = [str(w.message) for w in seen if issubclass(w.category, LMDeployWarning)]
    return result, said, error


def _plan(path, engine, bf16):
    from course_lib.serving.lmdeploy_backend import plan_engine

    plan, said, error = _caught(lambda: plan_engine(path, engine, session_len=4096, bf16=bf16, gpu="a test GPU"))
    if plan is None:
        return {"error": error, "warnings": said}
    return {
        "runs": plan.runs,
        "config": type(plan.config).__name__,
        "dtype": plan.config.dtype,
        "session_len": plan.config.session_len,
        "warnings": said,
        "reasons": plan.reasons(),
    }


def _lmdeploys_backend(path):
    from lmdeploy.archs import autoget_backend

    return autoget_backend(str(path), trust_remote_code=True)


def _engines(tiny, smooth_quant):
    import lmdeploy.turbomind as turbomind

    facts = {"turbomind_available": turbomind.is_available(), "here": {}, "turbomind_loads": {}}
    for engine in ("turbomind", "pytorch"):
        for bf16 in (True, False):
            facts["here"][f"{engine}-{bf16}"] = _plan(tiny, engine, bf16)
    facts["here"]["lmdeploy"] = _lmdeploys_backend(tiny)
    # As on a GPU machine, where TurboMind's library loads: LMDeploy then asks whether it knows the architecture.
    available = turbomind.is_available
    turbomind.is_available = lambda: True
    try:
        for name, path in (("tiny", tiny), ("smooth_quant", smooth_quant)):
            facts["turbomind_loads"][name] = _plan(path, "turbomind", True)
            facts["turbomind_loads"][name]["lmdeploy"] = _lmdeploys_backend(path)
    finally:
        turbomind.is_available = available
    return facts


def _turbomind_accepts(path, model_format):
    """Does TurboMind's own AWQ reconciliation (the part of get_tm_config before it asks the GPU) accept it?
    (None, why) where its converter does not import: it needs TurboMind's CUDA library (turbomind/builders)."""
    from lmdeploy import TurbomindEngineConfig

    try:
        from lmdeploy.turbomind.converter import get_tm_config
    except Exception as exc:  # noqa: BLE001 - AttributeError on _tm None, or the library's own load error
        from lmdeploy import turbomind

        return None, (
            "TurboMind's AWQ checks (lmdeploy/turbomind/converter.py) import its CUDA library, which does not load "
            f"here ({turbomind._import_error or exc}); they run where it loads, on a GPU machine"
        )
    try:
        get_tm_config(str(path), TurbomindEngineConfig(model_format=model_format), trust_remote_code=True)
    except Exception as exc:  # noqa: BLE001 - only its reconciliation errors count as a refusal
        if any(message in str(exc) for message in QUANT_ERRORS):
            return False, str(exc)
        return True, f"past the AWQ checks ({type(exc).__name__}: {str(exc)[:200]})"
    return True, "accepted"


def _awq(tiny, checkpoints):
    from lmdeploy.archs import get_model_arch, search_nested_config
    from lmdeploy.pytorch.config import _patch_quantization_config
    from lmdeploy.pytorch.transformers import config_from_pretrained

    from course_lib.serving.lmdeploy_backend import awq_refusal, quantization_config

    facts = {}
    for name, path in {"plain": tiny, **checkpoints}.items():
        _, config = get_model_arch(str(path), trust_remote_code=True)
        hf_config = config_from_pretrained(str(path), trust_remote_code=True)
        llm_quant = getattr(hf_config.llm_config, "quantization_config", None) or {}
        entry = {
            "kit_quantization": quantization_config(path),
            "lmdeploy_quantization": search_nested_config(config.to_dict(), "quantization_config") or {},
            # what the PyTorch engine's InternLM2 layers read (pytorch/models/internvl.py, internlm2.py)
            "pytorch_llm_sees_awq": llm_quant.get("quant_method") == "awq",
            "kit": {},
            "turbomind": {},
        }
        for model_format in (None, "awq", "hf"):
            entry["kit"][str(model_format)] = {
                engine: awq_refusal(path, engine, model_format) for engine in ("turbomind", "pytorch")
            }
            entry["turbomind"][str(model_format)] = _turbomind_accepts(path, model_format)
        try:
            _patch_quantization_config(config_from_pretrained(str(path), trust_remote_code=True), "awq")
            entry["pytorch_model_format_awq"] = "accepted"
        except Exception as exc:  # noqa: BLE001
            entry["pytorch_model_format_awq"] = f"{type(exc).__name__}: {exc}"
        facts[name] = entry
    return facts


def _start(tiny):
    """LMDeployEngine's whole start-up path; without a GPU it must end in LMDeploy's own error."""
    import torch

    from course_lib.serving.lmdeploy_backend import LMDeployEngine

    if torch.cuda.is_available():
        return {"skipped": "a CUDA GPU is here: the pipeline tests start the engine"}

    def start():
        return LMDeployEngine(tiny, engine="turbomind", session_len=4096, cache_max_entry_count=0.2, bf16=True)

    engine, said, error = _caught(start)
    return {"started": engine is not None, "warnings": said, "error": error}


def _attributes():
    """Where LMDeploy 0.18 keeps the engine it started (what lmdeploy_backend.running_engine reads)."""
    from lmdeploy.pipeline import Pipeline
    from lmdeploy.serve.core.async_engine import AsyncEngine

    return {
        "pipeline_keeps_async_engine": "self.async_engine = " in inspect.getsource(Pipeline.__init__),
        "async_engine_keeps_backend": "self.backend = backend" in inspect.getsource(AsyncEngine.__init__),
    }


def main() -> int:
    cases = json.load(sys.stdin)
    real_stdout = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):  # LMDeploy logs to stdout: keep stdout for the JSON
        facts = {
            "engines": _engines(cases["tiny"], cases["smooth_quant"]),
            "awq": _awq(cases["tiny"], cases["awq"]),
            "attributes": _attributes(),
        }
        if cases.get("start"):
            facts["start"] = _start(cases["tiny"])
    json.dump(facts, real_stdout, ensure_ascii=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
