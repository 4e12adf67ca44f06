"""Chinese for the kit's messages: what the lessons' own code cells print through tr() (see course_lib/zh/__init__.py)."""

ZH = {
    "Real mode: InternVL2-2B was trained by its authors; the tiny mode of this course shows the untrained model.": (
        "real 模式：InternVL2-2B 已经由它的作者训练好了；本课程的 tiny 模式才会展示没训练过的模型。"
    ),
    "Not run here: the backend is {backend}. {why}.": "这里没有运行：后端是 {backend}。{why}。",
    "No api_server on this machine: {why}. The requests below are answered by the local engine instead.": (
        "这台机器上没有 api_server：{why}。下面的请求改由本地引擎来回答。"
    ),
    "Reusing {folder}: finished with this plan and config ({iters} iterations, resumed from {resumed}). For a fresh run: run = start_finetune(plan)": (
        "复用 {folder}：它已经用同样的计划和配置训练完成（{iters} 个迭代，续训自 {resumed}）。"
        "想重新训练：run = start_finetune(plan)"
    ),
    "nothing": "无",
    "Converted already: {folder} (convert_checkpoint never overwrites a folder)": (
        "已经转换过了：{folder}（convert_checkpoint 从不覆盖已有的目录）"
    ),
    "Tiny mode trains on the kit's food set. In real mode, with the release in COURSE_DATA_PATH:": (
        "tiny 模式在课程套件的美食数据集上训练。real 模式下，把数据集放在 COURSE_DATA_PATH 里，然后："
    ),
    "the app, on the grid's {n} pictures: A (before) {a} right, B (after) {b} right": (
        "应用在网格的 {n} 张图片上：A（微调前）答对 {a} 张，B（微调后）答对 {b} 张"
    ),
}
