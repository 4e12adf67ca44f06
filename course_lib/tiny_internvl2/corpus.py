"""Text the tiny tokenizer is trained on: written for this kit, in Chinese and English.

It covers what the course asks the tiny model about (dishes, cuisines, question and answer phrasing,
option letters, the chat template's system messages), so that dish names become a few tokens each.
Any other text still encodes: the tokenizer is byte-level, so no character is ever unknown.
"""

DISHES = [
    ("饺子", "dumplings"),
    ("月饼", "mooncake"),
    ("米饭", "steamed rice"),
    ("拉面", "ramen noodles"),
    ("寿司", "sushi"),
    ("炸虾", "fried shrimp"),
    ("便当", "bento box"),
    ("团子", "dango"),
    ("关东煮", "oden"),
    ("咖喱饭", "curry rice"),
    ("饭团", "rice ball"),
    ("仙贝", "rice cracker"),
    ("鱼板", "fish cake"),
    ("幸运饼干", "fortune cookie"),
    ("外卖盒", "takeout box"),
    ("烤红薯", "roasted sweet potato"),
    ("锅包肉", "guobaorou sweet and sour pork"),
    ("肠粉", "rice noodle rolls"),
    ("小笼包", "soup dumplings"),
    ("麻婆豆腐", "mapo tofu"),
    ("北京烤鸭", "Peking duck"),
    ("宫保鸡丁", "kung pao chicken"),
    ("红烧肉", "braised pork belly"),
    ("叉烧包", "barbecue pork bun"),
    ("酸汤鱼", "sour soup fish"),
    ("羊肉串", "lamb skewers"),
    ("大盘鸡", "big plate chicken"),
    ("兰州拉面", "Lanzhou beef noodles"),
    ("臭豆腐", "stinky tofu"),
    ("煎饼果子", "jianbing pancake"),
    ("粽子", "zongzi"),
    ("汤圆", "tangyuan"),
    ("火锅", "hot pot"),
    ("凉皮", "liangpi cold noodles"),
    ("肉夹馍", "roujiamo"),
    ("油条", "youtiao fried dough"),
    ("豆浆", "soy milk"),
    ("馄饨", "wontons"),
    ("烧卖", "shumai"),
    ("包子", "steamed bun"),
    ("馒头", "mantou"),
    ("炒饭", "fried rice"),
    ("炒面", "fried noodles"),
    ("糖醋排骨", "sweet and sour ribs"),
    ("鱼香肉丝", "yuxiang shredded pork"),
    ("回锅肉", "twice-cooked pork"),
    ("水煮鱼", "boiled fish in chili oil"),
    ("西红柿炒鸡蛋", "tomato and egg stir-fry"),
    ("蛋挞", "egg tart"),
    ("虾饺", "shrimp dumplings"),
    ("螺蛳粉", "river snail rice noodles"),
    ("热干面", "hot dry noodles"),
    ("过桥米线", "crossing-the-bridge noodles"),
    ("东坡肉", "Dongpo pork"),
    ("佛跳墙", "Buddha jumps over the wall"),
    ("白切鸡", "white cut chicken"),
    ("狮子头", "lion's head meatballs"),
    ("地三鲜", "di san xian"),
    ("炸鸡", "fried chicken"),
    # the dishes of the kit's food VQA set (assets/images/*/dishes.json)
    ("汉堡", "hamburger"),
    ("薯条", "french fries"),
    ("甜甜圈", "doughnut"),
    ("热狗", "hot dog"),
    ("意大利面", "spaghetti"),
    ("羊角面包", "croissant"),
    ("奶茶", "bubble tea"),
]

CUISINES = [
    ("东北菜", "Northeastern cuisine"),
    ("粤菜", "Cantonese cuisine"),
    ("川菜", "Sichuan cuisine"),
    ("西北菜", "Northwestern cuisine"),
    ("新疆菜", "Xinjiang cuisine"),
    ("贵州菜", "Guizhou cuisine"),
    ("湘菜", "Hunan cuisine"),
    ("鲁菜", "Shandong cuisine"),
    ("苏菜", "Jiangsu cuisine"),
    ("浙菜", "Zhejiang cuisine"),
    ("日本料理", "Japanese cuisine"),
    ("素菜", "vegetarian dishes"),
]

SYSTEM_MESSAGES = [
    "你是由上海人工智能实验室联合商汤科技开发的书生多模态大模型，英文名叫InternVL, 是一个有用无害的人工智能助手。",
    "You are an AI assistant whose name is InternLM (书生·浦语).",
]

QUESTIONS_ZH = [
    "图中的菜是什么？",
    "这是什么食物？",
    "请描述这张图片。",
    "图片里有什么？",
    "这道菜属于哪个菜系？",
    "去哪个地方游玩时应当品尝当地的特色美食图片中的食物？",
    "请从下列选项中选出图中的菜。",
    "只回答选项字母。",
    "这道菜的主要食材是什么？",
    "这道菜是甜的还是咸的？",
    "图中有几个{dish}？",
    "请回答选项字母和菜名。",
    "请回答选项字母和选项内容。",
]
QUESTIONS_EN = [
    "What dish is shown in the image?",
    "What food is this?",
    "Describe this image.",
    "What is in the picture?",
    "Which cuisine does this dish belong to?",
    "Choose the dish in the image from the options below.",
    "Answer with the option letter only.",
    "What is the main ingredient of this dish?",
    "Is this dish sweet or savory?",
    "Which dish is shown in the image?",
    "Answer with the option letter and the dish name.",
    "Answer with the option letter and the option text.",
]
ANSWERS_ZH = [
    "图中的菜是{dish}。",
    "这是{dish}。",
    "答案是{letter}，图中的菜是{dish}",
    "{letter}. {dish}",
    "我不确定。",
]
ANSWERS_EN = [
    "The dish is {dish}.",
    "This is {dish}.",
    "The answer is {letter}: {dish}.",
    "{letter}. {dish}",
    "I am not sure.",
]

GENERAL = [
    "这张图片展示了一份美食，看起来很好吃。",
    "盘子里有米饭、蔬菜和肉。",
    "背景是白色的，食物在中间。",
    "The picture shows a plate of food on a table.",
    "A bowl of noodles with soup and green onions.",
    "The image is bright and colorful, with the food in the center.",
    "红色 黄色 绿色 蓝色 白色 黑色 橙色 棕色",
    "red yellow green blue white black orange brown",
    "一 二 三 四 五 六 七 八 九 十",
    "0 1 2 3 4 5 6 7 8 9 10 12 35 448",
    "A B C D",
    "选项：A. B. C. D.",
    "system user assistant",
    "<|im_start|>user\n",
    "<|im_start|>assistant\n",
    "Options: A. B. C. D.",
    "是 否 对 错 好 不好",
    "yes no true false good bad",
]


def corpus_lines():
    """Every training line, in a fixed order (the tokenizer build must be deterministic)."""
    lines = list(SYSTEM_MESSAGES) + list(GENERAL)
    letters = "ABCD"
    for index, (zh, en) in enumerate(DISHES):
        letter = letters[index % 4]
        lines += [zh, en, f"{zh}（{en}）"]
        lines += [q.format(dish=zh) for q in QUESTIONS_ZH] + list(QUESTIONS_EN)
        lines += [a.format(dish=zh, letter=letter) for a in ANSWERS_ZH]
        lines += [a.format(dish=en, letter=letter) for a in ANSWERS_EN]
    for zh, en in CUISINES:
        lines += [f"{zh}", f"{en}", f"这道菜是{zh}。", f"This dish is from {en}."]
    return lines
