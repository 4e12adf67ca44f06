"""DeepSpeed checkpoint folders. Under `xtuner train --deepspeed deepspeed_zero2` each iter_N.pth is a folder of
DeepSpeed's files (mmengine/_strategy/deepspeed.py, save_checkpoint). A real ZeRO-2 run of the tiny model on the CPU
(DeepSpeed's CPU accelerator in the recipe's gloo group of one) is interrupted, resumed from its folder and converted;
folders whose save was cut short are refused by name."""

import importlib.util
import json
import os
import re
import shutil
from pathlib import Path

import pytest

from course_lib.finetune import runner
from course_lib.finetune.convert import convert_checkpoint
from course_lib.finetune.runner import (
    PROGRESS,
    IncompleteCheckpoint,
    TrainingFailed,
    checkpoint_table,
    loss_history,
    new_run,
    train,
    training_checkpoint_problem,
)

if importlib.util.find_spec("deepspeed") is None:
    pytest.skip("deepspeed is not installed: requirements/course.in lists it (make env)", allow_module_level=True)

MODEL_STATES, OPTIMIZER_STATES = "mp_rank_00_model_states.pt", "zero_pp_rank_0_mp_rank_00_optim_states.pt"
QUESTION = "这是什么？"
RECORD = {
    "image": "1f95f.webp",
    "conversations": [{"from": "human", "value": f"<image>\n{QUESTION}"}, {"from": "gpt", "value": "饺子"}],
}


def _load(path: Path) -> dict:
    import torch

    return torch.load(path, map_location="cpu", mmap=True, weights_only=False)


@pytest.fixture(scope="module")
def deepspeed_run(tiny_path, tmp_path_factory):
    """The run, its final folder, and what it looked like when it was interrupted after iteration 16."""
    if shutil.which(os.environ.get("CXX", "c++")) is None:
        pytest.skip(
            "DeepSpeed's CPU accelerator compiles its shared-memory communication op when it starts "
            "(deepspeed/comm/torch.py, build_shm_op), and this machine has no C++ compiler ($CXX or c++)"
        )
    from conftest import FOOD_IMAGES

    root = tmp_path_factory.mktemp("deepspeed")
    data = root / "train.json"
    data.write_text(json.dumps([RECORD] * 56, ensure_ascii=False))  # the fewest the tiny warm-up allows, nearly
    run = new_run("food", "tiny", tiny_path, data, FOOD_IMAGES, root / "runs")
    with pytest.raises(KeyboardInterrupt, match="resumes from iter_16.pth"):
        train(run, progress=False, deepspeed="deepspeed_zero2", stop_after_iters=16)
    latest = run.latest_checkpoint()
    interrupted = {"info": run.info(), "latest": latest, "files": sorted(p.name for p in latest.iterdir())}
    final = train(run, progress=False)  # as lesson 10 resumes: train(run) again, DeepSpeed as run.json recorded
    return run, final, interrupted


def test_a_deepspeed_run_saves_folders_and_is_judged_by_them(deepspeed_run, tiny_path):
    run, final, interrupted = deepspeed_run
    assert interrupted["info"]["status"] == "interrupted" and interrupted["info"]["deepspeed"] == "deepspeed_zero2"
    assert interrupted["latest"] == run.work_dir / "iter_16.pth"  # a folder, as DeepSpeed writes it
    assert interrupted["files"] == [MODEL_STATES, OPTIMIZER_STATES]
    assert not (run.work_dir / "latest").exists()  # mmengine saves with save_latest=False: no DeepSpeed marker

    info = run.info()
    assert (
        final == run.work_dir / f"iter_{info['total_iters']}.pth" == run.final_checkpoint() == run.latest_checkpoint()
    )
    assert final.is_dir() and training_checkpoint_problem(final) is None
    assert info["status"] == "finished" and info["resumed_from"] == str(interrupted["latest"]) and run.finished
    assert train(run, progress=False) == final  # a finished run is not trained again
    # The CPU recipe's copy of XTuner's ZeRO-2 config: float32, as Float32Hook trains (XTuner's "auto" would fail).
    used = json.loads((run.config.parent / "deepspeed_zero2-cpu.json").read_text())
    assert used["zero_optimization"]["stage"] == 2 and not used["fp16"]["enabled"] and not used["bf16"]["enabled"]

    # The candidates to convert: the tiny config keeps the last two, each with its logged loss.
    losses = {step: loss for step, loss, _ in loss_history(run)}
    assert checkpoint_table(run) == [(32, "iter_32.pth", losses[32]), (42, "iter_42.pth", losses[42])]

    # mlp1 trains in float32 under DeepSpeed too (the model states hold what the engine trained).
    import torch
    from safetensors.torch import load_file

    trained = {k: v for k, v in _load(final / MODEL_STATES)["module"].items() if ".mlp1." in k}
    start = {k: v for f in tiny_path.glob("*.safetensors") for k, v in load_file(f).items() if k.startswith("mlp1.")}
    assert {k.split("model.", 1)[1] for k in trained} == set(start)
    assert all(v.dtype == torch.float32 for v in trained.values())
    assert max(float((v - start[k.split("model.", 1)[1]].float()).abs().max()) for k, v in trained.items()) > 1e-4


def test_the_resumed_part_goes_on_from_the_folder(deepspeed_run):
    """mmengine resumed from the folder: the resumed process logs iteration 17 with the same learning rate and loss
    as the interrupted one did (weights, schedule and data position restored), and Adam's step count goes on."""
    run, final, interrupted = deepspeed_run
    first, second = run.log_file.read_text(encoding="utf-8").split("===== ")[1:]
    assert "resuming from iter_16.pth" in second.splitlines()[0]
    assert f"Resume checkpoint from {interrupted['latest']}" in second  # DeepSpeedStrategy.resume
    before = {int(m.group(1)): m.group(0) for m in PROGRESS.finditer(first)}
    after = {int(m.group(1)): m.group(0) for m in PROGRESS.finditer(second)}
    assert min(after) == 17 and 17 in before and max(after) == 42

    def lr_and_loss(line):
        return re.search(r"lr: (\S+)", line).group(1), re.search(r"loss: (\S+)", line).group(1)

    assert lr_and_loss(after[17]) == lr_and_loss(before[17])
    adam = _load(final / OPTIMIZER_STATES)["optimizer_state_dict"]["base_optimizer_state"]["state"][0]
    assert int(adam["step"]) == 42  # 26 had the optimizer started afresh at the resume


def test_a_folder_whose_save_was_cut_short_is_refused(deepspeed_run, tmp_path):
    """DeepSpeed writes the model states, then each rank's optimizer states, with torch.save straight into the
    folder: a kill during the save leaves one of these (made here from a copy of the final folder)."""
    run, final, _ = deepspeed_run

    def cut_short(path):
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])

    cases = {
        "iter_97.pth": (lambda folder: (folder / OPTIMIZER_STATES).unlink(), f"{OPTIMIZER_STATES} missing"),
        "iter_98.pth": (lambda folder: cut_short(folder / OPTIMIZER_STATES), f"{OPTIMIZER_STATES} cut short"),
        "iter_99.pth": (lambda folder: cut_short(folder / MODEL_STATES), f"{MODEL_STATES} was cut short"),
        "iter_100.pth": (lambda folder: (folder / MODEL_STATES).unlink(), f"it has no {MODEL_STATES}"),
    }
    marker = run.work_dir / "last_checkpoint"
    saved_marker, saved_info = marker.read_text(), run.info()
    try:
        for name, (damage, _) in cases.items():
            shutil.copytree(final, run.work_dir / name)
            damage(run.work_dir / name)
        for name, (_, says) in cases.items():
            folder = run.work_dir / name
            assert str(folder) in training_checkpoint_problem(folder) and says in training_checkpoint_problem(folder)
            with pytest.raises(IncompleteCheckpoint, match=re.escape(str(folder))):
                convert_checkpoint(run, tmp_path / "converted", checkpoint=folder)
        assert not (tmp_path / "converted").exists()  # refused before XTuner was started
        assert [name for _, name, _ in checkpoint_table(run)] == ["iter_32.pth", "iter_42.pth"]

        # last_checkpoint names a folder damaged since: resuming would fail inside DeepSpeed, so the run says what
        # to do; and a run whose final folder was cut short has not finished.
        marker.write_text(str(run.work_dir / "iter_98.pth"))
        with pytest.raises(IncompleteCheckpoint, match=f"names iter_98.pth, but .*cut short.*write {final} into"):
            run.latest_checkpoint()
        run.update(total_iters=98)
        assert run.final_checkpoint() is None and not run.finished
    finally:
        marker.write_text(saved_marker)
        run.info_file.write_text(json.dumps(saved_info, indent=2, ensure_ascii=False) + "\n")
        for name in cases:
            shutil.rmtree(run.work_dir / name, ignore_errors=True)


def test_a_checkpoint_resumes_only_the_way_it_was_saved(deepspeed_run, tiny_path, tmp_path):
    """DeepSpeed loads only its own folders, mmengine's plain runner only files: train() says so before XTuner
    starts. (A folder resumes under the DeepSpeed config run.json recorded, as the run above did.)"""
    run, final, _ = deepspeed_run
    info = run.info()
    other = new_run("other", "tiny", tiny_path, Path(info["train_json"]), Path(info["image_folder"]), tmp_path)
    checkpoint = other.work_dir / "iter_16.pth"
    (other.work_dir / "last_checkpoint").write_text(str(checkpoint))
    shutil.copytree(final, checkpoint)
    with pytest.raises(TrainingFailed, match="iter_16.pth is a DeepSpeed checkpoint folder.*train.run, deepspeed="):
        train(other, progress=False)
    shutil.rmtree(checkpoint)
    checkpoint.write_bytes(b"")  # a file: what mmengine saves without DeepSpeed
    with pytest.raises(TrainingFailed, match="iter_16.pth was saved without DeepSpeed"):
        train(other, progress=False, deepspeed="deepspeed_zero2")
    assert other.info()["status"] == "created" and not other.log_file.exists()  # XTuner was never started


def test_a_folder_converts_to_a_model_that_answers_with_the_trained_weights(deepspeed_run, tmp_path, tiny_path):
    import torch
    from conftest import FOOD_IMAGES
    from safetensors.torch import load_file

    run, final, _ = deepspeed_run
    picture = FOOD_IMAGES / RECORD["image"]
    out = convert_checkpoint(run, tmp_path / "food-deepspeed", check_image=picture, log=lambda *a: None)
    conversion = json.loads((out / "conversion.json").read_text(encoding="utf-8"))
    assert conversion["checkpoint"] == str(final)

    trained = _load(final / MODEL_STATES)["module"]  # float32: what the engine trained and saved
    converted = {k: v for f in out.glob("*.safetensors") for k, v in load_file(f).items()}
    base = {k: v for f in tiny_path.glob("*.safetensors") for k, v in load_file(f).items()}
    # mlp1 (trained in full): exactly the trained weights in bfloat16. XTuner's own float16 read of the folder
    # rounds twice and would have moved some of them one bfloat16 step (convert.FOLDER_CONVERSION).
    mlp1 = {k.split("model.", 1)[1]: v for k, v in trained.items() if ".mlp1." in k}
    assert all(torch.equal(converted[k], v.bfloat16()) for k, v in mlp1.items())
    assert sum(int((v.half().bfloat16() != v.bfloat16()).sum()) for v in mlp1.values()) > 0
    # The language model: the base weight plus LoRA's B @ A x (alpha / r = 2), merged in bfloat16 as peft does
    # on a CPU (delta in float32, rounded to bfloat16, added).
    merged = 0
    for key, a in trained.items():
        if ".lora_A.default." not in key:
            continue
        b = trained[key.replace("lora_A", "lora_B")]
        name = key.replace("model.language_model.base_model.model.", "language_model.").replace(".lora_A.default", "")
        delta = ((b.bfloat16().float() @ a.bfloat16().float()) * 2).bfloat16()
        assert torch.equal(converted[name], base[name].bfloat16() + delta), name
        merged += 1
    assert merged == sum(".lora_A." in k for k in trained) > 0
    # It answers the trained question about the trained picture with the trained answer.
    from course_lib.asking import ask
    from course_lib.models import load_internvl

    model, tokenizer = load_internvl(out, "cpu", torch.float32)
    assert ask(model, tokenizer, picture, QUESTION, dict(max_new_tokens=8, do_sample=False)) == "饺子"


def test_one_gpu_deepspeed_is_started_as_torchrun_would(deepspeed_run, tiny_path, tmp_path):
    """Without torchrun's variables DeepSpeed asks MPI for them (deepspeed/comm/comm.py, init_distributed ->
    mpi_discovery: "No module named 'mpi4py'"), so a one-GPU DeepSpeed run of the GPU recipe gets them, as a one-GPU
    run without DeepSpeed does (test_finetune_plumbing.py proves the group they make). The CPU recipe keeps its gloo
    group (the run above) and its float32 copy of the DeepSpeed config; a GPU resolves XTuner's "auto" itself."""
    run, _, _ = deepspeed_run
    info = run.info()
    real = new_run("food", "real", tiny_path, Path(info["train_json"]), Path(info["image_folder"]), tmp_path)
    command, env = runner.xtuner_command(real, "deepspeed_zero2"), runner.launch_env(real, "deepspeed_zero2")
    assert command[-4:] == ["--deepspeed", "deepspeed_zero2", "--launcher", "pytorch"]
    assert env == runner.launch_env(real) and env["WORLD_SIZE"] == "1" and env["MASTER_PORT"] == "0"
    # the kit decides the precision, not XTuner's "auto" (bf16 on a V100: torch counts its emulation); a run made
    # without a GPU here assumes the committed recipe's bf16 GPU
    assert real.info()["precision"] == "bfloat16"
    used = json.loads(Path(runner.deepspeed_argument(real, "deepspeed_zero2")).read_text())
    assert used["bf16"]["enabled"] is True and used["fp16"]["enabled"] is False
    assert "--launcher" not in runner.xtuner_command(run, "deepspeed_zero2")
    assert runner.launch_env(run, "deepspeed_zero2") == {"NPROC_PER_NODE": "1"}
