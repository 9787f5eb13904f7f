"""Peer for crepe's perplexity benchmark: Hugging Face transformers + PyTorch on the same windows.

Reads int32 token ids (little-endian, as crepe tokenised them), cuts windows of --seqlen tokens,
runs LlamaForCausalLM in float32 in batches of --batch windows and prints one JSON line:
PPL = exp(mean over windows of the window's mean next-token NLL), the evaluation's seconds.
"""
import json, time

import numpy as np
import torch
import torch.nn.functional as F

from peer_common import load_model, parse, parser, read_ids

p = parser("--tokens", "the text's token ids, int32")
p.add_argument("--batch", type=int, default=8)
p.add_argument("--max-windows", type=int, default=0)
a = parse(p)

ids = read_ids(a.tokens)
windows = ids.numel() // a.seqlen
if a.max_windows:
    windows = min(windows, a.max_windows)
ids = ids[: windows * a.seqlen].view(windows, a.seqlen)
model = load_model(a.model)

with torch.inference_mode():
    model(ids[:1])  # warm-up, as crepe's sessions are built before its clock starts
    start, cpu_start = time.perf_counter(), time.process_time()
    window_nll = []
    for b in range(0, windows, a.batch):
        x = ids[b : b + a.batch]
        logits = model(x).logits[:, :-1]
        nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1), reduction="none")
        window_nll.append(nll.view(x.shape[0], -1).mean(dim=1))
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
mean_nll = torch.cat(window_nll).double().mean().item()
print(json.dumps({"ppl": float(np.exp(mean_nll)), "meanNll": mean_nll, "windows": windows, "seconds": seconds, "cpuSeconds": cpu_seconds,
                  "threads": torch.get_num_threads(), "torch": torch.__version__}))
