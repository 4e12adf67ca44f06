"""Chinese for the kit's messages: begin's header, setup.explain(), the environment check, lesson titles, progress
bars (see course_lib/zh/__init__.py)."""

ZH = {
    # begin() and setup.explain()
    "Lesson {lesson} · ": "第 {lesson} 课 · ",
    "{mode} mode on {device} · model: {model} · details: setup.explain()": (
        "{mode} 模式，运行在 {device} 上 · 模型：{model} · 详情：setup.explain()"
    ),
    "the course model (tiny InternVL2)": "课程模型（tiny InternVL2）",
    "plots: no CJK font installed, so Chinese labels show as boxes (install fonts-noto-cjk; `make test` does, as root)": (
        "画图：没有安装中文字体，图里的中文会显示成方框（安装 fonts-noto-cjk；以 root 运行 `make test` 会自动安装）"
    ),
    "Mode:   {mode}": "模式：  {mode}",
    "Device: {device}": "设备：  {device}",
    "Model:  {model}": "模型：  {model}",
    "Data:   {data}": "数据：  {data}",
    "Config: {path}": "配置：  {path}",
    "Why:": "为什么这样选：",
    "tiny mode was asked for ({source}=tiny)": "指定了 tiny 模式（{source}=tiny）",
    "real mode was asked for ({source}=real)": "指定了 real 模式（{source}=real）",
    "real checkpoint on the CPU by request: expect minutes per answer; training is off": (
        "按要求在 CPU 上运行真实 checkpoint：每个回答要等几分钟，微调不可用"
    ),
    "found an InternVL2 checkpoint at {path} and a CUDA GPU": "在 {path} 找到了 InternVL2 checkpoint，也有 CUDA GPU",
    "no InternVL2 checkpoint is configured or in the shared folders (set COURSE_MODEL_PATH)": (
        "没有配置 InternVL2 checkpoint，共享目录里也没有（请设置 COURSE_MODEL_PATH）"
    ),
    "found a checkpoint at {path}, but real mode needs a CUDA GPU": "在 {path} 找到了 checkpoint，但 real 模式需要 CUDA GPU",
    "torch sees no CUDA GPU": "torch 没有检测到 CUDA GPU",
    "torch sees a CUDA GPU; using {device}": "torch 检测到 CUDA GPU，使用 {device}",
    "the tiny model runs on the CPU": "tiny 模型在 CPU 上运行",
    "no FoodieQA folder found (COURSE_DATA_PATH or real.data_path): the fine-tuning and evaluation lessons will stop and say so": (
        "没有找到 FoodieQA 数据目录（COURSE_DATA_PATH 或 real.data_path）：微调和评测两课会停下来并说明原因"
    ),
    "none (set COURSE_DATA_PATH)": "无（请设置 COURSE_DATA_PATH）",
    "{path} (the newest converted fine-tune)": "{path}（最新一次转换好的微调模型）",
    "not fine-tuned yet (lesson 10 fine-tunes it; lesson 11 does if it must)": (
        "还没有微调（第 10 课做微调；第 11 课需要时也会自己做）"
    ),
    # what is built, and where (builds, course_model)
    "the kit's food VQA set": "课程套件的美食 VQA 数据集",
    "the tiny InternVL2 checkpoint: InternVL2-2B's structure, seeded random weights": (
        "tiny InternVL2 checkpoint：InternVL2-2B 的结构，固定种子的随机权重"
    ),
    "the course model: the tiny InternVL2, pre-trained on the kit's food set": (
        "课程模型：在课程美食数据集上预训练过的 tiny InternVL2"
    ),
    "{path} ({title}, {state})": "{path}（{title}，{state}）",
    "built": "已构建",
    "built on first use": "第一次用到时构建",
    "{path} ({title}, shipped)": "{path}（{title}，随课程提供）",
    "; assets/course-model is of other sources": "；assets/course-model 来自另一版源代码",
    # progress bars
    "answering": "回答中",
    "question": "问题",
    # the environment check (lesson 00, python -m course_lib check)
    "course environment": "课程环境",
    "GPU": "GPU",
    "precision": "计算精度",
    "XTuner": "XTuner",
    "serving environment": "部署环境",
    "model": "模型",
    "data": "数据",
    "disk": "磁盘",
    "hub downloads": "从 Hub 下载",
    "Python {version} at {prefix}": "Python {version}，位于 {prefix}",
    " (not the kit's .venv)": "（不是课程套件的 .venv）",
    "if imports fail below, run `make env` and choose the 'Course kit (course env)' kernel": (
        "如果下面的 import 失败，请运行 `make env`，并选择 'Course kit (course env)' 内核"
    ),
    "torch is not installed": "没有安装 torch",
    "run `make env`": "运行 `make env`",
    "none seen by torch {version}: tiny mode (real mode and LMDeploy need one)": (
        "torch {version} 没有检测到 GPU：使用 tiny 模式（real 模式和 LMDeploy 都需要 GPU）"
    ),
    "not installed": "没有安装",
    "run `make env` (it installs xtuner 0.2.0 into .venv)": "运行 `make env`（它会把 xtuner 0.2.0 装进 .venv）",
    "; the xtuner command is missing": "；缺少 xtuner 命令",
    "; `python` on PATH is {python}, not this environment's": "；PATH 上的 `python` 是 {python}，不是这个环境的",
    "the kit puts its environment first on PATH when it runs `xtuner` (the CLI re-launches `python`)": (
        "课程套件运行 `xtuner` 时会把自己的环境放在 PATH 最前面（这个命令行会重新启动 `python`）"
    ),
    "`unset {variable}` to use .venv-serving, or set it to a Python that imports lmdeploy": (
        "`unset {variable}` 改用 .venv-serving，或者把它设成一个能 import lmdeploy 的 Python"
    ),
    "lmdeploy {version} in this kernel": "当前内核里有 lmdeploy {version}",
    "not built: the transformers engine stands in for LMDeploy (GPU machines: `make serving-env`)": (
        "还没有建：由 transformers 引擎代替 LMDeploy（有 GPU 的机器上运行 `make serving-env`）"
    ),
    "{python} cannot import lmdeploy": "{python} 无法 import lmdeploy",
    "set {variable} to a Python that imports lmdeploy, or unset it": "把 {variable} 设成一个能 import lmdeploy 的 Python，或者取消它",
    "re-run `make serving-env`": "重新运行 `make serving-env`",
    "lmdeploy {version} in {where}": "lmdeploy {version}，位于 {where}",
    "{model}: built on first use (about 16 CPU minutes)": "{model}：第一次用到时构建（CPU 上大约 16 分钟）",
    "`make course-model PUBLISH=1` rebuilds and ships it": "`make course-model PUBLISH=1` 会重新构建并发布它",
    "{path} is a {arch}, not an InternVL2 chat model": "{path} 是 {arch}，不是 InternVL2 对话模型",
    "set COURSE_MODEL_PATH to an InternVL2 folder": "把 COURSE_MODEL_PATH 设成一个 InternVL2 目录",
    "InternVL2 at {path}": "InternVL2，位于 {path}",
    "it is rendered from assets/ on first use in seconds": "第一次用到时由 assets/ 几秒钟生成",
    "no dataset folder configured": "没有配置数据集目录",
    "set COURSE_DATA_PATH to the FoodieQA folder": "把 COURSE_DATA_PATH 设成 FoodieQA 目录",
    "{path} does not exist": "{path} 不存在",
    "set COURSE_DATA_PATH to the folder holding sivqa_tidy.json and the images": (
        "把 COURSE_DATA_PATH 设成存放 sivqa_tidy.json 和图片的目录"
    ),
    "{free:.1f} GiB free at {path}": "{path} 还有 {free:.1f} GiB 可用",
    "keep at least {gib:.0f} GiB free (checkpoints, runs, the serving env)": (
        "至少留出 {gib:.0f} GiB 空间（checkpoint、训练结果、部署环境都要用）"
    ),
    "off (HF_HUB_OFFLINE=1)": "已关闭（HF_HUB_OFFLINE=1）",
    "allowed in this kernel; the kit itself never downloads weights or data": (
        "当前内核允许下载；课程套件自己从不下载权重或数据"
    ),
    "a CPU computes in float32 (bfloat16 and float16 are slow or missing there)": (
        "CPU 用 float32 计算（bfloat16 和 float16 在 CPU 上很慢或不支持）"
    ),
    "this GPU": "这块 GPU",
    "{gpu} computes in bfloat16 (compute capability 8.0 or higher)": "{gpu} 用 bfloat16 计算（计算能力 8.0 及以上）",
    "{gpu} has no bfloat16 arithmetic (compute capability below 8.0, e.g. V100, T4, RTX 20xx): float16 instead": (
        "{gpu} 不支持 bfloat16 运算（计算能力低于 8.0，比如 V100、T4、RTX 20 系列）：改用 float16"
    ),
    "Course configuration error: {error}": "课程配置错误：{error}",
    "Checks:": "检查项：",
    "Lessons:": "各课：",
    "{mode} mode on {device}": "{mode} 模式，{device}",
    " (without: {missing})": "（缺少：{missing}）",
    # the lessons' titles (course_lib.lessons)
    "Environment check": "环境检查",
    "Meet InternVL2: load it, look inside, ask about a dish": "认识 InternVL2：加载模型，看看内部结构，问一道菜",
    "Architectures and connectors: prefix, placeholders, <IMG_CONTEXT>, projectors, NExT-GPT": (
        "模型架构与连接器：前缀、占位符、<IMG_CONTEXT>、投影器、NExT-GPT"
    ),
    "BLIP-2's Q-Former: the three stage-1 attention masks": "BLIP-2 的 Q-Former：第一阶段的三种 attention mask",
    "Pixel shuffle: 1024 patches become 256 tokens": "像素重排（pixel shuffle）：1024 个 patch 变成 256 个 token",
    "Dynamic tiling: 448-px tiles, 35 grids, a thumbnail, the token budget": (
        "动态分辨率：448 像素的切片、35 种网格、缩略图和 token 预算"
    ),
    "Serving with LMDeploy: one engine API, batch, multi-turn, streaming, the same prompt": (
        "用 LMDeploy 部署：统一的引擎接口、批量推理、多轮对话、流式输出、一模一样的 prompt"
    ),
    "LMDeploy's api_server: OpenAI requests with images, KV-cache memory, TP, AWQ": (
        "LMDeploy 的 api_server：带图片的 OpenAI 请求、KV cache 显存、张量并行、AWQ 量化"
    ),
    "The Gradio food demo: chat, examples by cuisine, settings, side by side": (
        "Gradio 美食演示：对话、按菜系分的示例、生成参数、微调前后并排对比"
    ),
    "Food VQA data: the kit's dishes, FoodieQA and its licence, checking records": (
        "美食 VQA 数据：课程套件的菜品、FoodieQA 及其许可协议、检查数据记录"
    ),
    "LoRA fine-tuning with XTuner: the config, a run, resuming, converting": (
        "用 XTuner 做 LoRA 微调：配置文件、训练、断点续训、模型转换"
    ),
    "Before/after evaluation: accuracy with intervals, per dish, examples": (
        "微调前后评测：带置信区间的准确率、逐道菜分析、实例"
    ),
}
