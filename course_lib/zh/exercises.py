"""Chinese for the kit's messages: exercises (see course_lib/zh/__init__.py).

Every key is the English that course_lib/exercises.py passes to tr() or later(); the Chinese keeps its
{placeholders} (with their formats), code names, numbers and formulas. Terms: translations/zh_CN/GLOSSARY.md.
"""

ZH = {
    # ---- check()'s frame -------------------------------------------------------------------------
    "Fill in {names} (still `...`), then run the cell again. Hint: {hint}": (
        "先把 {names} 填好（现在还是 `...`），再运行一次这个单元格。提示：{hint}"
    ),
    "Right: {explanation}": "答对了：{explanation}",
    "Not yet: {hint}": "还不对：{hint}",
    "Not yet: your answer raised {error}: {detail}. Hint: {hint}": (
        "还不对：你的答案运行时抛出了 {error}：{detail}。提示：{hint}"
    ),
    "{options} or {option}": "{options} 或 {option}",
    "{names} and {name}": "{names} 和 {name}",
    # ---- 01 ----------------------------------------------------------------------------------------
    "a 448x448 tile is cut into 14x14 patches; pixel shuffle folds each 2x2 block into one token": (
        "一个 448x448 的切片会被切成 14x14 像素的 patch；像素重排（pixel shuffle）再把每个 2x2 的块折成一个 token"
    ),
    "448/14 = 32 patches a side; pixel shuffle keeps 1 in 4": "448/14 = 32，每边 32 个 patch；像素重排之后每 4 个只留 1 个",
    "32 x 32 patches per tile, for every tile": "每个切片 32 x 32 个 patch，每个切片都要算上",
    "pixel shuffle saves {saved} tokens here.": "在这里，像素重排省下了 {saved} 个 token。",
    # ---- 02 ----------------------------------------------------------------------------------------
    "Linear(i, o) has i*o weights and o biases; torch.where(input_ids == placeholder_id) finds the rows": (
        "Linear(i, o) 有 i*o 个权重和 o 个偏置；torch.where(input_ids == placeholder_id) 能找出要替换的那些行"
    ),
    "each Linear(i, o) has i*o weights and o biases, and the MLP has two of them": (
        "每个 Linear(i, o) 有 i*o 个权重和 o 个偏置，而这个 MLP 里有两个 Linear"
    ),
    "the image rows must land on the placeholders, in order, and the other rows stay the text's": (
        "图像的各行要按顺序落在占位符的位置上，其余各行保持文本原来的值"
    ),
    "{count:,} parameters, under a third of BLIP-2's Q-Former connector ({blip2_count:,}); "
    "and your torch.where replacement matches course_lib.": (
        "{count:,} 个参数，还不到 BLIP-2 的 Q-Former 连接器（{blip2_count:,}）的三分之一；"
        "而且你用 torch.where 写的替换和 course_lib 的结果一致。"
    ),
    # ---- 03 ----------------------------------------------------------------------------------------
    "queries see only queries; text token t sees every query and the tokens up to t": (
        "query 只看得到 query；文本 token t 看得到所有 query，以及到 t 为止的文本 token"
    ),
    "the mask is 7 x 7: 3 queries + 4 tokens": "注意力掩码是 7 x 7 的：3 个 query + 4 个 token",
    "the rows of {rows} differ. Queries see only queries; text token t sees every "
    "query and the tokens up to and including itself.": (
        "出错的行：{rows}。query 只看得到 query；文本 token t 看得到所有 query，以及它前面的 token 和它自己。"
    ),
    "text sees the image summary and its own past; the queries never see the text.": (
        "文本看得到图像的摘要和它自己前面的内容；query 永远看不到文本。"
    ),
    # ---- 04 ----------------------------------------------------------------------------------------
    "at scale 0.25 each 4x4 block of patches becomes one token; on a 4x4 grid, token (1, 0) is one 2x2 block": (
        "缩放比例为 0.25 时，每个 4x4 的 patch 块变成一个 token；在 4x4 的网格上，token (1, 0) 是其中一个 2x2 的块"
    ),
    "32x32 patches, 4x4 blocks": "32x32 个 patch，按 4x4 分块",
    "number the 4x4 patches 0-15 row by row; which 2x2 block is token (1, 0)?": (
        "把这 4x4 个 patch 逐行编号为 0-15；token (1, 0) 是哪一个 2x2 的块？"
    ),
    "{tokens} tokens a tile at 0.25; token (1, 0) holds patches {patches}.": (
        "缩放比例为 0.25 时每个切片 {tokens} 个 token；token (1, 0) 里装的是 patch {patches}。"
    ),
    # ---- 05 ----------------------------------------------------------------------------------------
    "a 10:1 picture within 12 tiles: which grid, and is a thumbnail added?": (
        "一张 10:1 的图，最多 12 个切片：用哪种网格？要不要加缩略图？"
    ),
    "aspect 10:1 gives the grid {grid}; do not forget the thumbnail": "长宽比 10:1 对应的网格是 {grid}；别忘了缩略图",
    "grid {columns}x{rows} + thumbnail = {tiles} tiles, {tokens} tokens.": (
        "网格 {columns}x{rows} + 缩略图 = {tiles} 个切片，{tokens} 个 token。"
    ),
    # ---- 06 ----------------------------------------------------------------------------------------
    "3:1 within 2 tiles: which grid, plus the thumbnail, times 256": "3:1 的图、最多 2 个切片：用哪种网格，再加上缩略图，乘以 256",
    "3:1 within 2 tiles is a 2x1 grid, plus the thumbnail, x 256": "3:1 的图、最多 2 个切片，得到 2x1 的网格，再加上缩略图，x 256",
    "{tokens} image tokens = {tiles} tiles x 256.": "{tokens} 个图像 token = {tiles} 个切片 x 256。",
    # ---- 07 ----------------------------------------------------------------------------------------
    "free = 24 GB - weights; cache = free x 0.5; int8 KV per token; sessions = tokens // 8192": (
        "空闲显存 free = 24 GB - 权重；KV 缓存 cache = free x 0.5；int8 的 KV 按每个 token 算；sessions = tokens // 8192"
    ),
    "free = 24 - 2.2e9 x 2 B; cache = free x 0.5; int8 KV = 48 KiB per token; sessions = tokens // 8192": (
        "空闲显存 free = 24 - 2.2e9 x 2 B；KV 缓存 cache = free x 0.5；int8 的 KV 每个 token 占 48 KiB；"
        "sessions = tokens // 8192"
    ),
    "{gpu:g} GiB GPU - {weights:.1f} GiB weights = {free:.1f} GiB free; "
    "x {share:g} = {cache:.1f} GiB KV cache ({kind}, "
    "{kib:g} KiB/token) = {tokens:,} tokens = {sessions} full "
    "{session_len}-token sessions; {left:.1f} GiB left for activations": (
        "{gpu:g} GiB 显存 - {weights:.1f} GiB 权重 = {free:.1f} GiB 空闲；x {share:g} = {cache:.1f} GiB KV 缓存"
        "（{kind}，{kib:g} KiB/token）= {tokens:,} 个 token = {sessions} 个跑满 {session_len} token 的会话；"
        "还剩 {left:.1f} GiB 留给激活值"
    ),
    # ---- 08 ----------------------------------------------------------------------------------------
    "the queue admits all four; does the engine answer them together?": "队列会让四个人都进来；可引擎会一起回答他们吗？",
    "admitted together, but the engine's lock serves them one by one": "四个请求一起进了队列，但引擎的锁让它们一个接一个地处理",
    "{seconds} s. LMDeploy would batch the four and answer all in little more than 2 s.": (
        "{seconds} 秒。LMDeploy 会把这四个请求拼成一个 batch，只要 2 秒多一点就能全部答完。"
    ),
    # ---- 09 ----------------------------------------------------------------------------------------
    '"A", "B", "C" or "D": imagine a model that knows only the 12 base dishes': (
        '"A"、"B"、"C" 还是 "D"：设想一个只认识那 12 道基础菜的模型'
    ),
    "imagine a model that knows only the 12 base dishes: what can it do with 3 known options?": (
        "设想一个只认识那 12 道基础菜的模型：碰到 3 个它认识的选项，它能怎么做？"
    ),
    "ruling out the base dishes leaves {options} unknown options in each of the "
    "{questions} new-dish questions, so a model that never saw the new dishes scores chance (25 %). With "
    "base-dish distractors it would leave one option, the right answer, every time: 100 % without recognising "
    "anything.": (
        "排除基础菜之后，{questions} 道新菜题目里每道都还剩 {options} 个不认识的选项，所以没见过新菜的模型只能拿到"
        "随机水平（25 %）。要是干扰项都用基础菜，每次排除后就只剩一个选项，也就是正确答案：什么菜都不认识，"
        "也能拿 100 %。"
    ),
    # ---- 10 ----------------------------------------------------------------------------------------
    "one iteration per batch of BATCH_SIZE records (the last batch may be short), every epoch": (
        "每个 epoch 里，每 BATCH_SIZE 条记录组成一个 batch，一个 batch 算一次迭代（最后一个 batch 可能不满）"
    ),
    "iterations per epoch (ceil(records / batch size)) times epochs": (
        "每个 epoch 的迭代次数（ceil(records / batch size)）乘以 epoch 数"
    ),
    "{records} records, batch {batch_size} -> {iterations} iterations.": (
        "{records} 条记录，batch 为 {batch_size} -> {iterations} 次迭代。"
    ),
    # ---- 11 ----------------------------------------------------------------------------------------
    "Wilson: (p + z²/2n - z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n), with z = 1.96": (
        "Wilson 区间：(p + z²/2n - z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)，其中 z = 1.96"
    ),
    "compute the Wilson interval for 90 of 96 and take its lower end": "算出 96 题答对 90 题的 Wilson 区间，取它的下限",
    "90/96 = {share:.1%}, 95% interval {low:.1%} to {high:.1%}.": (
        "90/96 = {share:.1%}，95% 置信区间为 {low:.1%} 到 {high:.1%}。"
    ),
    # ---- 01b ---------------------------------------------------------------------------------------
    "a picture of side s cut into 14-pixel patches has (s / 14)² of them": (
        "边长为 s 的图切成 14 像素的 patch，一共有 (s / 14)² 个"
    ),
    "224 / 14 = 16 patches a side": "224 / 14 = 16，每边 16 个 patch",
    "{patches} patches at 224 px; going to 448 px gave InternViT four times as many, 1024.": (
        "224 px 时有 {patches} 个 patch；换成 448 px 后，InternViT 拿到的 patch 变成四倍，也就是 1024 个。"
    ),
    # ---- 02b ---------------------------------------------------------------------------------------
    "the input embedding and lm_head are each vocabulary x width, and both train": (
        "输入的 embedding 和 lm_head 各是 词表大小 x 隐藏层宽度，两个都要训练"
    ),
    "two matrices (embedding and lm_head, not tied), each 92,553 x 2048": (
        "两个矩阵（embedding 和 lm_head，不共享权重），各是 92,553 x 2048"
    ),
    "{count:,} parameters, about {share:.0%} of the whole model, for two new tokens.": (
        "为了两个新 token，要训练 {count:,} 个参数，约占整个模型的 {share:.0%}。"
    ),
    # ---- 10b ---------------------------------------------------------------------------------------
    "ZeRO-3 divides weights, gradients and Adam's state, 16 bytes a parameter, by the GPUs": (
        "ZeRO-3 把权重、梯度和 Adam 的状态（每个参数共 16 字节）平均分到各块 GPU 上"
    ),
    "16 bytes x 2.2 B parameters, divided over 4 GPUs, in GB": "16 字节 x 2.2 B 个参数，分到 4 块 GPU 上，单位是 GB",
    "{gb:.1f} GB per GPU before activations, against 35.2 GB on one GPU without ZeRO.": (
        "不算激活值，每块 GPU 要 {gb:.1f} GB；不用 ZeRO 的话，单块 GPU 要 35.2 GB。"
    ),
    # ---- 02c ---------------------------------------------------------------------------------------
    "read LLaVA-1.5's second row of the training-stage grid; a decoder gets one hidden state per query": (
        "看训练阶段图里 LLaVA-1.5 的第二行；解码器为每个 query 拿到一个隐藏状态"
    ),
    "in its second stage LLaVA-1.5 keeps CLIP frozen: which two parts change?": (
        "LLaVA-1.5 在第二阶段把 CLIP 冻结：哪两个部分会更新？"
    ),
    "8 [DET] queries, each leaves the language model as one hidden state of the model's width": (
        "8 个 [DET] query，每个从语言模型出来都是一个隐藏状态，长度等于模型的宽度"
    ),
    "{parts} train; the detector reads {vectors} vectors of width {width}, whatever the request's length.": (
        "{parts} 参与训练；不管请求有多长，检测器读到的都是 {vectors} 个宽度为 {width} 的向量。"
    ),
    # ---- 06b ---------------------------------------------------------------------------------------
    "add up what each turn reads with the whole conversation sent again, and "
    "with the kept cache; the difference is saved": (
        "把每一轮要读的 token 加起来：一次按整段对话重新发送算，一次按保留缓存算；两者之差就是省下的"
    ),
    "sum prompt_tokens over the turns, minus the sum of new_tokens": "把各轮的 prompt_tokens 加起来，再减去各轮 new_tokens 之和",
    "{tokens} tokens ({share:.0%} of the reading) are not read again over {turns} turns.": (
        "{turns} 轮对话下来，有 {tokens} 个 token（占要读内容的 {share:.0%}）不用再读一遍。"
    ),
    # ---- 11b ---------------------------------------------------------------------------------------
    "precision: right yes / all yes; recall: right yes / questions whose answer is yes; F1 = 2PR / (P + R)": (
        "precision（精确率）：答对的 yes / 所有的 yes；recall（召回率）：答对的 yes / 答案为 yes 的题目；"
        "F1 = 2PR / (P + R)"
    ),
    "45 of its 70 yes answers were right": "它回答的 70 个 yes 里，有 45 个是对的",
    "recall is 45 of the 50 questions whose answer is yes": "recall 是答案为 yes 的 50 道题里答对的 45 道",
    "precision {precision:.2f}, recall {recall:.2f}, F1 {f1:.2f}, accuracy "
    "{accuracy:.0%}: it said yes {yes_ratio:.0%} of the time, POPE's sign of a model that "
    "hallucinates.": (
        "precision {precision:.2f}，recall {recall:.2f}，F1 {f1:.2f}，准确率 {accuracy:.0%}："
        "它有 {yes_ratio:.0%} 的时候都回答 yes，在 POPE 看来，这正是模型出现幻觉的迹象。"
    ),
    # ---- 03b ---------------------------------------------------------------------------------------
    "{name} must return a tensor (or a nested list) of shape ({size}, {size})": (
        "{name} 要返回一个形状为 ({size}, {size}) 的 tensor（或嵌套列表）"
    ),
    "{name} returned shape {shape}; it should be ({size}, {size})": "{name} 返回的形状是 {shape}；应该是 ({size}, {size})",
    "my_itc({queries}, {text}) differs in the rows of {rows}. "
    "ITC: queries see only queries and text only text (unimodal)": (
        "my_itc({queries}, {text}) 出错的行：{rows}。ITC：query 只看 query，文本只看文本（单模态）"
    ),
    "my_itm({queries}, {text}) differs in the rows of {rows}. "
    "ITM: every position sees every position (bidirectional)": (
        "my_itm({queries}, {text}) 出错的行：{rows}。ITM：每个位置都看得到所有位置（双向）"
    ),
    "my_itg({queries}, {text}) differs in the rows of {rows}. "
    "ITG: queries see only queries; text token t sees every query and the text tokens up to and including t": (
        "my_itg({queries}, {text}) 出错的行：{rows}。ITG：query 只看 query；文本 token t 看得到所有 query，"
        "以及到 t 为止（包括 t）的文本 token"
    ),
    "each returns a (Q+T) x (Q+T) boolean tensor, queries first; torch.ones(...).tril() gives a causal block, "
    "and `is_query = torch.arange(Q + T) < Q` marks the query rows": (
        "每个函数返回一个 (Q+T) x (Q+T) 的布尔 tensor，query 排在前面；torch.ones(...).tril() 能得到一个因果块，"
        "`is_query = torch.arange(Q + T) < Q` 能标出 query 所在的行"
    ),
    "your three masks equal course_lib's on {sizes} sizes, up to BLIP-2's Q = 32. One sequence, one "
    "self-attention: the mask alone turns the Q-Former into two separate encoders (ITC), one joint encoder "
    "(ITM) or an image-grounded decoder (ITG).": (
        "你的三个注意力掩码在 {sizes} 种尺寸上都和 course_lib 的一致，最大到 BLIP-2 的 Q = 32。同一个序列、"
        "同一个 self-attention：只换掩码，Q-Former 就能变成两个各自独立的编码器（ITC）、一个联合编码器（ITM），"
        "或者一个基于图像的解码器（ITG）。"
    ),
    # ---- 04b ---------------------------------------------------------------------------------------
    "view x as (N, H/2, 2, W/2, 2, C): which axes must sit side by side before the last reshape to "
    "(N, H/2, W/2, 4C)? Channels in order top-left, top-right, bottom-left, bottom-right": (
        "把 x 看成 (N, H/2, 2, W/2, 2, C)：最后 reshape 成 (N, H/2, W/2, 4C) 之前，哪些维度必须挨在一起？"
        "通道的顺序是左上、右上、左下、右下"
    ),
    "my_pixel_shuffle must return a tensor": "my_pixel_shuffle 要返回一个 tensor",
    "a (1, 4, 4, 2) grid gave shape {shape}; it should be (1, 2, 2, 8): half the rows, half the "
    "columns, 4x the channels": (
        "(1, 4, 4, 2) 的网格得到的形状是 {shape}；应该是 (1, 2, 2, 8)：行数减半、列数减半、通道数变成 4 倍"
    ),
    "each token holds the right patches but the grid is transposed (that is ps_version v1): permute "
    "the rows and columns back": (
        "每个 token 装的 patch 都对，但网格转置了（这是 ps_version v1 的做法）：用 permute 把行和列换回来"
    ),
    "the right patches in nn.PixelUnshuffle's channel order (channel c, block position k at c*4 + k); "
    "InternVL keeps each patch's C channels together: block position k at k*C + c": (
        "patch 是对的，但通道用的是 nn.PixelUnshuffle 的顺序（通道 c、块内位置 k 放在 c*4 + k）；"
        "InternVL 把每个 patch 的 C 个通道放在一起：块内位置 k 放在 k*C + c"
    ),
    "token (0, 0) should hold patches [0, 1, 4, 5] (top-left, top-right, bottom-left, bottom-right), "
    "each patch's channels together; yours starts with patches {patches}. Try it on "
    "torch.arange(16.0).reshape(1, 4, 4, 1) and print token (0, 0)": (
        "token (0, 0) 应该装着 patch [0, 1, 4, 5]（左上、右上、左下、右下），每个 patch 的通道放在一起；"
        "你的开头却是 patch {patches}。拿 torch.arange(16.0).reshape(1, 4, 4, 1) 试一试，把 token (0, 0) 打印出来看看"
    ),
    "right on the 4x4 example, wrong on a random tensor of shape {shape}: use x's own sizes, not 4": (
        "4x4 的例子对了，但形状为 {shape} 的随机 tensor 错了：要用 x 自己的尺寸，别把 4 写死"
    ),
    "differs from nn.PixelUnshuffle on shape {shape}": "在形状 {shape} 上和 nn.PixelUnshuffle 的结果不一致",
    "differs from model.pixel_shuffle on {shape}": "在 {shape} 上和 model.pixel_shuffle 的结果不一致",
    "equal to course_lib's pixel_shuffle and nn.PixelUnshuffle (channels reordered) on "
    "{tensors} tensors. A reshape, a permute and a reshape: no weights, no value lost, and a tile's "
    "1024 patches become 256 tokens.": (
        "在 {tensors} 个 tensor 上都和 course_lib 的 pixel_shuffle 以及 nn.PixelUnshuffle（调整通道顺序后）一致。"
        "一次 reshape、一次 permute、再一次 reshape：没有权重，一个数值也不丢，一个切片的 1024 个 patch 就变成了 "
        "256 个 token。"
    ),
    "equal to course_lib's pixel_shuffle, the checkpoint's own model.pixel_shuffle (InternVL's code) and "
    "nn.PixelUnshuffle (channels reordered) on {tensors} tensors. A reshape, a permute and a reshape: no "
    "weights, no value lost, and a tile's 1024 patches become 256 tokens.": (
        "在 {tensors} 个 tensor 上都和 course_lib 的 pixel_shuffle、checkpoint 自带的 model.pixel_shuffle"
        "（InternVL 的代码）以及 nn.PixelUnshuffle（调整通道顺序后）一致。一次 reshape、一次 permute、"
        "再一次 reshape：没有权重，一个数值也不丢，一个切片的 1024 个 patch 就变成了 256 个 token。"
    ),
    # ---- 05b ---------------------------------------------------------------------------------------
    "aspect = width / height; keep the grid (columns, rows) whose columns / rows is closest; on an exact tie, "
    "take the later grid only if width * height > 0.5 * 448 * 448 * columns * rows": (
        "aspect = width / height；选 columns / rows 最接近它的网格 (columns, rows)；如果正好打平，"
        "只有 width * height > 0.5 * 448 * 448 * columns * rows 时才选后面那个网格"
    ),
    "{width}x{height}: you gave {grid}, transposed: a grid is (columns, rows)": (
        "{width}x{height}：你给的 {grid} 行列颠倒了：网格写作 (columns, rows)，先列后行"
    ),
    "{width}x{height} (max {max_num} tiles): {yours} and {right} are equally close to its "
    "aspect {aspect:.3g}. On a tie InternVL takes the later grid only if the picture has more "
    "than half of its pixels: {pixels:,} against half of {bigger}'s, {half:,}": (
        "{width}x{height}（最多 {max_num} 个切片）：{yours} 和 {right} 离它的长宽比 {aspect:.3g} 一样近。"
        "打平的时候，只有图片的像素数超过后面那个网格像素数的一半，InternVL 才选它：这里是 {pixels:,}，"
        "而 {bigger} 的一半是 {half:,}"
    ),
    "{width}x{height} (aspect {aspect:.3g}, max {max_num} tiles) should get {right}, "
    "you gave {got}: which candidate's columns / rows is closest to width / height?": (
        "{width}x{height}（长宽比 {aspect:.3g}，最多 {max_num} 个切片）应该得到 {right}，你给的是 {got}："
        "哪个候选网格的 columns / rows 最接近 width / height？"
    ),
    "the same grid as course_lib.tiling on {checked} (size, budget) pairs. The tie-break is why 600x600 stays "
    "one tile while 1000x1000 becomes 3x3 (1,000,000 pixels > half of 9 tiles' 1,806,336): a big picture earns "
    "more tiles, a small one is not blown up.": (
        "在 {checked} 组（尺寸, 切片上限）上都和 course_lib.tiling 选出了相同的网格。正是这条打平规则，"
        "让 600x600 只用一个切片，而 1000x1000 变成 3x3（1,000,000 像素 > 9 个切片 1,806,336 像素的一半）："
        "大图能多分到切片，小图也不会被硬放大。"
    ),
    # ---- 06c ---------------------------------------------------------------------------------------
    "L = the longest list; each row is [pad_id] * (L - len(ids)) + ids, its mask 0 for each pad and 1 for "
    "each token; return two (batch, L) tensors": (
        "L = 最长那个列表的长度；每一行是 [pad_id] * (L - len(ids)) + ids，它的掩码在每个 pad 处为 0、"
        "每个 token 处为 1；返回两个 (batch, L) 的 tensor"
    ),
    "return two things: (input_ids, attention_mask), both tensors": "要返回两样东西：(input_ids, attention_mask)，都是 tensor",
    "prompts of {lengths} tokens: input_ids should be {shape}": (
        "这些 prompt 分别有 {lengths} 个 token：input_ids 的形状应该是 {shape}"
    ),
    "that is right padding: the model writes its answer after the last column, so every prompt must "
    "end there; put the pads on the left": (
        "这是右侧填充（right padding）：模型会接着最后一列往后写答案，所以每个 prompt 都必须在那里结束；把 pad 放到左边"
    ),
    "prompts of {lengths} tokens: input_ids differ from the tokenizer's": (
        "这些 prompt 分别有 {lengths} 个 token：input_ids 和 tokenizer 给出的不一致"
    ),
    "the mask is 1 over each prompt's own tokens and 0 over its pads": "掩码在每个 prompt 自己的 token 上是 1，在 pad 上是 0",
    "the same input_ids and attention mask as the tokenizer's left padding (InternVL2's batch_chat) for "
    "{batches} batches. Your mask for the first one:\n{rows}\nEvery prompt ends in the last column, "
    "where generation goes on; the 0s keep the pads out of attention.": (
        "{batches} 个 batch 的 input_ids 和注意力掩码都和 tokenizer 的左侧填充（InternVL2 的 batch_chat）一致。"
        "你给第一个 batch 的掩码：\n{rows}\n每个 prompt 都在最后一列结束，生成就从那里接着往下写；"
        "那些 0 让 pad 不参与注意力计算。"
    ),
    # ---- 07b ---------------------------------------------------------------------------------------
    '[{"role": "user", "content": [image part, text part]}]; the image part is {"type": "image_url", '
    '"image_url": {"url": "data:image/png;base64," + base64 text, "max_dynamic_patch": n}}': (
        '[{"role": "user", "content": [图像部分, 文本部分]}]；图像部分是 {"type": "image_url", '
        '"image_url": {"url": "data:image/png;base64," + base64 文本, "max_dynamic_patch": n}}'
    ),
    "the messages must be plain JSON ({error}): decode the base64 bytes to text": (
        "消息必须是纯 JSON（{error}）：把 base64 的字节解码成文本"
    ),
    "return a list holding one message, the user's": "返回一个列表，里面只有一条消息：用户的那条",
    'the message\'s role is "user"': '这条消息的 role 是 "user"',
    "content is a list of two parts: the image, the text": "content 是一个有两部分的列表：先图像，后文本",
    "the image goes first, then the question (where InternVL2 puts <image>)": (
        "图像放在前面，问题放在后面（InternVL2 也是把 <image> 放在这个位置）"
    ),
    'the text part is {"type": "text", "text": question}': '文本部分是 {"type": "text", "text": question}',
    "max_dynamic_patch goes inside image_url, next to url: it is that picture's tile budget": (
        "max_dynamic_patch 放在 image_url 里面，和 url 并列：它是这张图的切片上限"
    ),
    'the url is a data URL: "data:image/png;base64," then the base64 text': (
        'url 是一个 data URL："data:image/png;base64," 后面接 base64 文本'
    ),
    "the base64 text must be that of the PNG bytes given": "base64 文本必须由传进来的 PNG 字节编码而来",
    "your messages equal course_lib's chat_messages for {pictures} pictures. The last picture's {png} PNG "
    "bytes travel as {characters} base64 characters (4 for every 3 bytes), "
    "which is why a request with photos weighs hundreds of KiB.": (
        "{pictures} 张图上，你的消息都和 course_lib 的 chat_messages 一致。最后一张图的 {png} 个 PNG 字节，"
        "传输时变成了 {characters} 个 base64 字符（每 3 个字节变 4 个字符），所以带照片的请求动辄几百 KiB。"
    ),
    # ---- 09b ---------------------------------------------------------------------------------------
    '{"image": image, "conversations": [{"from": "human", "value": ...}, {"from": "gpt", "value": ...}]}; '
    'item["answer"] is a string "0"-"3"': (
        '{"image": image, "conversations": [{"from": "human", "value": ...}, {"from": "gpt", "value": ...}]}；'
        'item["answer"] 是字符串 "0"-"3"'
    ),
    "return a dict: the record": "返回一个 dict，也就是这条记录",
    "the record's image is the path it is given": "记录里的 image 就是传进来的那个路径",
    "conversations holds two turns: human, then gpt": "conversations 里有两轮：先 human，后 gpt",
    'the turns\' "from" are "human" and "gpt" (XTuner knows no other roles)': (
        '两轮的 "from" 分别是 "human" 和 "gpt"（XTuner 不认识别的角色）'
    ),
    "that is the kit's own layout (tag first); the lecture's conversion puts the tag after the question: "
    'question + "\\n<image>"': (
        '这是课程工具包自己的格式（标签在前）；讲座里的转换把标签放在问题后面：question + "\\n<image>"'
    ),
    "record {index}: the human turn should be {want!r}, not {got!r}": (
        "第 {index} 条记录：human 这一轮应该是 {want!r}，而不是 {got!r}"
    ),
    "record {index}: the gpt turn should be {want!r}, not {got!r}": (
        "第 {index} 条记录：gpt 这一轮应该是 {want!r}，而不是 {got!r}"
    ),
    "all {records} records as the lecture converted them. Look at what the human turn dropped: the four "
    "options. Trained this way, the model learns to state the answer and name the dish, not to pick among "
    "options, which is what FoodieQA's evaluation then asks of it.": (
        "{records} 条记录都和讲座里转换出来的一样。看看 human 这一轮丢掉了什么：四个选项。这样训练出来的模型，"
        "学会的是直接说出答案、报出菜名，而不是在选项里挑一个，可 FoodieQA 的评测恰恰要它挑选项。"
    ),
    # ---- 11c ---------------------------------------------------------------------------------------
    "Wilson: centre (p + z²/2n) / (1 + z²/n), half-width z·sqrt(p(1-p)/n + z²/4n²) / (1 + z²/n), z = 1.96; "
    "McNemar: 2 x P(X <= min(fixed, broken)) for X ~ Binomial(fixed + broken, 1/2), at most 1": (
        "Wilson：中心 (p + z²/2n) / (1 + z²/n)，半宽 z·sqrt(p(1-p)/n + z²/4n²) / (1 + z²/n)，z = 1.96；"
        "McNemar：2 x P(X <= min(fixed, broken))，其中 X ~ Binomial(fixed + broken, 1/2)，最大为 1"
    ),
    "{correct}/{n}: that is the textbook p ± z·sqrt(p(1-p)/n), which collapses to a point at 0/n "
    "and n/n; Wilson's centre moves toward 1/2: (p + z²/2n) / (1 + z²/n)": (
        "{correct}/{n}：这是教科书上的 p ± z·sqrt(p(1-p)/n)，它在 0/n 和 n/n 时会缩成一个点；"
        "Wilson 区间的中心会往 1/2 靠：(p + z²/2n) / (1 + z²/n)"
    ),
    "{correct}/{n}: Wilson gives {want_low:.4f} to {want_high:.4f}, you gave {low:.4f} to {high:.4f}": (
        "{correct}/{n}：Wilson 区间是 {want_low:.4f} 到 {want_high:.4f}，你给的是 {low:.4f} 到 {high:.4f}"
    ),
    "fixed {fixed}, broken {broken}: yours is half of it; the test is two-sided, double the tail": (
        "fixed {fixed}，broken {broken}：你的结果只有正确值的一半；这是双侧检验，要把尾部概率乘以 2"
    ),
    "fixed {fixed}, broken {broken}: a p-value is at most 1; cap it with min(1, ...)": (
        "fixed {fixed}，broken {broken}：p 值最大是 1；用 min(1, ...) 封顶"
    ),
    "fixed {fixed}, broken {broken}: McNemar's exact p is {want:.6f}, you gave {got:.6f}": (
        "fixed {fixed}，broken {broken}：McNemar 精确检验的 p 是 {want:.6f}，你给的是 {got:.6f}"
    ),
    "equal to course_lib.evaluation on {intervals} intervals and {pairs} McNemar pairs (and scipy agrees). "
    "8 of 10 is {low:.0%} to {high:.0%}: ten questions say little. McNemar reads only the questions that "
    "changed: 8 fixed vs 1 broken gives p = {p_8_1:.3f}, 6 vs 3 gives {p_6_3:.2f}, however many questions "
    "stayed the same.": (
        "在 {intervals} 个区间和 {pairs} 组 McNemar 数据上都和 course_lib.evaluation 一致（scipy 也这么算）。"
        "10 题答对 8 题，区间是 {low:.0%} 到 {high:.0%}：十道题说明不了多少。McNemar 只看结果变了的题："
        "改对 8 道、改错 1 道，p = {p_8_1:.3f}；6 比 3 则是 {p_6_3:.2f}，不管有多少题结果没变。"
    ),
    "equal to course_lib.evaluation on {intervals} intervals and {pairs} McNemar pairs. "
    "8 of 10 is {low:.0%} to {high:.0%}: ten questions say little. McNemar reads only the questions that "
    "changed: 8 fixed vs 1 broken gives p = {p_8_1:.3f}, 6 vs 3 gives {p_6_3:.2f}, however many questions "
    "stayed the same.": (
        "在 {intervals} 个区间和 {pairs} 组 McNemar 数据上都和 course_lib.evaluation 一致。"
        "10 题答对 8 题，区间是 {low:.0%} 到 {high:.0%}：十道题说明不了多少。McNemar 只看结果变了的题："
        "改对 8 道、改错 1 道，p = {p_8_1:.3f}；6 比 3 则是 {p_6_3:.2f}，不管有多少题结果没变。"
    ),
    # ---- 10c ---------------------------------------------------------------------------------------
    "x @ W.T + bias, plus (alpha / r) * x @ A.T @ B.T; weight is (out, in), lora_A (r, in), lora_B (out, r), "
    "and bias may be None": (
        "x @ W.T + bias，再加上 (alpha / r) * x @ A.T @ B.T；weight 的形状是 (out, in)，lora_A 是 (r, in)，"
        "lora_B 是 (out, r)，bias 可能是 None"
    ),
    "my_lora_forward must return a tensor": "my_lora_forward 要返回一个 tensor",
    "{name}: x of shape {shape} should give {want}, yours is {got}": "{name}：形状为 {shape} 的 x 应该得到 {want}，你的是 {got}",
    "that is the frozen layer alone: add the low-rank update (alpha / r) * B A x": (
        "这只是冻结的原始层：还要加上低秩更新 (alpha / r) * B A x"
    ),
    "the update is scaled by alpha / r (here {alpha} / {r}); yours is not scaled": (
        "更新要乘以缩放系数 alpha / r（这里是 {alpha} / {r}）；你的没有缩放"
    ),
    "the scale is alpha / r = {alpha} / {r}, not r / alpha": "缩放系数是 alpha / r = {alpha} / {r}，不是 r / alpha",
    "{name} with r = {r}, alpha = {alpha}: your output differs from peft's LoRA layer": (
        "{name}，r = {r}，alpha = {alpha}：你的输出和 peft 的 LoRA 层不一致"
    ),
    "equal to peft's LoRA layer on this checkpoint's {names}, at ranks 2 to 16. On {name} "
    "({inputs} -> {outputs}), r = {r} trains {low_rank:,} numbers instead of {full:,} "
    "({share:.0%}); B starts at zero, so training starts exactly "
    "from the base model, and after training B A can be added into W (the conversion's merge).": (
        "在这个 checkpoint 的 {names} 上，秩从 2 到 16，都和 peft 的 LoRA 层一致。以 {name}（{inputs} -> {outputs}）"
        "为例，r = {r} 只训练 {low_rank:,} 个数，而不是 {full:,} 个（{share:.0%}）；B 从零开始，所以训练恰好"
        "从基座模型出发，训练完还能把 B A 加回 W 里（也就是转换时的合并权重）。"
    ),
}
