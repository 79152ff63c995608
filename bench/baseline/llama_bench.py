#!/usr/bin/env python3
"""PyTorch baseline of `cream bench`: the same Llama-style decoder (RMSNorm,
rotary embeddings with cream's scalings, grouped-query causal attention, the
Qwen2/Qwen3 biases and q/k norms, SwiGLU) and the same steps as
bench/src/ours.ts, on the case JSON that bench/src/cases.ts builds, with the
case's checkpoint's weights when it names one (random weights otherwise):

- training step: forward over batch x seq tokens, cross-entropy on the seq - 1
  next tokens, backward, gradient clipping to norm 1, AdamW (weight decay on
  2-D weights only), as cream's trainSft step;
- the same step on sequences of varied lengths (workload "varied"), right-padded
  to the longest as a padding collator does, the loss on the response tokens
  (lm_head on those positions only, as cream computes it);
- the training step again on long sequences (workload "long");
- scoring: log-probabilities of the response tokens after the prompt;
- greedy generation with a KV cache (prefill, then one token per step);
- prefill: one prompt into a fresh cache, the logits of its last position.

fp32 on the CPU with --threads torch threads; `cream bench` runs it with
OPENBLAS_CORETYPE unset and as many threads as ours. Prints one JSON line,
the same shape as bench/src/results.ts's ImplementationResult.

With --check it times nothing: it prints the logits of given rows, a few
training steps on them and the weights after them (bench/src/baseline.ts's
AgreementResult), which bench/src/agreement.test.ts compares with ours.
"""
import argparse
import json
import math
import os
import re
import resource
import struct
import sys
import time

GROUPS = ("train", "varied", "long", "score", "generate", "prefill")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", required=True, help="the benchmark case as JSON (shape, workload, warmup, repeats, only, seed), as bench/src/cases.ts writes it")
    parser.add_argument("--threads", type=int, required=True, help="torch threads (cream bench passes the thread count of our backend)")
    parser.add_argument(
        "--check",
        help='instead of timing: JSON {"rows": [[token ids]], "steps": N}; prints the logits of the rows, N training steps on '
        "them and the weights after them (bench/src/agreement.test.ts compares them with cream's)",
    )
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    try:
        args.case = json.loads(args.case)
    except json.JSONDecodeError as error:
        parser.error(f"--case is not JSON: {error}")
    for key in ("shape", "workload", "warmup", "repeats", "only", "seed"):
        if key not in args.case:
            parser.error(f"--case lacks \"{key}\"")
    unknown = [group for group in args.case["only"] if group not in GROUPS]
    if unknown:
        parser.error(f"--case \"only\" holds unknown groups {unknown}; known: {', '.join(GROUPS)}")
    if args.check is not None:
        try:
            args.check = json.loads(args.check)
        except json.JSONDecodeError as error:
            parser.error(f"--check is not JSON: {error}")
        rows, steps = args.check.get("rows"), args.check.get("steps")
        if not (isinstance(rows, list) and rows and all(isinstance(row, list) and len(row) == len(rows[0]) >= 2 for row in rows)):
            parser.error("--check \"rows\" must be a non-empty list of equally long lists of at least 2 token ids")
        vocab = args.case["shape"]["vocabSize"]
        if any(not (isinstance(i, int) and 0 <= i < vocab) for row in rows for i in row):
            parser.error(f"--check \"rows\" must hold token ids in [0, {vocab})")
        if not (isinstance(steps, int) and steps >= 0):
            parser.error(f"--check \"steps\" must be an integer >= 0, got {steps!r}")
    return args


def rope_inverse_frequencies(shape):
    """The rotary inverse frequencies of cream's ropeInverseFrequencies (plain, "linear" or "llama3" scaling), in
    float64."""
    head_dim, theta, scaling = shape["headDim"], shape["ropeTheta"], shape.get("ropeScaling")
    frequencies = []
    for i in range(head_dim // 2):
        frequency = 1.0 / theta ** (2 * i / head_dim)
        if scaling is None:
            frequencies.append(frequency)
        elif scaling["type"] == "linear":
            frequencies.append(frequency / scaling["factor"])
        elif scaling["type"] == "llama3":
            factor, low, high = scaling["factor"], scaling["lowFreqFactor"], scaling["highFreqFactor"]
            context = scaling["originalMaxPositionEmbeddings"]
            wavelength = 2 * math.pi / frequency
            if wavelength < context / high:
                frequencies.append(frequency)
            elif wavelength > context / low:
                frequencies.append(frequency / factor)
            else:
                smooth = (context / wavelength - low) / (high - low)
                frequencies.append((1 - smooth) * frequency / factor + smooth * frequency)
        else:
            raise ValueError(f"ropeScaling type {scaling['type']!r} is not one the baseline implements (linear, llama3)")
    return frequencies


def build_model(torch, shape):
    """The decoder of `shape`, its modules named as a Hugging Face checkpoint's tensors without the "model." prefix
    (lm_head.weight as is): q/k/v biases with attentionBias, an o_proj bias with attentionOutputBias, per-head
    RMSNorm of queries and keys before the rotation with qkNorm (Qwen3), lm_head tied to the embedding with
    tieWordEmbeddings."""
    nn = torch.nn
    F = torch.nn.functional
    d, heads, kv_heads, head_dim = shape["hiddenSize"], shape["nHeads"], shape["nKvHeads"], shape["headDim"]
    eps = shape["rmsNormEps"]
    bias, out_bias, qk_norm = shape.get("attentionBias", False), shape.get("attentionOutputBias", False), shape.get("qkNorm", False)

    class RMSNorm(nn.Module):
        def __init__(self, width):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(width))

        def forward(self, x):
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * self.weight

    def rotate(x, cos, sin):
        half = x.shape[-1] // 2
        return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.q_proj = nn.Linear(d, heads * head_dim, bias=bias)
            self.k_proj = nn.Linear(d, kv_heads * head_dim, bias=bias)
            self.v_proj = nn.Linear(d, kv_heads * head_dim, bias=bias)
            self.o_proj = nn.Linear(heads * head_dim, d, bias=out_bias)
            if qk_norm:
                self.q_norm = RMSNorm(head_dim)
                self.k_norm = RMSNorm(head_dim)

        def forward(self, x, cos, sin, cache, start):
            B, T, _ = x.shape
            q = self.q_proj(x).view(B, T, heads, head_dim)
            k = self.k_proj(x).view(B, T, kv_heads, head_dim)
            if qk_norm:
                q, k = self.q_norm(q), self.k_norm(k)
            q = rotate(q.transpose(1, 2), cos, sin)
            k = rotate(k.transpose(1, 2), cos, sin)
            v = self.v_proj(x).view(B, T, kv_heads, head_dim).transpose(1, 2)
            if cache is not None:
                keys, values = cache
                keys[:, :, start : start + T] = k
                values[:, :, start : start + T] = v
                k, v = keys[:, :, : start + T], values[:, :, : start + T]
            if kv_heads != heads:
                k = k.repeat_interleave(heads // kv_heads, dim=1)
                v = v.repeat_interleave(heads // kv_heads, dim=1)
            scores = torch.matmul(q, k.transpose(-1, -2)) * (head_dim**-0.5)  # [B, H, T, S]
            if T > 1:
                S = k.shape[2]
                scores = scores + torch.full((T, S), float("-inf")).triu(start + 1)
            out = torch.matmul(torch.softmax(scores, dim=-1), v)  # [B, H, T, hd]
            return self.o_proj(out.transpose(1, 2).reshape(B, T, heads * head_dim))

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.gate_proj = nn.Linear(d, shape["intermediateSize"], bias=False)
            self.up_proj = nn.Linear(d, shape["intermediateSize"], bias=False)
            self.down_proj = nn.Linear(shape["intermediateSize"], d, bias=False)

        def forward(self, h):
            return self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))

    class Layer(nn.Module):
        def __init__(self):
            super().__init__()
            self.input_layernorm = RMSNorm(d)
            self.self_attn = Attention()
            self.post_attention_layernorm = RMSNorm(d)
            self.mlp = MLP()

        def forward(self, x, cos, sin, cache, start):
            x = x + self.self_attn(self.input_layernorm(x), cos, sin, cache, start)
            return x + self.mlp(self.post_attention_layernorm(x))

    class Llama(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed_tokens = nn.Embedding(shape["vocabSize"], d)
            self.layers = nn.ModuleList(Layer() for _ in range(shape["nLayers"]))
            self.norm = RMSNorm(d)
            self.lm_head = nn.Linear(d, shape["vocabSize"], bias=False)
            if shape["tieWordEmbeddings"]:
                self.lm_head.weight = self.embed_tokens.weight
            # float64 frequencies and angles, cos and sin rounded once to float32, as cream computes them.
            self.register_buffer("inv_freq", torch.tensor(rope_inverse_frequencies(shape), dtype=torch.float64), persistent=False)
            for module in self.modules():
                if isinstance(module, (nn.Linear, nn.Embedding)):
                    nn.init.normal_(module.weight, std=0.02)
                    if getattr(module, "bias", None) is not None:
                        nn.init.zeros_(module.bias)

        def hidden(self, ids, caches=None, start=0):
            """Final-norm hidden states [B, T, d]; with caches, reads and appends the keys and values at start.."""
            T = ids.shape[1]
            angles = torch.outer(torch.arange(start, start + T, dtype=torch.float64), self.inv_freq)
            angles = torch.cat((angles, angles), dim=-1)
            cos, sin = angles.cos().float(), angles.sin().float()
            x = self.embed_tokens(ids)
            for i, layer in enumerate(self.layers):
                x = layer(x, cos, sin, None if caches is None else caches[i], start)
            return self.norm(x)

    return Llama()


SAFETENSORS_DTYPES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64"}


def read_safetensors(torch, path):
    """The tensors of one .safetensors file as float32 (F32, F16, BF16 or F64 stored), by name."""
    with open(path, "rb") as file:
        (header_size,) = struct.unpack("<Q", file.read(8))
        header = json.loads(file.read(header_size))
        data = file.read()
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] not in SAFETENSORS_DTYPES:
            raise ValueError(f"{path}: tensor {name} has dtype {info['dtype']}; the baseline reads {', '.join(SAFETENSORS_DTYPES)}")
        start, end = info["data_offsets"]
        dtype = getattr(torch, SAFETENSORS_DTYPES[info["dtype"]])
        values = torch.frombuffer(bytearray(data[start:end]), dtype=dtype) if end > start else torch.zeros(0, dtype=dtype)
        tensors[name] = values.reshape(info["shape"]).float()
    return tensors


def checkpoint_name(name):
    """The Hugging Face tensor name of one of build_model's parameters."""
    return name if name.startswith("lm_head.") else "model." + name


def load_checkpoint(torch, model, directory):
    """Copies a Hugging Face checkpoint's weights (model.safetensors, or the shards its index names) into `model`;
    every parameter must be there with its shape (lm_head.weight is the embedding's when tied)."""
    index = os.path.join(directory, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as file:
            files = sorted(set(json.load(file)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    stored = {}
    for name in files:
        stored.update(read_safetensors(torch, os.path.join(directory, name)))
    parameters = dict(model.named_parameters())  # a tied lm_head.weight is listed once, as embed_tokens.weight
    with torch.no_grad():
        for name, parameter in parameters.items():
            key = checkpoint_name(name)
            if key not in stored:
                raise ValueError(f"{directory}: the checkpoint has no {key}")
            if tuple(stored[key].shape) != tuple(parameter.shape):
                raise ValueError(f"{directory}: {key} is {list(stored[key].shape)}, the model's shape is {list(parameter.shape)}")
            parameter.copy_(stored[key])


def timed(warmup, repeats, run):
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    return times


def median(values):
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def samples(values):
    return {"median": median(values), "samples": values}


def model_of(torch, case):
    """The case's model: its checkpoint's weights when it names one, else random weights from its seed."""
    torch.manual_seed(case["seed"])
    model = build_model(torch, case["shape"])
    if case.get("checkpoint"):
        load_checkpoint(torch, model, case["checkpoint"])
    return model


def optimizer_of(torch, model):
    """cream's AdamW: PyTorch's defaults, lr 1e-4, weight decay 0.01 on 2-D weights only."""
    matrices = [p for p in model.parameters() if p.dim() == 2]
    others = [p for p in model.parameters() if p.dim() != 2]
    return torch.optim.AdamW([{"params": matrices, "weight_decay": 0.01}, {"params": others, "weight_decay": 0.0}], lr=1e-4, betas=(0.9, 0.999), eps=1e-8)


def update(torch, model, optimizer, loss):
    """Backward, clipping to norm 1 and the AdamW step, as cream's trainSft step: (loss, gradient norm before clipping)."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    return loss.item(), norm.item()


def train_step(torch, model, optimizer, ids):
    """One step on rows of token ids [B, T]: cross-entropy of the T - 1 next tokens of every row."""
    logits = model.lm_head(model.hidden(ids)[:, :-1])  # [B, T-1, V]
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
    return update(torch, model, optimizer, loss)


def check(torch, case, rows, steps):
    """What `--check` prints: the logits [B, T, V] of `rows` (flat), then `steps` training steps on them (loss and
    gradient norm of each), then every weight by its checkpoint name (flat), for a test to compare with cream's."""
    model = model_of(torch, case)
    ids = torch.tensor(rows, dtype=torch.long)
    with torch.no_grad():
        logits = model.lm_head(model.hidden(ids)).flatten().tolist()
    optimizer = optimizer_of(torch, model)
    model.train()
    trace = [dict(zip(("loss", "gradNorm"), train_step(torch, model, optimizer, ids))) for _ in range(steps)]
    weights = {checkpoint_name(name): p.detach().flatten().tolist() for name, p in model.named_parameters()}
    return {"implementation": "pytorch", "logits": logits, "steps": trace, "weights": weights}


def measure(torch, case, threads):
    F = torch.nn.functional
    shape, work = case["shape"], case["workload"]
    V = shape["vocabSize"]
    model = model_of(torch, case)
    metrics = {}
    tokens = lambda *size: torch.randint(0, V, size)

    # One step on batch x seq tokens (fresh random rows each step), for "train" and "long".
    def training_steps(batch, seq):
        optimizer = optimizer_of(torch, model)
        batches = [tokens(batch, seq) for _ in range(case["warmup"] + case["repeats"])]
        model.train()
        return samples(timed(case["warmup"], case["repeats"], lambda: train_step(torch, model, optimizer, batches.pop())))

    if "train" in case["only"]:
        metrics["train_step_ms"] = training_steps(work["train"]["batch"], work["train"]["seq"])

    if "varied" in case["only"]:
        rows = work["varied"]["rows"]
        longest = max(row["prompt"] + row["response"] for row in rows)
        ids = torch.zeros(len(rows), longest, dtype=torch.long)  # right padding with id 0
        predicting = torch.zeros(len(rows), longest, dtype=torch.bool)  # positions whose next token is a response token
        for b, row in enumerate(rows):
            length = row["prompt"] + row["response"]
            ids[b, :length] = tokens(length)
            predicting[b, row["prompt"] - 1 : length - 1] = True
        targets = ids[:, 1:][predicting[:, :-1]]  # [N]
        optimizer = optimizer_of(torch, model)
        model.train()

        def varied_step():
            hidden = model.hidden(ids)[predicting]  # [N, d]
            return update(torch, model, optimizer, F.cross_entropy(model.lm_head(hidden), targets))

        metrics["train_varied_step_ms"] = samples(timed(case["warmup"], case["repeats"], varied_step))
        optimizer = None

    if "long" in case["only"]:
        metrics["train_long_step_ms"] = training_steps(work["long"]["batch"], work["long"]["seq"])

    model.eval()
    kv_heads, head_dim = shape["nKvHeads"], shape["headDim"]

    def greedy(prompts, new_tokens):
        B, P = prompts.shape
        caches = [(torch.zeros(B, kv_heads, P + new_tokens, head_dim), torch.zeros(B, kv_heads, P + new_tokens, head_dim)) for _ in range(shape["nLayers"])]
        next_token = model.lm_head(model.hidden(prompts, caches, 0)[:, -1]).argmax(-1)
        out = [next_token]
        for position in range(P, P + new_tokens - 1):
            next_token = model.lm_head(model.hidden(next_token[:, None], caches, position)[:, -1]).argmax(-1)
            out.append(next_token)
        return torch.stack(out, 1).tolist()

    with torch.inference_mode():
        if "score" in case["only"]:
            items, P, R = work["score"]["items"], work["score"]["prompt"], work["score"]["response"]
            rows = tokens(items, P + R)

            def score():
                hidden = model.hidden(rows[:, :-1])[:, P - 1 :]  # positions predicting the response tokens
                logprobs = F.log_softmax(model.lm_head(hidden), dim=-1).gather(-1, rows[:, P:, None]).squeeze(-1)
                return logprobs.sum(-1).tolist()

            times = timed(case["warmup"], case["repeats"], score)
            metrics["score_tokens_per_s"] = samples([items * (P + R) / (ms / 1000) for ms in times])

        if "generate" in case["only"]:
            gen = work["generate"]
            for batch in gen["batches"]:
                prompts = tokens(batch, gen["prompt"])
                times = timed(case["warmup"], case["repeats"], lambda: greedy(prompts, gen["newTokens"]))
                metrics[f"generate_b{batch}_tokens_per_s"] = samples([batch * gen["newTokens"] / (ms / 1000) for ms in times])

        if "prefill" in case["only"]:
            prompt = tokens(work["prefill"]["batch"], work["prefill"]["prompt"])
            metrics["prefill_ms"] = samples(timed(case["warmup"], case["repeats"], lambda: greedy(prompt, 1)))

    # ru_maxrss is in kibibytes on Linux: the peak resident set of this process.
    metrics["peak_rss_bytes"] = samples([resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024])
    return metrics


def loaded_blas():
    """The BLAS libraries this process loaded, relative to the system library directory (Debian's torch links the
    libblas.so.3 alternative: the reference BLAS in blas/, or OpenBLAS in openblas-openmp/ or openblas-pthread/)."""
    with open("/proc/self/maps") as maps:
        paths = sorted({line.split()[-1] for line in maps if re.search(r"/lib[^/]*blas[^/]*\.so", line)})
    return sorted({os.path.relpath(os.path.realpath(path), "/usr/lib/x86_64-linux-gnu") for path in paths})


def describe(torch, blas):
    coretype = os.environ.get("OPENBLAS_CORETYPE")
    threads = torch.get_num_threads()
    return (
        f"PyTorch {torch.__version__} CPU fp32 ({threads} thread{'' if threads == 1 else 's'}, BLAS {', '.join(blas) or 'none loaded'}, "
        f"OPENBLAS_CORETYPE {'unset' if coretype is None else '=' + coretype})"
    )


def main(argv):
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    torch.set_default_dtype(torch.float32)
    if args.check is not None:
        print(json.dumps(check(torch, args.case, args.check["rows"], args.check["steps"])))
        return 0
    metrics = measure(torch, args.case, args.threads)
    blas = loaded_blas()
    print(json.dumps({"implementation": "pytorch", "backend": describe(torch, blas), "threads": torch.get_num_threads(), "blas": blas, "metrics": metrics}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
