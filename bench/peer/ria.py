"""Peer for crepe's RIA benchmark: the Wanda/RIA reference flow on Hugging Face transformers + PyTorch.

Layer by layer, as the reference `prune_ria` does: forward hooks collect each linear's input
squared norms (scaler_row) over the calibration samples, one sample per forward; RIA scores
(|W|/colsum + |W|/rowsum) · sqrt(scaler_row)^a; per-matrix threshold by torch.sort; prune; re-forward
the layer to make the next layer's inputs. Reads int32 windows [nsamples, seqlen] (little-endian);
prints one JSON line with the phases' seconds.
"""
import json, time

t_start, cpu_start = time.perf_counter(), time.process_time()
import numpy as np
import torch

from peer_common import load_model, parse, parser, read_ids

p = parser("--windows", "the calibration windows' token ids, int32 [nsamples, seqlen]")
p.add_argument("--sparsity", type=float, default=0.5)
p.add_argument("--a", type=float, default=0.5)
p.add_argument("--select", choices=["sort", "kthvalue"], default="sort")
p.add_argument("--out", default="")
p.add_argument("--mask-out", default="")
a = parse(p)
t = {"import": time.perf_counter() - t_start}

clock = time.perf_counter()
model = load_model(a.model)
ids = read_ids(a.windows).view(-1, a.seqlen)
layers = model.model.layers
t["load"] = time.perf_counter() - clock


class Catcher(torch.nn.Module):  # the reference's way to grab layer 0's inputs and kwargs
    def __init__(self, layer):
        super().__init__()
        self.layer, self.inps, self.kwargs = layer, [], None

    def forward(self, x, *args, **kwargs):
        self.inps.append(x)
        self.kwargs = kwargs
        raise ValueError


def run(layer, x, kwargs):
    out = layer(x, **kwargs)
    return out[0] if isinstance(out, tuple) else out


t.update(forward=0.0, score=0.0, select=0.0, prune=0.0)
masks = {}
with torch.inference_mode():
    clock = time.perf_counter()
    layers[0] = catcher = Catcher(layers[0])
    for j in range(ids.shape[0]):
        try:
            model(ids[j : j + 1])
        except ValueError:
            pass
    layers[0] = catcher.layer
    inps, kwargs = catcher.inps, catcher.kwargs
    kwargs.pop("past_key_values", None)
    kwargs["use_cache"] = False
    t["forward"] += time.perf_counter() - clock

    for i, layer in enumerate(layers):
        subset = {n: m for n, m in layer.named_modules() if isinstance(m, torch.nn.Linear)}
        scaler, count = {n: torch.zeros(m.in_features) for n, m in subset.items()}, {n: 0 for n in subset}

        def hook(name):
            def add_batch(_, inp, __):  # WrappedGPT.add_batch: running mean of ‖x_j‖² per sample
                x = inp[0].reshape(-1, inp[0].shape[-1]).t().float()
                scaler[name] *= count[name] / (count[name] + 1)
                count[name] += 1
                scaler[name] += torch.norm(x, p=2, dim=1) ** 2 / count[name]
            return add_batch

        clock = time.perf_counter()
        handles = [m.register_forward_hook(hook(n)) for n, m in subset.items()]
        for x in inps:
            run(layer, x, kwargs)
        for h in handles:
            h.remove()
        t["forward"] += time.perf_counter() - clock

        for name, m in subset.items():
            clock = time.perf_counter()
            W = m.weight.data.abs()
            metric = (W / W.sum(dim=0) + W / W.sum(dim=1).reshape(-1, 1)) * scaler[name].sqrt().reshape(1, -1) ** a.a
            t["score"] += time.perf_counter() - clock
            clock = time.perf_counter()
            k = int(metric.numel() * a.sparsity)
            if a.select == "sort":
                thresh = torch.sort(metric.flatten())[0][k]
            else:
                thresh = torch.kthvalue(metric.flatten(), k + 1).values
            mask = metric <= thresh
            t["select"] += time.perf_counter() - clock
            clock = time.perf_counter()
            m.weight.data[mask] = 0
            t["prune"] += time.perf_counter() - clock
            if a.mask_out:
                masks[f"model.layers.{i}.{name}"] = mask.numpy()

        clock = time.perf_counter()
        inps = [run(layer, x, kwargs) for x in inps]
        t["forward"] += time.perf_counter() - clock

clock = time.perf_counter()
if a.out:
    model.half().save_pretrained(a.out)
t["save"] = time.perf_counter() - clock
if a.mask_out:
    np.savez(a.mask_out, **{n: np.packbits(m, axis=None) for n, m in masks.items()})
t["total"] = time.perf_counter() - t_start
t["cpu"] = time.process_time() - cpu_start
print(json.dumps({"seconds": t, "threads": torch.get_num_threads(), "torch": torch.__version__}))
