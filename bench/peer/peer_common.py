"""What the peer scripts share: the options every one takes (--model, a file of int32 token ids,
--seqlen, --threads), torch's thread count, the token file as crepe writes it (little-endian int32)
and the model loaded in float32 for inference.
"""
import argparse

import numpy as np
import torch
from transformers import AutoModelForCausalLM


def parser(tokens_option, tokens_help):
    """An argument parser with the shared options; `tokens_option` names the token file's option."""
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True, help="Hugging Face model directory")
    p.add_argument(tokens_option, required=True, help=tokens_help)
    p.add_argument("--seqlen", type=int, required=True)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    return p


def parse(p):
    """The parsed arguments, torch's thread count set from --threads."""
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    return a


def read_ids(path):
    """The token ids of a little-endian int32 file, as a 1-D int64 tensor."""
    return torch.from_numpy(np.fromfile(path, dtype="<i4").astype(np.int64))


def load_model(path):
    """The model of a Hugging Face directory in float32, in evaluation mode."""
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
