"""The Gradio food demo, started on 127.0.0.1 and driven through gradio_client like a user's browser would."""

import os
import sys
import threading
import urllib.request

import httpx
import psutil
import pytest
from conftest import FOOD_IMAGES

from course_lib.food_artwork import dishes
from course_lib.serving import GenerationSettings
from course_lib.serving.gradio_app import DEFAULT_QUESTION, build_demo, gallery_groups, launch
from course_lib.serving.server_process import ServerProcess, free_port
from course_lib.serving.transformers_backend import TransformersEngine

DUMPLINGS = FOOD_IMAGES / "1f95f.webp"
NOODLES = FOOD_IMAGES / "1f35c.webp"
TOKENS = 16
# Gradio 6.17's routes touch a constant Starlette deprecated; not ours to fix.
pytestmark = [
    pytest.mark.filterwarnings("ignore:'HTTP_422_UNPROCESSABLE_ENTITY' is deprecated"),
    pytest.mark.usefixtures("one_torch_thread"),
]


@pytest.fixture(scope="module")
def engines(tiny, tiny_path):
    # Two engines, as for "before and after fine-tuning"; in tiny mode both hold the tiny checkpoint.
    return TransformersEngine(*tiny, model_path=tiny_path), TransformersEngine(*tiny, model_path=tiny_path)


@pytest.fixture(scope="module")
def app(engines):
    demo = build_demo(*engines, settings=GenerationSettings(max_new_tokens=TOKENS))
    url = launch(demo, max_file_size="1mb")
    yield demo, url
    demo.close()


@pytest.fixture
def client(app):
    from gradio_client import Client

    return Client(app[1], verbose=False)


def _text(message):
    return "".join(part.get("text", "") for part in message["content"])


def _files(history):
    return [part["file"] for message in history for part in message["content"] if part.get("type") == "file"]


def _expected(engine, question, image=None, session=None):
    return engine.chat(
        question, image, session=session, settings=GenerationSettings(max_new_tokens=TOKENS)
    ).response.text


def test_gallery_groups_every_dish_by_cuisine():
    groups = gallery_groups()
    assert set(groups) == {info.get("cuisine") or "Other" for info in dishes().values()}
    assert sum(len(items) for items in groups.values()) == len(dishes())
    for items in groups.values():
        for path, caption in items:
            assert os.path.isfile(path) and caption


def test_binds_loopback_only_without_a_share_link(app):
    demo, url = app
    port = int(url.rstrip("/").rsplit(":", 1)[1])
    listening = {
        c.laddr.ip
        for c in psutil.net_connections("inet")
        if c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN
    }
    assert url.startswith("http://127.0.0.1:") and listening == {"127.0.0.1"}
    assert demo.share_url is None
    assert demo._queue.default_concurrency_limit == 4  # several users are answered, not refused


def test_upload_then_follow_up_then_clear(client, engines):
    from gradio_client import handle_file

    engine = engines[0]
    history, box = client.predict(
        message={"text": "图中的菜是什么？", "files": [handle_file(DUMPLINGS)]}, api_name="/send"
    )
    assert [m["role"] for m in history] == ["user", "user", "assistant"]
    assert _files(history)[0].endswith(".webp") and _text(history[1]) == "图中的菜是什么？"
    session = engine.chat("图中的菜是什么？", DUMPLINGS, settings=GenerationSettings(max_new_tokens=TOKENS))
    assert _text(history[2]) == session.response.text  # the app answers what the engine answers
    assert box == {"text": "", "files": []}  # the box is emptied for the next question

    history, _ = client.predict(message={"text": "它是哪里的菜？", "files": []}, api_name="/send")
    assert len(history) == 5 and _text(history[4]) == _expected(engine, "它是哪里的菜？", session=session)

    history, box = client.predict(api_name="/clear")
    assert history == [] and box == {"text": "", "files": []}
    history, _ = client.predict(message={"text": "它是哪里的菜？", "files": []}, api_name="/send")
    # a fresh conversation: no image, no history
    assert len(history) == 2 and _text(history[1]) == _expected(engine, "它是哪里的菜？")


def test_an_image_alone_asks_the_default_question(client, engines):
    from gradio_client import handle_file

    history, _ = client.predict(message={"text": "", "files": [handle_file(NOODLES)]}, api_name="/send")
    assert _text(history[1]) == DEFAULT_QUESTION
    assert _text(history[2]) == _expected(engines[0], DEFAULT_QUESTION, NOODLES)


def test_a_bad_image_becomes_a_message_in_the_chat(client, tmp_path):
    from gradio_client import handle_file

    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 half a download")
    history, _ = client.predict(message={"text": "图中的菜是什么？", "files": [handle_file(broken)]}, api_name="/send")
    reply = _text(history[-1])
    assert history[-1]["role"] == "assistant" and reply.startswith("⚠️ I could not read that image")
    assert "broken.jpg" in reply and "/tmp" not in reply.split("broken.jpg")[0]
    history, _ = client.predict(message={"text": "hello", "files": []}, api_name="/send")
    assert history[-1]["role"] == "assistant" and not _text(history[-1]).startswith("⚠️")  # the chat goes on


def test_an_oversized_upload_is_refused(client, app, tmp_path):
    from gradio_client import handle_file

    big = tmp_path / "huge_photo.jpg"
    big.write_bytes(b"\xff\xd8" + os.urandom(2 * 1024 * 1024))
    with pytest.raises(ValueError, match="maximum file size"):  # the client reads the limit from the app
        client.predict(message={"text": "?", "files": [handle_file(big)]}, api_name="/send")
    with open(big, "rb") as handle:  # and the server refuses the upload itself
        response = httpx.post(
            app[1] + "gradio_api/upload", files={"files": ("huge_photo.jpg", handle, "image/jpeg")}, timeout=30
        )
    assert response.status_code == 413, response.text


def test_side_by_side_asks_both_engines(client, engines):
    from gradio_client import handle_file

    left, right = client.predict(
        message={"text": "图中的菜是什么？", "files": [handle_file(DUMPLINGS)]}, api_name="/compare"
    )
    expected = [_expected(engine, "图中的菜是什么？", DUMPLINGS) for engine in engines]
    assert [_text(left[-1]), _text(right[-1])] == expected
    assert _files(left) and _files(right)


def test_several_users_at_once_keep_their_own_conversations(app, engines):
    from gradio_client import Client, handle_file

    results = {}

    def user(name, image, question):
        own = Client(app[1], verbose=False)
        own.predict(message={"text": question, "files": [handle_file(image)]}, api_name="/send")
        results[name] = own.predict(message={"text": "再说一遍", "files": []}, api_name="/send")[0]

    threads = [
        threading.Thread(target=user, args=("a", DUMPLINGS, "图中的菜是什么？")),
        threading.Thread(target=user, args=("b", NOODLES, "What dish is this?")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert set(results) == {"a", "b"}
    for name, image, question in (("a", DUMPLINGS, "图中的菜是什么？"), ("b", NOODLES, "What dish is this?")):
        history = results[name]
        assert len(history) == 5 and _text(history[1]) == question
        session = engines[0].chat(question, image, settings=GenerationSettings(max_new_tokens=TOKENS))
        assert _text(history[4]) == _expected(engines[0], "再说一遍", session=session)


@pytest.mark.timeout(300)
def test_the_app_runs_with_one_command(tmp_path):
    port = free_port()
    command = [sys.executable, "-m", "course_lib.serving.gradio_app", "--port", str(port)]
    env = dict(os.environ, COURSE_MODE="tiny")
    with ServerProcess(
        command, port, ready_path="/", log_path=tmp_path / "app.log", env=env, startup_timeout=240
    ) as server:
        with urllib.request.urlopen(server.base_url + "/config", timeout=10) as response:
            assert b"Food chat with InternVL2" in response.read()
    assert "Open http://127.0.0.1:%d/" % port in (tmp_path / "app.log").read_text()


def test_the_api_lists_only_the_three_endpoints_and_empty_questions_get_no_answer(client):
    endpoints = sorted(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert endpoints == ["/clear", "/compare", "/send"]
    left, right = client.predict(message={"text": "", "files": []}, api_name="/compare")
    assert left == [] and right == []
