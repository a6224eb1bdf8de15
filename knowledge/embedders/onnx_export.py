"""Export a sentence-transformers MiniLM model to ONNX (mean pooling and normalisation inside the graph).

Run as a subprocess (``python -m knowledge.embedders.onnx_export MODEL_DIR OUT``) so the serving process never
imports torch: the export needs torch, transformers and onnx; serving needs only onnxruntime and tokenizers.
The exported graph is checked against the torch model on probe sentences before it is written.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

PROBES = ["What is the late payment fee?", "How do I reset the router to factory settings after a power cut?"]


def quantize(source: Path, out: Path) -> None:
    """Write an int8 (dynamically quantised) copy of ``source`` to ``out`` atomically."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = out.with_suffix(f".tmp{os.getpid()}")
    quantize_dynamic(str(source), str(tmp), weight_type=QuantType.QInt8)
    os.replace(tmp, out)


def export(model_dir: Path, out: Path) -> None:
    """Export ``model_dir`` to ``out`` atomically, after checking the ONNX output equals torch's."""
    import numpy as np
    import onnxruntime as ort
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModel

    torch.set_num_threads(1)
    model = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager")
    model.eval()

    class Pooled(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(
            self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
        ) -> torch.Tensor:
            hidden = self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    wrapper = Pooled(model).eval()
    dummy = torch.ones(2, 8, dtype=torch.long)
    tmp = out.with_suffix(f".tmp{os.getpid()}")
    axes = {"b": 0, "s": 1}
    dynamic = {
        name: {axes["b"]: "batch", axes["s"]: "sequence"} for name in ("input_ids", "attention_mask", "token_type_ids")
    }
    dynamic["embedding"] = {0: "batch"}
    with torch.no_grad():
        torch.onnx.export(
            wrapper,
            (dummy, dummy, torch.zeros_like(dummy)),
            str(tmp),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["embedding"],
            dynamic_axes=dynamic,
            opset_version=17,
            dynamo=False,
        )
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.no_padding()
    session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
    for probe in PROBES:
        ids = np.array([tokenizer.encode(probe).ids], dtype=np.int64)
        mask = np.ones_like(ids)
        got = session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0]
        with torch.no_grad():
            want = wrapper(
                torch.from_numpy(ids), torch.from_numpy(mask), torch.zeros_like(torch.from_numpy(ids))
            ).numpy()
        if float((got * want).sum()) < 0.9999:
            tmp.unlink(missing_ok=True)
            raise SystemExit("ONNX export does not match the torch model")
    os.replace(tmp, out)


if __name__ == "__main__":
    model, target = Path(sys.argv[1]), Path(sys.argv[2])
    full = target.with_name(target.name.replace("-int8", "")) if "-int8" in target.name else target
    if not full.exists():
        export(model, full)
    if full != target:
        quantize(full, target)
