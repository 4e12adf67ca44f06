"""mmengine hooks the GPU recipe adds on GPUs that need them (xtuner_config.render(..., bf16=False)).

- FrozenFloat16Hook: XTuner's InternVL_V1_5 loads the model with torch_dtype=torch.bfloat16 whatever the GPU
  (xtuner/model/internvl.py). A GPU below compute capability 8.0 (V100, T4, RTX 20xx) stores bfloat16 but does
  not compute in it: every op on those weights outside autocast's float16 list goes through slow emulation or
  fails (InternVL#260, #788). The hook casts the frozen weights (the vision encoder, the language model's base
  weights) to float16 before training. It leaves trained parameters alone: LoRA's are float32 (peft makes them
  so), and AMP's loss scaler refuses float16 gradients. Under DeepSpeed fp16 the engine has already made the
  model float16, so there is nothing left to cast.
"""

import torch
from mmengine.hooks import Hook


def frozen_to_float16(model: torch.nn.Module) -> int:
    """Cast frozen bfloat16 parameters to float16 in place (the same Parameter objects); returns how many values."""
    changed = 0
    for parameter in model.parameters():
        if not parameter.requires_grad and parameter.dtype == torch.bfloat16:
            parameter.data = parameter.data.to(torch.float16)
            changed += parameter.numel()
    return changed


class FrozenFloat16Hook(Hook):
    priority = "VERY_HIGH"

    def before_run(self, runner) -> None:  # after the model is built and wrapped, before training or resuming
        model = runner.model.module if hasattr(runner.model, "module") else runner.model
        changed = frozen_to_float16(model)
        runner.logger.info(f"FrozenFloat16Hook: {changed} frozen bfloat16 weights now float16 (this GPU has no bf16)")
