"""LMDeploy's api_server from Python: the command, the process lifecycle (start, readiness, logs, no orphans),
the OpenAI-style requests (base64 images, per-image max_dynamic_patch, settings), the KV-cache arithmetic,
and a real server where one can run."""

import json
import os
import sys

import psutil
import pytest
from conftest import FOOD_IMAGES
from PIL import Image

from course_lib.serving import GenerationSettings
from course_lib.serving import openai_client as oc
from course_lib.serving.api_server import ApiServer, api_server_command, api_server_status, lmdeploy_cli
from course_lib.serving.kv_cache import cache_memory_estimate, kv_bytes_per_token
from course_lib.serving.server_process import ServerProcess, ServerStartError, free_port
from course_lib.tiling import ImageLoadError, open_rgb

DUMPLINGS = FOOD_IMAGES / "1f95f.webp"
SERVER_OK, SERVER_WHY = api_server_status()

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ---- the command --------------------------------------------------------------------------------
def test_api_server_command_has_every_flag():
    command = api_server_command(
        "/models/InternVL2-2B",
        23333,
        backend="pytorch",
        session_len=4096,
        cache_max_entry_count=0.5,
        tp=2,
        quant_policy=8,
        model_name="internvl2",
        lmdeploy="/venv/bin/lmdeploy",
        chat_template="/tmp/template.json",
        dtype="float16",
        model_format="awq",
    )
    assert command == [
        "/venv/bin/lmdeploy",
        "serve",
        "api_server",
        "/models/InternVL2-2B",
        "--backend",
        "pytorch",
        "--server-name",
        "127.0.0.1",
        "--server-port",
        "23333",
        "--session-len",
        "4096",
        "--cache-max-entry-count",
        "0.5",
        "--tp",
        "2",
        "--dtype",
        "float16",
        "--model-format",
        "awq",
        "--log-level",
        "WARNING",
        "--quant-policy",
        "8",
        "--model-name",
        "internvl2",
        "--chat-template",
        "/tmp/template.json",
        "--trust-remote-code",
    ]
    default = api_server_command("m", 1)
    assert default[default.index("--server-name") + 1] == "127.0.0.1"  # LMDeploy's own default is 0.0.0.0
    assert "--quant-policy" not in default and default[-1] == "--trust-remote-code"
    assert "--dtype" not in default  # LMDeploy's "auto"; ApiServer passes the GPU's (below)
    assert default[default.index("--log-level") + 1] == "WARNING"  # keeps LMDeploy's fall-back warning in the log


@pytest.mark.parametrize("bf16, dtype", [(True, "bfloat16"), (False, "float16")])
def test_the_server_computes_in_the_precision_chosen_for_the_gpu(internvl2_2b_shaped, bf16, dtype):
    """bf16: does the GPU compute in bfloat16 (compute capability 8.0+; not a V100, T4 or RTX 20xx)?"""
    server = ApiServer(internvl2_2b_shaped, lmdeploy="/bin/false", bf16=bf16)  # built, not started
    assert server.command[server.command.index("--dtype") + 1] == dtype == server.precision.name


def test_awq_weights_the_engine_cannot_load_are_refused_before_start(internvl2_2b_shaped, tmp_path):
    import shutil

    from course_lib.serving.lmdeploy_backend import CannotServe

    with pytest.raises(CannotServe, match="(?s)no AWQ quantization_config.*lmdeploy lite auto_awq"):
        ApiServer(internvl2_2b_shaped, lmdeploy="/bin/false", model_format="awq")
    top = tmp_path / "awq-outside-llm-config"
    shutil.copytree(internvl2_2b_shaped, top)
    config = json.loads((top / "config.json").read_text(encoding="utf-8"))
    config["quantization_config"] = {"quant_method": "awq", "version": "gemm", "bits": 4, "group_size": 128}
    (top / "config.json").write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(CannotServe, match="(?s)pytorch engine cannot serve.*TurboMind"):
        ApiServer(top, backend="pytorch", lmdeploy="/bin/false")
    assert ApiServer(top, backend="turbomind", lmdeploy="/bin/false").command  # TurboMind finds it there


def test_the_engine_that_runs_is_read_from_the_servers_log():
    from course_lib.serving.api_server import engine_in_log

    line = (
        "2026-12-07 01:37:33,659 - lmdeploy - WARNING - archs.py:40 - Fallback to pytorch engine because turbomind "
        "is not built."
    )
    assert engine_in_log("turbomind", "INFO: started\n" + line + "\n") == (
        "pytorch",
        "Fallback to pytorch engine because turbomind is not built.",
    )
    assert engine_in_log("turbomind", "INFO: started")[0] == "turbomind"
    assert engine_in_log("pytorch", line)[0] == "pytorch"
    with pytest.raises(ValueError, match="asked must be one of"):
        engine_in_log("vllm", "")


def test_the_server_is_given_the_checkpoints_own_chat_template(internvl2_2b_shaped):
    """Not the tokenizer's (LMDeploy's default): the layout and system line chat() uses (see test_serving_engine)."""
    from course_lib.checkpoints import chat_template_fields

    server = ApiServer(internvl2_2b_shaped, lmdeploy="/bin/false")  # built, not started
    template = server.command[server.command.index("--chat-template") + 1]
    assert json.loads(open(template, encoding="utf-8").read()) == chat_template_fields(internvl2_2b_shaped)
    assert chat_template_fields(internvl2_2b_shaped)["eoa"] == "<|im_end|>"  # no newline after it


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(backend="vllm"), "turbomind or pytorch"),
        (dict(cache_max_entry_count=1.5), "share of free GPU memory"),
        (dict(quant_policy=2), "quant_policy"),
    ],
)
def test_api_server_command_refuses_bad_settings(bad, message):
    with pytest.raises(ValueError, match=message):
        api_server_command("m", 1, **bad)


def test_the_serving_environments_lmdeploy_comes_first(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("python", "lmdeploy"):
        (bin_dir / name).write_text("#!/bin/sh\n")
    monkeypatch.setenv("COURSE_SERVING_PYTHON", str(bin_dir / "python"))
    assert lmdeploy_cli() == bin_dir / "lmdeploy"


def test_without_lmdeploy_the_status_says_why():
    if SERVER_OK:
        pytest.skip("an api_server can run here")
    assert not SERVER_OK and ("make serving-env" in SERVER_WHY or "no CUDA GPU" in SERVER_WHY)
    if lmdeploy_cli() is None:
        with pytest.raises(ServerStartError, match="make serving-env"):
            ApiServer("/models/x")


# ---- the process lifecycle, with a real HTTP server in its own process group ---------------------------
def _static_server(tmp_path, port):
    """`python -m http.server` serving a /v1/models file, started by a shell that leaves a child behind."""
    (tmp_path / "v1").mkdir()
    (tmp_path / "v1" / "models").write_text(json.dumps({"data": [{"id": "tiny"}]}))
    script = f"sleep 600 & exec {sys.executable} -m http.server {port} --bind 127.0.0.1 --directory {tmp_path}"
    return ServerProcess(["sh", "-c", script], port, log_path=tmp_path / "server.log", startup_timeout=60)


def test_server_process_starts_answers_and_leaves_no_orphans(tmp_path):
    port = free_port()
    server = _static_server(tmp_path, port)
    with server:
        assert server.running and server.get_json("/v1/models")["data"][0]["id"] == "tiny"
        members = server.group_processes()
        assert len(members) >= 2  # the server and the child it left behind
        listening = {
            c.laddr.ip
            for c in psutil.net_connections("inet")
            if c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN
        }
        assert listening == {"127.0.0.1"}
        assert (tmp_path / "server.log").read_text().startswith("$ sh -c sleep 600")
    assert not server.running
    assert not [p for p in members if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def test_a_server_that_dies_at_start_reports_its_log(tmp_path):
    failing = ServerProcess(
        ["sh", "-c", "echo 'RuntimeError: Found no NVIDIA driver on your system.' >&2; exit 3"],
        free_port(),
        log_path=tmp_path / "failed.log",
        startup_timeout=30,
    )
    with pytest.raises(ServerStartError, match="(?s)exited with code 3.*Found no NVIDIA driver"):
        failing.start()
    assert failing.process is None


def test_a_server_that_never_answers_is_stopped(tmp_path):
    silent = ServerProcess(["sleep", "600"], free_port(), log_path=tmp_path / "silent.log", startup_timeout=1.5)
    with pytest.raises(ServerStartError, match="no answer"):
        silent.start()
    assert silent.process is None


# ---- OpenAI-style requests ----------------------------------------------------------------------------
def test_images_travel_as_base64_data_urls(tmp_path):
    url = oc.image_data_url(DUMPLINGS)
    assert url.startswith("data:image/png;base64,")
    image = oc.image_from_data_url(url)
    assert image.mode == "RGB" and image.size == Image.open(DUMPLINGS).size
    assert image.getpixel((2, 2)) > (245, 245, 245)  # the transparent corner is white, not black
    assert image.tobytes() == open_rgb(DUMPLINGS).tobytes()  # lossless: the server sees the kit's pixels
    assert oc.image_data_url(DUMPLINGS, format="JPEG").startswith("data:image/jpeg;base64,")
    with pytest.raises(ImageLoadError, match="base64"):
        oc.image_from_data_url("data:image/png;base64,%%%")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 nope")
    with pytest.raises(ImageLoadError, match="broken.jpg"):
        oc.image_data_url(broken)


def test_messages_put_images_first_with_their_tile_budget():
    message = oc.user_message("图中的菜是什么？", [DUMPLINGS], max_dynamic_patch=4)
    image, text = message["content"]
    assert message["role"] == "user" and image["type"] == "image_url"
    assert image["image_url"]["max_dynamic_patch"] == 4 and image["image_url"]["url"].startswith("data:image/")
    assert text == {"type": "text", "text": "图中的菜是什么？"}
    assert oc.image_part("http://example.org/a.jpg", detail="low")["image_url"] == {
        "url": "http://example.org/a.jpg",
        "detail": "low",
    }
    messages = oc.chat_messages("它是哪里的菜？", history=[("图中的菜是什么？", DUMPLINGS, "饺子")], system="Be brief.")
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[-1]["content"] == [{"type": "text", "text": "它是哪里的菜？"}]


def test_requests_carry_lmdeploys_settings():
    messages = oc.chat_messages("hi")
    greedy = oc.completion_request("internvl2", messages, GenerationSettings(max_new_tokens=64))
    assert greedy == {
        "model": "internvl2",
        "messages": messages,
        "temperature": 1.0,
        "top_p": 1.0,
        "max_completion_tokens": 64,
        "stop": ["<|im_end|>"],
        "extra_body": {"top_k": 1, "repetition_penalty": 1.0},
    }
    sampling = GenerationSettings(
        max_new_tokens=32, do_sample=True, top_p=0.8, top_k=20, temperature=0.6, repetition_penalty=1.05
    )
    request = oc.completion_request("internvl2", messages, sampling, stream=True)
    assert request["stream"] is True and oc.settings_from_request(request) == sampling
    assert oc.settings_from_request(greedy) == GenerationSettings(max_new_tokens=64)
    assert 0 < oc.request_size(oc.completion_request("m", oc.chat_messages("q", DUMPLINGS))) < 100_000


def test_the_openai_sdk_sends_the_extra_fields_at_the_top_level():
    """The OpenAI SDK refuses unknown keyword arguments; LMDeploy reads top_k and repetition_penalty from the JSON
    body. This checks what the SDK would put on the wire (captured before any network), nothing more."""
    import httpx
    from openai import OpenAI

    sent = {}

    def capture(request):
        sent.update(json.loads(request.content))
        return httpx.Response(
            200,
            json={
                "id": "x",
                "object": "chat.completion",
                "created": 0,
                "model": "m",
                "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "ok"}}],
            },
        )

    client = OpenAI(
        base_url="http://127.0.0.1:9/v1",
        api_key="none",
        http_client=httpx.Client(transport=httpx.MockTransport(capture)),
    )
    request = oc.completion_request("internvl2", oc.chat_messages("q", DUMPLINGS, max_dynamic_patch=2))
    assert oc.ask(client, request) == "ok"
    assert sent["top_k"] == 1 and sent["repetition_penalty"] == 1.0 and sent["max_completion_tokens"] == 512
    assert sent["messages"][0]["content"][0]["image_url"]["max_dynamic_patch"] == 2


def test_the_same_request_answered_by_the_local_engine(tiny):
    from course_lib.serving.transformers_backend import TransformersEngine

    engine = TransformersEngine(*tiny)
    settings = GenerationSettings(max_new_tokens=16)
    request = oc.completion_request(
        "tiny", oc.chat_messages("图中的菜是什么？", DUMPLINGS, max_dynamic_patch=2), settings
    )
    assert (
        oc.answer_locally(engine, request)
        == engine.chat("图中的菜是什么？", DUMPLINGS, settings=settings, max_tiles=2).response.text
    )
    first = engine.chat("图中的菜是什么？", DUMPLINGS, settings=settings)
    follow_up = oc.completion_request(
        "tiny",
        oc.chat_messages("它是哪里的菜？", history=[("图中的菜是什么？", DUMPLINGS, first.response.text)]),
        settings,
    )
    assert (
        oc.answer_locally(engine, follow_up)
        == engine.chat("它是哪里的菜？", session=first, settings=settings).response.text
    )
    with pytest.raises(ValueError, match="system message"):
        oc.answer_locally(engine, oc.completion_request("tiny", oc.chat_messages("hi", system="x")))


# ---- cache_max_entry_count arithmetic -------------------------------------------------------------------
def test_kv_cache_arithmetic_for_internvl2_2b():
    assert kv_bytes_per_token() == 2 * 24 * 8 * 128 * 2 == 98_304  # 96 KiB per token in bf16
    assert kv_bytes_per_token() * 8192 == 768 * 1024**2  # a full 8k session: 768 MiB
    a100 = cache_memory_estimate(80, weights_gib=4.0)
    assert a100.free_gib == 76 and a100.cache_gib == pytest.approx(60.8)
    assert a100.tokens == int(60.8 * 1024**3 // (98_304 * 64)) * 64 and a100.tokens % 64 == 0
    assert a100.sessions == a100.tokens // 8192 == 81
    int8 = cache_memory_estimate(80, weights_gib=4.0, quant_policy=8)
    int4 = cache_memory_estimate(80, weights_gib=4.0, quant_policy=4)
    assert int8.tokens == pytest.approx(2 * a100.tokens, abs=128)  # whole 64-token blocks
    assert int4.tokens == pytest.approx(4 * a100.tokens, abs=256)
    small = cache_memory_estimate(24, cache_max_entry_count=0.5)
    assert small.weights_gib == pytest.approx(2.2e9 * 2 / 1024**3) and small.left_gib == pytest.approx(small.cache_gib)
    assert "full 8192-token sessions" in small.summary()
    with pytest.raises(ValueError, match="share of free GPU memory"):
        cache_memory_estimate(24, cache_max_entry_count=0)
    with pytest.raises(ValueError, match="quant_policy"):
        cache_memory_estimate(24, quant_policy=16)


# ---- real LMDeploy ------------------------------------------------------------------------------------------
@pytest.mark.timeout(300)
def test_real_lmdeploy_without_a_gpu_fails_fast_with_its_own_error(tiny_path):
    """Where the `lmdeploy` command exists but there is no GPU, the start fails with LMDeploy's message. Asked
    for TurboMind, whose CUDA library does not load here, LMDeploy first falls back to its PyTorch engine, says so
    in the log (lmdeploy/archs.py autoget_backend), and the kit reads that PyTorch is what ran."""
    from course_lib.config import cuda_available

    if lmdeploy_cli() is None or cuda_available():
        pytest.skip("needs the `lmdeploy` command on a machine without CUDA (" + SERVER_WHY + ")")
    # --max-batch-size: else LMDeploy asks the GPU's name for its default first (lmdeploy/utils.py
    # get_max_batch_size) and fails before it chooses an engine
    server = ApiServer(tiny_path, backend="turbomind", startup_timeout=240, extra=["--max-batch-size", "4"])
    with pytest.raises(ServerStartError, match="exited with code"):
        server.start()
    assert server.process is None
    assert "RuntimeError: Found no NVIDIA driver" in server.log_path.read_text(encoding="utf-8")
    assert server.engine_and_why() == ("pytorch", "Fallback to pytorch engine because turbomind is not built.")


# ---- a real api_server (GPU machine with the serving environment) -------------------------------------------
@pytest.mark.timeout(900)
@pytest.mark.skipif(not SERVER_OK, reason=SERVER_WHY)
def test_real_api_server_answers_openai_requests(tiny_path):
    with ApiServer(tiny_path, backend="pytorch", session_len=4096, cache_max_entry_count=0.2) as server:
        assert server.models() == [server.model_name] and server.engine == "pytorch"
        client = oc.make_client(server.base_url)
        request = oc.completion_request(
            server.model_name,
            oc.chat_messages("图中的菜是什么？", DUMPLINGS, max_dynamic_patch=2),
            GenerationSettings(max_new_tokens=24),
        )
        answer = oc.ask(client, request)
        assert isinstance(answer, str)
        assert "".join(oc.stream(client, request)) == answer  # greedy: the stream joins to the same text
        members = server.group_processes()
    assert not [p for p in members if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert os.path.getsize(server.log_path) > 0


def test_a_local_path_that_starts_with_http_is_sent_as_the_picture(tmp_path, monkeypatch):
    from course_lib.serving.openai_client import image_part

    monkeypatch.chdir(tmp_path)
    (tmp_path / "http_images").mkdir()
    Image.new("RGB", (16, 16), "red").save(tmp_path / "http_images" / "x.png")
    assert image_part("http_images/x.png")["image_url"]["url"].startswith("data:image/png;base64,")
    assert image_part("https://example.org/x.png")["image_url"]["url"] == "https://example.org/x.png"
