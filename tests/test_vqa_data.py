"""Bad training and evaluation data is caught before training, with the file, the record and the field named."""

import json

import pytest
from PIL import Image

from course_lib.vqa_data import DataError, load_eval_records, validate_xtuner_records


def _good(image="dish.jpg", rid=None):
    record = {
        "image": image,
        "conversations": [
            {"from": "human", "value": "<image>\n图中的菜是什么？"},
            {"from": "gpt", "value": "图中的菜是饺子。"},
        ],
    }
    if rid:
        record["id"] = rid
    return record


@pytest.fixture
def folder(tmp_path):
    Image.new("RGB", (32, 32), "orange").save(tmp_path / "dish.jpg")
    return tmp_path


def _write(folder, records, name="data.json"):
    path = folder / name
    path.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    return path


def _error(path, folder, **kwargs) -> str:
    with pytest.raises(DataError) as caught:
        validate_xtuner_records(path, folder, **kwargs)
    message = str(caught.value)
    assert str(path) in message
    return message


def test_good_records_come_back(folder):
    records = [_good(), {"conversations": [{"from": "human", "value": "你好"}, {"from": "gpt", "value": "你好！"}]}]
    assert validate_xtuner_records(_write(folder, records), folder) == records


def test_missing_image(folder):
    message = _error(_write(folder, [_good(), _good("gone.jpg", rid="r-1")]), folder)
    assert "record 1 (id 'r-1')" in message and "field 'image'" in message and "gone.jpg" in message
    assert "does not exist" in message


def test_missing_fields(folder):
    records = [
        {"image": "dish.jpg"},
        {"image": "dish.jpg", "conversations": [{"value": "<image>\nhi"}, {"from": "gpt"}]},
    ]
    message = _error(_write(folder, records), folder)
    assert "record 0: field 'conversations' is missing" in message
    assert "record 1: field 'conversations[0].from' is missing" in message
    assert "record 1: field 'conversations[1].value' is missing" in message


def test_wrong_role(folder):
    record = _good()
    record["conversations"][1]["from"] = "assistant"
    message = _error(_write(folder, [record]), folder)
    assert "record 0: field 'conversations[1].from' is 'assistant'" in message and "gpt" in message


@pytest.mark.parametrize("human, count", [("图中的菜是什么？", 0), ("<image>\n<image>\n图中的菜是什么？", 2)])
def test_wrong_image_tag_count(folder, human, count):
    record = _good(rid="x")
    record["conversations"][0]["value"] = human
    message = _error(_write(folder, [record]), folder)
    assert f"record 0 (id 'x'): field 'conversations' has {count} <image> tags" in message and "exactly one" in message


def test_image_tag_without_image(folder):
    record = _good()
    del record["image"]
    message = _error(_write(folder, [record]), folder)
    assert "record 0: field 'conversations' has 1 <image> tag(s) but the record has no 'image'" in message


def test_unreadable_json_names_line_and_column(folder):
    path = folder / "broken.json"
    path.write_text('[\n  {"image": "dish.jpg",}\n]', encoding="utf-8")
    message = _error(path, folder)
    assert "line 2, column 24" in message and "trailing comma" in message


def test_top_level_must_be_a_list(folder):
    message = _error(_write(folder, {"data": [_good()]}), folder)
    assert "top level is a dict" in message and "'data'" in message


def test_image_that_does_not_decode(folder):
    (folder / "half.jpg").write_bytes((folder / "dish.jpg").read_bytes()[:40])
    (folder / "text.jpg").write_text("not an image")
    path = _write(folder, [_good("half.jpg"), _good("text.jpg")])
    message = _error(path, folder)
    assert "record 0: field 'image'" in message and "half.jpg" in message
    assert "record 1: field 'image'" in message and "text.jpg" in message and "not a readable image" in message
    assert validate_xtuner_records(path, folder, check_images=False)  # existence only


def test_all_problems_are_collected_and_counted(folder):
    records = [_good("gone.jpg")] * 12
    with pytest.raises(DataError) as caught:
        validate_xtuner_records(_write(folder, records), folder)
    assert "12 problem(s) in 12 records" in str(caught.value) and "... and 4 more" in str(caught.value)
    assert len(caught.value.problems) == 12


def test_missing_file_and_folder(folder):
    with pytest.raises(DataError, match="does not exist"):
        validate_xtuner_records(folder / "nope.json", folder)
    with pytest.raises(DataError, match="image folder .* does not exist"):
        validate_xtuner_records(_write(folder, [_good()]), folder / "nope")


def _eval(**changes):
    record = {
        "id": "test-new-dumplings-000-mc-zh",
        "image": "dish.jpg",
        "dish": "dumplings",
        "group": "new",
        "split": "test",
        "kind": "mc",
        "lang": "zh",
        "question": "图中的菜是什么？\nA. 饺子\nB. 月饼\nC. 奶茶\nD. 火锅",
        "choices": ["饺子", "月饼", "奶茶", "火锅"],
        "answer": "A",
        "answer_text": "饺子",
    }
    record.update(changes)
    return {k: v for k, v in record.items() if v is not None}


def test_eval_records(folder):
    good = [_eval(), _eval(id="open-1", kind="open", choices=None, answer="dumplings")]
    assert load_eval_records(_write(folder, good, "eval.json"), image_folder=folder) == good
    bad = [
        _eval(answer="E"),
        _eval(id="b", answer_text="月饼"),
        _eval(id="c", choices=["饺子"]),
        _eval(id="d", lang="fr"),
        _eval(id="e", kind=None),
        _eval(id="f", question="<image>\nhi", kind="open", choices=None),
        _eval(),
        _eval(id="g", image="gone.jpg"),
    ]
    path = _write(folder, bad, "eval.json")
    with pytest.raises(DataError) as caught:
        load_eval_records(path, image_folder=folder)
    problems = caught.value.problems
    assert str(path) in str(caught.value)
    expected = [
        "record 0 (id 'test-new-dumplings-000-mc-zh'): field 'answer' is 'E'",
        "record 1 (id 'b'): field 'answer_text'",
        "record 2 (id 'c'): field 'choices'",
        "record 3 (id 'd'): field 'lang'",
        "record 4 (id 'e'): field 'kind' is missing",
        "record 5 (id 'f'): field 'question' contains <image>",
        "record 6 (id 'test-new-dumplings-000-mc-zh'): field 'id' repeats record 0",
        "record 7 (id 'g'): field 'image'",
    ]
    assert len(problems) == len(expected)
    for problem, start in zip(problems, expected):
        assert problem.startswith(start), problem


def test_a_gpt_turn_before_the_human_turn_is_refused(folder):
    """XTuner drops a leading gpt turn and the sample trains on nothing (a real run had loss nan throughout)."""
    record = {
        "image": "dish.jpg",
        "conversations": [{"from": "gpt", "value": "饺子"}, {"from": "human", "value": "<image>\n这是什么？"}],
    }
    message = _error(_write(folder, [_good(), record]), folder)
    assert "record 1: field 'conversations[0].from' is 'gpt', but turns must alternate human, gpt" in message


def test_a_lone_surrogate_is_refused_with_its_field(folder):
    path = folder / "data.json"
    path.write_text(
        '[{"image": "dish.jpg", "conversations": [{"from": "human", "value": "<image>\\n\\ud800?"}, '
        '{"from": "gpt", "value": "ok"}]}]',
        encoding="utf-8",
    )
    message = _error(path, folder)
    assert "record 0: field 'conversations[0].value' holds a lone surrogate" in message


def test_a_folder_where_a_picture_or_the_records_file_should_be_is_named_as_a_folder(folder):
    (folder / "photos").mkdir()
    message = _error(_write(folder, [_good("photos")]), folder)
    assert (
        f"record 0: field 'image' names {folder / 'photos'}, which is a folder, not a picture file; check "
        f"image_folder ({folder}) and the path, or drop the record"
    ) in message
    with pytest.raises(DataError) as caught:
        load_eval_records(_write(folder, [_eval(image="photos")], "eval.json"), image_folder=folder)
    assert caught.value.problems == [
        f"record 0 (id 'test-new-dumplings-000-mc-zh'): field 'image' names "
        f"{folder / 'photos'}, which is a folder, not a picture file; check the image folder"
    ]
    with pytest.raises(DataError) as caught:
        validate_xtuner_records(folder / "photos", folder)
    assert str(caught.value) == f"{folder / 'photos'} is a folder, not a JSON file; pass the records file inside it"


@pytest.mark.parametrize("name", ["data.json", "data.jsonl"])
def test_a_byte_order_mark_is_named_not_blamed_on_a_comma(folder, name):
    """XTuner's json.load refuses a UTF-8 BOM, so the kit does too, and says that is the problem."""
    path = folder / name
    text = json.dumps(_good() if name.endswith("l") else [_good()], ensure_ascii=False)
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    assert _error(path, folder) == (
        f"{path} starts with a UTF-8 byte-order mark (BOM; Windows Notepad and Excel add "
        "one), which XTuner's json.load refuses; save it as UTF-8 without BOM"
    )
    with pytest.raises(json.JSONDecodeError, match="BOM"):  # what XTuner's loader would do with it
        json.load(open(path, encoding="utf-8"))
