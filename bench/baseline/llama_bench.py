#!/usr/bin/env python3
"""PyTorch baseline of `cream bench`: the same Llama-style decoder (RMSNorm,
rotary embeddings, grouped-query causal attention, SwiGLU) and the same steps
as bench/src/ours.ts, on the case JSON that bench/src/cases.ts builds:

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
"""
import argparse
import json
import os
import re
import resource
import sys
import time

GROUPS = ("train", "varied", "long", "score", "generate", "prefill")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", required=True, help="the benchmark case as JSON (shape, workload, warmup, repeats, only, seed), as bench/src/cases.ts writes it")
    parser.add_argument("--threads", type=int, required=True, help="torch threads (cream bench passes the thread count of our backend)")
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
    return args


def build_model(torch, shape):
    nn = torch.nn
    F = torch.nn.functional
    d, heads, kv_heads, head_dim = shape["hiddenSize"], shape["nHeads"], shape["nKvHeads"], shape["headDim"]
    eps, theta = shape["rmsNormEps"], shape["ropeTheta"]

    class RMSNorm(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(d))

        def forward(self, x):
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * self.weight

    def rotate(x, cos, sin):
        half = x.shape[-1] // 2
        return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.q_proj = nn.Linear(d, heads * head_dim, bias=False)
            self.k_proj = nn.Linear(d, kv_heads * head_dim, bias=False)
            self.v_proj = nn.Linear(d, kv_heads * head_dim, bias=False)
            self.o_proj = nn.Linear(heads * head_dim, d, bias=False)

        def forward(self, x, cos, sin, cache, start):
            B, T, _ = x.shape
            q = rotate(self.q_proj(x).view(B, T, heads, head_dim).transpose(1, 2), cos, sin)
            k = rotate(self.k_proj(x).view(B, T, kv_heads, head_dim).transpose(1, 2), cos, sin)
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

    class Layer(nn.Module):
        def __init__(self):
            super().__init__()
            self.input_layernorm = RMSNorm()
            self.self_attn = Attention()
            self.post_attention_layernorm = RMSNorm()
            self.gate_proj = nn.Linear(d, shape["intermediateSize"], bias=False)
            self.up_proj = nn.Linear(d, shape["intermediateSize"], bias=False)
            self.down_proj = nn.Linear(shape["intermediateSize"], d, bias=False)

        def forward(self, x, cos, sin, cache, start):
            x = x + self.self_attn(self.input_layernorm(x), cos, sin, cache, start)
            h = self.post_attention_layernorm(x)
            return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))

    class Llama(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed_tokens = nn.Embedding(shape["vocabSize"], d)
            self.layers = nn.ModuleList(Layer() for _ in range(shape["nLayers"]))
            self.norm = RMSNorm()
            self.lm_head = nn.Linear(d, shape["vocabSize"], bias=False)
            if shape["tieWordEmbeddings"]:
                self.lm_head.weight = self.embed_tokens.weight
            self.register_buffer("inv_freq", 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim), persistent=False)
            for module in self.modules():
                if isinstance(module, (nn.Linear, nn.Embedding)):
                    nn.init.normal_(module.weight, std=0.02)

        def hidden(self, ids, caches=None, start=0):
            """Final-norm hidden states [B, T, d]; with caches, reads and appends the keys and values at start.."""
            T = ids.shape[1]
            angles = torch.outer(torch.arange(start, start + T, dtype=torch.float32), self.inv_freq)
            angles = torch.cat((angles, angles), dim=-1)
            cos, sin = angles.cos(), angles.sin()
            x = self.embed_tokens(ids)
            for i, layer in enumerate(self.layers):
                x = layer(x, cos, sin, None if caches is None else caches[i], start)
            return self.norm(x)

    return Llama()


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


def measure(torch, case, threads):
    F = torch.nn.functional
    shape, work = case["shape"], case["workload"]
    V = shape["vocabSize"]
    torch.manual_seed(case["seed"])
    model = build_model(torch, shape)
    metrics = {}
    tokens = lambda *size: torch.randint(0, V, size)

    def optimizer_of():
        matrices = [p for p in model.parameters() if p.dim() == 2]
        others = [p for p in model.parameters() if p.dim() != 2]
        return torch.optim.AdamW(
            [{"params": matrices, "weight_decay": 0.01}, {"params": others, "weight_decay": 0.0}], lr=1e-4, betas=(0.9, 0.999), eps=1e-8
        )

    def update(optimizer, loss):
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        return loss.item()

    # One step on batch x seq tokens (fresh random rows each step), for "train" and "long".
    def training_steps(batch, seq):
        optimizer = optimizer_of()
        batches = [tokens(batch, seq) for _ in range(case["warmup"] + case["repeats"])]
        model.train()

        def step():
            ids = batches.pop()
            logits = model.lm_head(model.hidden(ids)[:, :-1])  # [B, T-1, V]
            return update(optimizer, F.cross_entropy(logits.reshape(-1, V), ids[:, 1:].reshape(-1)))

        return samples(timed(case["warmup"], case["repeats"], step))

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
        optimizer = optimizer_of()
        model.train()

        def varied_step():
            hidden = model.hidden(ids)[predicting]  # [N, d]
            return update(optimizer, F.cross_entropy(model.lm_head(hidden), targets))

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
    metrics = measure(torch, args.case, args.threads)
    blas = loaded_blas()
    print(json.dumps({"implementation": "pytorch", "backend": describe(torch, blas), "threads": torch.get_num_threads(), "blas": blas, "metrics": metrics}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
