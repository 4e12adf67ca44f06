"""Chinese for the kit's messages: the Gradio food demo (see course_lib/zh/__init__.py)."""

ZH = {
    "图中的菜是什么？What dish is this?": "图中的菜是什么？",
    "American": "美式",
    "Chinese": "中餐",
    "Chinese-American": "美式中餐",
    "French": "法餐",
    "Italian": "意大利菜",
    "Japanese": "日料",
    "Other": "其他",
    "I could not read that image: {message}": "这张图片读不了：{message}",
    "(empty answer)": "（回答为空）",
    "InternVL2 food chat": "InternVL2 美食对话",
    "Food chat with InternVL2": "和 InternVL2 聊美食",
    "Model **{model}** on the **{backend}** backend. Pick an example or upload a photo, ask, follow up; *Clear context* starts over.": (
        "模型 **{model}**，推理后端 **{backend}**。选一个示例或者上传一张照片，提问，再接着追问；"
        "点 *清空上下文* 重新开始。"
    ),
    "Why this backend?": "为什么用这个后端？",
    "chosen by the caller": "由调用方指定",
    "Chat": "对话",
    "Ask about a dish; attach a food photo or pick an example": "问问这道菜；附上一张美食照片，或者选一个示例",
    "Send": "发送",
    "Clear context": "清空上下文",
    "Examples by cuisine": "按菜系分的示例",
    "Generation settings": "生成参数",
    "max tiles per image (max_dynamic_patch)": "每张图最多切片数（max_dynamic_patch）",
    "do_sample (off = greedy decoding)": "do_sample（关闭 = 贪心解码）",
    "top_k (0 = all)": "top_k（0 = 不限）",
    "Side by side": "并排对比",
    "The same question and photo to two checkpoints (e.g. before and after fine-tuning). Each answer is a fresh single-turn conversation.": (
        "把同一个问题和同一张照片发给两个 checkpoint（比如微调前和微调后）。每个回答都是一轮全新的单轮对话。"
    ),
    "A question and a food photo for both models": "给两个模型的同一个问题和美食照片",
    "Ask both": "两个一起问",
    "Open http://{host}:{port}/  (Ctrl+C to stop)": "打开 http://{host}:{port}/ （按 Ctrl+C 停止）",
}
