"""The SoA -> PyTorch bridge: zero-copy tensors and models in place vs the copy path.

Reproduces the comparison of the CMS poster (conversion time linear in the input
size through copies, flat without them; inference in place vs through copies) on
the GPU when torch sees one (with portable's cuda backend), and on the CPU.

All data lives in one collection per size of layout ``MLFeatures``: float32 columns
c0..c15 (the features) then o0, o1 (the model's outputs).

1. Conversion, for N in {1e3, 1e4, 1e5, 1e6, 1e7} rows (quick: 1e3, 1e5) and blocks of
   the first k in {3, 16} columns:

   * ``zero_copy``        ``meta.tensor("features")``: a strided (N, k) tensor over the
                          collection's memory (strides (1, pitch)); K calls back to back,
                          then one synchronize (GPU); R samples, every (N, k) sampled
                          round-robin; host microseconds per call.
   * ``zero_copy_uncached`` (diagnostic) the same with the bridge's per-collection cache
                          of the flat buffer tensor dropped before each call (wrapping the
                          buffer through ``__cuda_array_interface__`` / ``from_numpy``
                          each time: what the anchor's 12-20 us measured).
   * ``copy_path``        what the poster compares against. GPU: each of the k columns
                          device -> host (numba ``copy_to_host``, pageable), ``np.stack``
                          into (N, k), ``torch.from_numpy(..).to("cuda")``, synchronize.
                          CPU: ``np.stack`` of the k columns + ``torch.from_numpy`` (one
                          copy). Each call timed alone (perf_counter + synchronize), as
                          many samples as fit a time budget (>= 10).

   Every tensor is checked first: the zero-copy tensor starts at column c0's address
   (no copy) and equals the copy path's tensor element by element.

   Targets: zero-copy median <= 5 us at every N, and flat in N: max/min of the
   medians across N <= 1.25.

2. Inference on 1e6 rows (quick 1e4): an MLP 16 -> 64 -> 64 -> 2 (ReLU, seed 0, float32,
   eval, inference_mode), and a GNN on 1e5 nodes (quick 1e4): an EdgeConv-like network
   (node encoder 16 -> 32; 2 rounds of message passing over a fixed random edge index,
   8 edges per node: gather both ends, Linear(64 -> 32) + ReLU on [h_i, h_j - h_i],
   ``index_add_`` onto the centre node, residual; head 32 -> 2).

   * ``in_place``         ``ml.Model(net).to(queue)(ml.ModelMetadata(inputs, outputs))``:
                          inputs the (N, 16) block c0..c15 (strided), outputs the (N, 2)
                          block o0, o1, written with one device-side copy.
   * ``model_alone``      ``net(x)`` on a contiguous (N, 16) tensor already on the device.
   * ``model_strided``    (diagnostic) ``net(meta.tensor("in"))``: the model alone on the
                          strided block, no output copy; splits the in-place overhead into
                          the strided input and the rest (output copy + bridge).
   * ``copy_path``        device -> host of the 16 columns, ``np.stack``, host -> device,
                          the model, the (N, 2) result back to the host and into the
                          collection's o0, o1 columns (host -> device on the GPU).

   Timing: warm-up, then >= 20 samples. ``wall_ms``: host perf_counter around one
   call, synchronized before and after (every variant, both devices; in_place,
   model_alone and model_strided round-robin, the copy path on its own after them).
   GPU ``device_ms``: torch CUDA events around one call on the queue's stream, with an
   untimed call enqueued just before so the host's launch overhead stays out (in_place,
   model_alone, model_strided, round-robin). Outputs are poisoned (NaN) and checked
   against the model alone before timing, for the in-place and the copy paths.

   Target: in_place <= 1.03 x model_alone (GPU: device time; CPU: wall time). The wall
   ratio is reported too.

3. The JSON record (``ml_bridge_<device-slug>.json``) holds the device, date, versions,
   parameters, every figure (median, min, quartiles, spread, samples), the targets with
   ``met`` flags and an ``analysis`` string per part written from the numbers.

Run: ``python benchmarks/ml_bridge.py [--quick] [--out DIR] [--no-gpu] [--no-cpu]``
     (``--cpu-max-rows``, ``--cpu-mlp-rows``, ``--cpu-gnn-nodes`` shrink the CPU part);
plot: ``python benchmarks/plot_ml_bridge.py RECORD.json``.
"""
from __future__ import annotations

import contextlib
import math
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

import common  # noqa: E402
import portable as pt  # noqa: E402

warnings.filterwarnings("ignore", message=r".*Grid size .* will likely result in GPU under-utilization.*")
with contextlib.suppress(Exception):
    from numba.core.errors import NumbaPerformanceWarning
    warnings.simplefilter("ignore", NumbaPerformanceWarning)

ROWS_FULL = [10**3, 10**4, 10**5, 10**6, 10**7]
ROWS_QUICK = [10**3, 10**5]
COLUMN_COUNTS = (3, 16)
NFEAT, NOUT = 16, 2
HIDDEN = 64
GNN_HIDDEN, GNN_ROUNDS, GNN_DEGREE = 32, 2, 8
SEED = 0

ZERO_COPY_TARGET_US = 5.0
FLAT_MAX_RATIO = 1.25
INPLACE_TARGET_RATIO = 1.03

FEATURES = [f"c{i}" for i in range(NFEAT)]
OUTPUTS = [f"o{j}" for j in range(NOUT)]
MLFeatures = pt.Layout.define(
    "MLFeatures", [(name, pt.column(np.float32)) for name in FEATURES + OUTPUTS])


# ----------------------------------------------------------------------------- models
def build_mlp(torch: Any) -> Any:
    """MLP 16 -> 64 -> 64 -> 2, fixed seed, float32, eval."""
    torch.manual_seed(SEED)
    nn = torch.nn
    net = nn.Sequential(nn.Linear(NFEAT, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN),
                        nn.ReLU(), nn.Linear(HIDDEN, NOUT))
    return net.float().eval()


def build_gnn(torch: Any, nodes: int) -> Any:
    """An EdgeConv-like message-passing network over a fixed random graph."""
    nn = torch.nn

    class EdgeConvNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            gen = torch.Generator().manual_seed(SEED + 1)
            centre = torch.arange(nodes, dtype=torch.int64).repeat_interleave(GNN_DEGREE)
            neighbour = torch.randint(0, nodes, (nodes * GNN_DEGREE,), generator=gen,
                                      dtype=torch.int64)
            self.register_buffer("centre", centre)
            self.register_buffer("neighbour", neighbour)
            torch.manual_seed(SEED)
            self.encode = nn.Linear(NFEAT, GNN_HIDDEN)
            self.edge = nn.ModuleList([nn.Linear(2 * GNN_HIDDEN, GNN_HIDDEN)
                                       for _ in range(GNN_ROUNDS)])
            self.head = nn.Linear(GNN_HIDDEN, NOUT)

        def forward(self, x: Any) -> Any:
            h = torch.relu(self.encode(x))
            for layer in self.edge:
                hi = h.index_select(0, self.centre)
                hj = h.index_select(0, self.neighbour)
                msg = torch.relu(layer(torch.cat([hi, hj - hi], dim=1)))
                agg = torch.zeros_like(h).index_add_(0, self.centre, msg)
                h = h + agg * (1.0 / GNN_DEGREE)
            return self.head(h)

    return EdgeConvNet().float().eval()


# ----------------------------------------------------------------------------- contexts
class Ctx:
    """One side of the comparison: a portable device and queue, the torch device, how to
    synchronize, and the column copies of the copy path."""

    def __init__(self, torch: Any, device: Any, queue: Any, tdev: Any, gpu: bool,
                 stream: Any = None) -> None:
        self.torch, self.device, self.queue, self.tdev, self.gpu = torch, device, queue, tdev, gpu
        self.stream = stream  # torch stream the queue runs on (GPU)

    def sync(self) -> None:
        if self.gpu:
            self.torch.cuda.synchronize()

    def stream_ctx(self) -> Any:
        if self.gpu and self.stream is not None:
            return self.torch.cuda.stream(self.stream)
        return contextlib.nullcontext()

    def columns_to_host(self, coll: Any, names: list[str]) -> list[np.ndarray]:
        """The columns as host arrays: copies from a GPU, views on the CPU."""
        if not self.gpu:
            return [coll.column(name) for name in names]
        native = self.queue.native
        cols = [coll.column(name).copy_to_host(stream=native) for name in names]
        native.synchronize()
        return cols

    def stacked_tensor_torch(self, coll: Any, names: list[str]) -> Any:
        """The copy path with torch doing the device -> host copies (GPU diagnostic): each
        column wrapped through ``__cuda_array_interface__`` and copied with ``.cpu()``."""
        torch = self.torch
        cols = [torch.as_tensor(coll.column(name), device=self.tdev).cpu().numpy()
                for name in names]
        return torch.from_numpy(np.stack(cols, axis=1)).to(self.tdev)

    def stacked_tensor(self, coll: Any, names: list[str]) -> Any:
        """The copy path: columns to the host, stacked, to a torch tensor on the device."""
        x = np.stack(self.columns_to_host(coll, names), axis=1)
        t = self.torch.from_numpy(x)
        return t.to(self.tdev) if self.gpu else t

    def result_into_columns(self, coll: Any, y: Any) -> None:
        """The copy path's way back: the (N, 2) result to the host, into the columns."""
        host = y.cpu().numpy() if self.gpu else y.numpy()
        for j, name in enumerate(OUTPUTS):
            part = np.ascontiguousarray(host[:, j])
            if self.gpu:
                pt.memcpy(self.queue, coll.column(name), part)
            else:
                coll.column(name)[:] = part
        self.queue.synchronize()


def make_collection(ctx: Ctx, n: int, rng: np.random.Generator) -> Any:
    """A collection of ``n`` rows on ``ctx``'s device with random features, NaN outputs."""
    host = pt.PortableCollection(MLFeatures, n, pt.get_device("cpu_serial"))
    for name in FEATURES:
        host.column(name)[:] = rng.standard_normal(n, dtype=np.float32)
    for name in OUTPUTS:
        host.column(name)[:] = np.nan
    if not ctx.gpu:
        return host
    dev = host.to(ctx.queue)
    ctx.queue.synchronize()
    return dev


def column_address(coll: Any, name: str) -> int:
    col = coll.column(name)
    iface = getattr(col, "__cuda_array_interface__", None) or col.__array_interface__
    return int(iface["data"][0])


def make_meta(ml: Any, coll: Any, name: str, members: list[str]) -> Any:
    meta = ml.SoAMetadata(coll)
    meta.append_block(name, *members)
    return meta


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def loglog_slope(xs: list[float], ys: list[float]) -> float | None:
    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys) if x > 0 and y and y > 0]
    if len(pts) < 2:
        return None
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    den = sum((p[0] - mx) ** 2 for p in pts)
    return sum((p[0] - mx) * (p[1] - my) for p in pts) / den if den else None


def adaptive_samples(run: Callable[[], Any], sync: Callable[[], Any], *, budget_s: float,
                     min_rep: int, max_rep: int, warmup: int) -> list[float]:
    """Seconds per call of ``run`` (one call per sample, synchronized), as many samples as
    fit ``budget_s`` within [min_rep, max_rep]."""
    for _ in range(warmup):
        run()
    sync()
    t0 = time.perf_counter()
    run()
    sync()
    one = max(time.perf_counter() - t0, 1e-7)
    repeat = max(min_rep, min(max_rep, int(budget_s / one)))
    return common.time_host(run, repeat=repeat, warmup=0, sync=sync)


# ----------------------------------------------------------------------------- conversion
def conversion_section(ctx: Ctx, ml: Any, rows: list[int], rng: np.random.Generator,
                       cfg: dict[str, Any]) -> dict[str, Any]:
    torch = ctx.torch
    from ml import tensors as ml_tensors  # the bridge's cache, dropped by the diagnostic
    colls = {n: make_collection(ctx, n, rng) for n in rows}
    metas = {(n, k): make_meta(ml, colls[n], "features", FEATURES[:k])
             for n in rows for k in COLUMN_COUNTS}
    checks: dict[str, Any] = {}

    # correctness: no copy, same values as the copy path
    for (n, k), meta in metas.items():
        t = meta.tensor("features")
        pitch = MLFeatures.geometry(colls[n].capacity)["c0"].pitch
        if tuple(t.shape) != (n, k) or tuple(t.stride()) != (1, pitch):
            raise RuntimeError(f"zero-copy tensor N={n} k={k}: shape {tuple(t.shape)} strides "
                               f"{tuple(t.stride())}, expected ({n}, {k}) (1, {pitch})")
        if t.data_ptr() != column_address(colls[n], "c0"):
            raise RuntimeError(f"zero-copy tensor N={n} k={k} does not start at column c0")
        ref = ctx.stacked_tensor(colls[n], FEATURES[:k])
        ctx.sync()
        if ref.device != t.device or not bool(torch.equal(ref, t)):
            raise RuntimeError(f"zero-copy tensor N={n} k={k} differs from the copy path")
        del ref
        checks[f"N={n} k={k}"] = f"strides (1, {pitch}), shares memory, equals copy path"
    ctx.sync()

    # zero-copy, every (N, k) round-robin
    calls, repeat = cfg["calls"], cfg["zc_repeat"]
    variants = {f"{n}|{k}": ((lambda m=meta: m.tensor("features")), ctx.sync)
                for (n, k), meta in metas.items()}
    raw = common.time_host_interleaved(variants, repeat=repeat, warmup=min(calls, 200),
                                       inner=calls)
    zero_copy = {name: common.summarize([s * 1e6 for s in xs], "us") for name, xs in raw.items()}

    # diagnostic: the buffer wrapped anew each call (cache dropped)
    def uncached(coll: Any, meta: Any) -> Any:
        ml_tensors._bases.pop(coll, None)
        return meta.tensor("features")
    ucalls = max(10, calls // 10)
    uvariants = {f"{n}|{k}": ((lambda c=colls[n], m=meta: uncached(c, m)), ctx.sync)
                 for (n, k), meta in metas.items()}
    raw = common.time_host_interleaved(uvariants, repeat=repeat, warmup=min(ucalls, 20),
                                       inner=ucalls)
    zero_copy_uncached = {name: common.summarize([s * 1e6 for s in xs], "us")
                          for name, xs in raw.items()}
    for meta in metas.values():  # refill the cache
        meta.tensor("features")

    # the copy path, each (N, k) on its own
    copy_path: dict[str, Any] = {}
    copy_path_torch: dict[str, Any] = {}  # GPU diagnostic: torch does the column copies
    copy_path_torch_skipped = None if ctx.gpu else "GPU only"
    for n in rows:
        for k in COLUMN_COUNTS:
            names = FEATURES[:k]
            xs = adaptive_samples(lambda c=colls[n], nm=names: ctx.stacked_tensor(c, nm),
                                  ctx.sync, budget_s=cfg["copy_budget_s"],
                                  min_rep=cfg["copy_min_rep"], max_rep=cfg["copy_max_rep"],
                                  warmup=2)
            copy_path[f"{n}|{k}"] = common.summarize([s * 1e6 for s in xs], "us")
            if ctx.gpu:
                try:
                    chk = ctx.stacked_tensor_torch(colls[n], names)
                    ctx.sync()
                    if not bool(torch.equal(chk, metas[(n, k)].tensor("features"))):
                        raise RuntimeError(f"torch copy path N={n} k={k} differs")
                    del chk
                    xs = adaptive_samples(
                        lambda c=colls[n], nm=names: ctx.stacked_tensor_torch(c, nm),
                        ctx.sync, budget_s=cfg["copy_budget_s"] / 2,
                        min_rep=cfg["copy_min_rep"], max_rep=cfg["copy_max_rep"], warmup=2)
                    copy_path_torch[f"{n}|{k}"] = common.summarize([s * 1e6 for s in xs], "us")
                except Exception as err:  # noqa: BLE001 - a diagnostic only
                    copy_path_torch_skipped = f"failed: {type(err).__name__}: {err}"
            if ctx.gpu:
                torch.cuda.empty_cache()

    results: dict[str, Any] = {"zero_copy": {}, "copy_path": {}, "zero_copy_uncached": {}}
    tables = [("zero_copy", zero_copy), ("copy_path", copy_path),
              ("zero_copy_uncached", zero_copy_uncached)]
    if copy_path_torch:
        results["copy_path_torch"] = {}
        tables.append(("copy_path_torch", copy_path_torch))
    for label, table in tables:
        for k in COLUMN_COUNTS:
            results[label][f"k{k}"] = [dict(rows=n, **table[f"{n}|{k}"]) for n in rows
                                       if f"{n}|{k}" in table]

    flatness, per_k, analysis = {}, {}, []
    for k in COLUMN_COUNTS:
        zc = [e["median"] for e in results["zero_copy"][f"k{k}"]]
        cp = [e["median"] for e in results["copy_path"][f"k{k}"]]
        flat = max(zc) / min(zc) if min(zc) else None
        big = [n for n in rows if n >= 10**5]
        slope = loglog_slope([float(n) for n in big],
                             [results["copy_path"][f"k{k}"][rows.index(n)]["median"]
                              for n in big]) if len(big) >= 2 else None
        flatness[f"k{k}"] = {"max_over_min": flat, "zero_copy_max_us": max(zc),
                             "zero_copy_min_us": min(zc)}
        per_k[f"k{k}"] = {
            "copy_over_zero_copy": {str(n): ratio(c, z) for n, c, z in zip(rows, cp, zc)},
            "copy_path_loglog_slope_ge_1e5": slope}
        analysis.append(
            f"k={k}: zero-copy {min(zc):.2f}-{max(zc):.2f} us per call across N="
            f"{rows[0]:,}..{rows[-1]:,} (max/min {flat:.2f}); the copy path goes from "
            f"{cp[0]:.1f} us to {cp[-1] / 1e3:.2f} ms"
            + (f", log-log slope {slope:.2f} for N >= 1e5 (1 = linear in N)"
               if slope is not None else "")
            + f"; at N={rows[-1]:,} the copy path costs {cp[-1] / zc[-1]:,.0f} x zero-copy.")
    if copy_path_torch:
        tk = [e["median"] for e in results["copy_path_torch"]["k3"]]
        nk = [e["median"] for e in results["copy_path"]["k3"]]
        if tk and len(tk) == len(nk):
            analysis.append(
                f"With torch doing the column copies instead of numba's copy_to_host, the "
                f"3-column copy path takes {tk[0]:.1f} us at N={rows[0]:,} and "
                f"{tk[-1] / 1e3:.2f} ms at N={rows[-1]:,} (numba: {nk[0]:.1f} us, "
                f"{nk[-1] / 1e3:.2f} ms); the gap at small N is per-copy host overhead.")
    zc_un = [e["median"] for k in COLUMN_COUNTS for e in results["zero_copy_uncached"][f"k{k}"]]
    analysis.append(f"Without the bridge's cached flat tensor (buffer wrapped anew each call) "
                    f"a tensor costs {min(zc_un):.1f}-{max(zc_un):.1f} us, also flat in N.")

    all_zc = [e["median"] for k in COLUMN_COUNTS for e in results["zero_copy"][f"k{k}"]]
    worst_flat = max(f["max_over_min"] or float("inf") for f in flatness.values())
    targets = {
        "zero_copy_us": {"what": "median host us per meta.tensor() call, worst (N, k)",
                         "target": f"<= {ZERO_COPY_TARGET_US}", "value": max(all_zc),
                         "met": max(all_zc) <= ZERO_COPY_TARGET_US},
        "zero_copy_flat": {"what": "max/min of the zero-copy medians across N, worst k",
                           "target": f"<= {FLAT_MAX_RATIO}", "value": worst_flat,
                           "met": worst_flat <= FLAT_MAX_RATIO},
    }
    del metas, colls
    ctx.sync()
    if ctx.gpu:
        torch.cuda.empty_cache()
    return {"rows": rows, "columns": list(COLUMN_COUNTS),
            "calls_per_sample": calls, "samples": repeat, "uncached_calls_per_sample": ucalls,
            "copy_path_method": (
                "per column numba copy_to_host (pageable) on the queue's stream, np.stack, "
                "torch.from_numpy(..).to(cuda), synchronize" if ctx.gpu else
                "np.stack of the column views + torch.from_numpy (one copy)"),
            "copy_path_torch_method": (
                "diagnostic: per column torch.as_tensor(column).cpu(), np.stack, "
                "torch.from_numpy(..).to(cuda)" if ctx.gpu else None),
            "copy_path_torch_skipped": copy_path_torch_skipped,
            "checks": checks, "results": results, "flatness": flatness, "ratios": per_k,
            "targets": targets, "analysis": " ".join(analysis)}


# ----------------------------------------------------------------------------- inference
def gpu_event_samples(ctx: Ctx, variants: dict[str, Callable[[], Any]], repeat: int,
                      warmup: int) -> dict[str, list[float]]:
    """Device ms per call between torch CUDA events on the current stream, round-robin,
    an untimed call enqueued before each timed one."""
    timer = common.TorchTimer(ctx.torch)
    for run in variants.values():
        for _ in range(warmup):
            run()
    timer.synchronize()
    out: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeat):
        for name, run in variants.items():
            run()  # keeps the GPU busy while the start event and the timed call are enqueued
            start = timer.record()
            run()
            end = timer.record()
            out[name].append(timer.elapsed_ms(start, end))
    timer.synchronize()
    return out


def in_place_parts(ctx: Ctx, model: Any, inputs: Any, outputs: Any, out_view: Any, net: Any,
                   x: Any, cfg: dict[str, Any]) -> dict[str, Any]:
    """Diagnostic: host us per call of the pieces the in-place path adds to the model
    (K calls back to back, synchronized at the end; median of 5 samples)."""
    torch = ctx.torch
    inner = cfg["parts_calls"]
    parts: dict[str, Any] = {"calls_per_sample": inner}
    try:
        from ml import model as ml_model
        with torch.inference_mode():
            y = net(x)
        ctx.sync()

        def per_call(run: Callable[[], Any]) -> float:
            xs = common.time_host(run, repeat=5, warmup=min(inner, 20), sync=ctx.sync,
                                  inner=inner)
            return common.summarize([v * 1e6 for v in xs], "us")["median"]

        def stream_and_mode() -> None:
            with ml_model._on_stream(ctx.queue), torch.inference_mode():
                pass

        def output_copy() -> None:
            with torch.inference_mode():
                out_view.copy_(y)

        parts["block_tensors"] = per_call(lambda: (inputs.tensors(),
                                                   outputs.tensor(outputs.order[0])))
        parts["stream_and_inference_mode"] = per_call(stream_and_mode)
        parts["output_copy"] = per_call(output_copy)
        parts["note"] = ("block_tensors: the input and output tensors; "
                         "stream_and_inference_mode: entering the queue's stream (a "
                         "torch.cuda.ExternalStream on the GPU) and inference_mode; "
                         "output_copy: the (N, 2) result copied into the o0, o1 columns "
                         "(device time included when it dominates)")
        del y
    except Exception as err:  # noqa: BLE001 - a diagnostic only
        parts["skipped"] = f"failed: {type(err).__name__}: {err}"
    return parts


def inference_case(ctx: Ctx, ml: Any, name: str, net: Any, n: int, rng: np.random.Generator,
                   cfg: dict[str, Any]) -> dict[str, Any]:
    torch = ctx.torch
    coll = make_collection(ctx, n, rng)
    inputs = make_meta(ml, coll, "in", FEATURES)
    outputs = make_meta(ml, coll, "out", OUTPUTS)
    x_strided = inputs.tensor("in")
    out_view = outputs.tensor("out")
    x_contig = x_strided.contiguous()
    net = net.to(ctx.tdev).eval()
    model = ml.Model(net).to(ctx.queue)
    mmeta = ml.ModelMetadata(inputs, outputs)
    ctx.sync()

    def in_place() -> None:
        model(mmeta)

    def model_alone() -> Any:
        with torch.inference_mode():
            return net(x_contig)

    def model_strided() -> Any:
        with torch.inference_mode():
            return net(inputs.tensor("in"))

    def copy_path() -> None:
        x = ctx.stacked_tensor(coll, FEATURES)
        with torch.inference_mode():
            y = net(x)
        ctx.result_into_columns(coll, y)

    checks: dict[str, Any] = {}
    tol = dict(rtol=1e-4, atol=1e-4)
    with ctx.stream_ctx():
        with torch.inference_mode():
            ref = net(x_contig).float()
        ctx.sync()
        for label, run in (("in_place", in_place), ("copy_path", copy_path)):
            out_view.fill_(float("nan"))
            ctx.sync()
            run()
            ctx.sync()
            got = out_view.clone()
            err = float((got - ref).abs().max()) if got.shape == ref.shape else float("nan")
            ok = bool(torch.allclose(got, ref, **tol))
            checks[label] = {"max_abs_diff_vs_model_alone": err, "ok": ok}
            if not ok:
                raise RuntimeError(f"{name} {label}: outputs differ from the model alone "
                                   f"(max |diff| {err})")
        with torch.inference_mode():
            err = float((net(x_strided) - ref).abs().max())
        checks["model_strided"] = {"max_abs_diff_vs_model_alone": err}
        del ref, got
        ctx.sync()

        variants = {"in_place": in_place, "model_alone": model_alone,
                    "model_strided": model_strided, "copy_path": copy_path}
        # the three in-device variants round-robin; the copy path on its own afterwards, so
        # its host allocations and pageable copies do not disturb the others' samples
        wall_raw = common.time_host_interleaved(
            {k: (v, ctx.sync) for k, v in variants.items() if k != "copy_path"},
            repeat=cfg["inf_repeat"], warmup=cfg["inf_warmup"], inner=1)
        wall_raw["copy_path"] = common.time_host(copy_path, repeat=cfg["inf_repeat"],
                                                 warmup=cfg["inf_warmup"], sync=ctx.sync)
        wall = {k: common.summarize([s * 1e3 for s in xs], "ms") for k, xs in wall_raw.items()}
        pieces = in_place_parts(ctx, model, inputs, outputs, out_view, net, x_contig, cfg)
        device_ms = None
        if ctx.gpu:
            dev_raw = gpu_event_samples(
                ctx, {k: variants[k] for k in ("in_place", "model_alone", "model_strided")},
                repeat=cfg["inf_repeat"], warmup=cfg["inf_warmup"])
            device_ms = {k: common.summarize(xs, "ms") for k, xs in dev_raw.items()}
        ctx.sync()

    med = {k: v["median"] for k, v in wall.items()}
    basis = device_ms if device_ms is not None else wall
    bmed = {k: v["median"] for k, v in basis.items()}
    r_target = ratio(bmed["in_place"], bmed["model_alone"])
    r_strided = ratio(bmed["model_strided"], bmed["model_alone"])
    r_wall = ratio(med["in_place"], med["model_alone"])
    r_copy = ratio(med["copy_path"], med["in_place"])
    basis_name = "device time (CUDA events)" if device_ms is not None else "wall time"
    rest = bmed["in_place"] - bmed["model_strided"]
    stride_cost = bmed["model_strided"] - bmed["model_alone"]
    verdict = "met" if r_target is not None and r_target <= INPLACE_TARGET_RATIO else "NOT met"
    parts = [
        f"{name} on {n:,} rows, {basis_name}: in place {bmed['in_place']:.3f} ms vs model alone "
        f"on a contiguous tensor {bmed['model_alone']:.3f} ms, ratio {r_target:.3f} "
        f"(target <= {INPLACE_TARGET_RATIO}: {verdict}).",
        f"The model alone on the strided (N, 16) block takes {bmed['model_strided']:.3f} ms "
        f"(ratio {r_strided:.3f}): the strided input "
        + (f"costs {stride_cost:.3f} ms ({100 * (r_strided - 1):.1f}%)"
           if r_strided > 1.01 else "costs nothing measurable")
        + (f", and {rest:.3f} ms more is the output copy into o0, o1 and the bridge's "
           f"overhead." if rest > 0 else "; the output copy and the bridge add nothing "
                                          "measurable."),
    ]
    if device_ms is not None:
        parts.append(f"Wall time (host, synchronized): in place {med['in_place']:.3f} ms vs "
                     f"model alone {med['model_alone']:.3f} ms (ratio {r_wall:.3f}).")
        gap_wall = med["in_place"] - med["model_strided"]
        gap_dev = bmed["in_place"] - bmed["model_strided"]
        if gap_wall > max(0.02, 2 * gap_dev):
            parts.append(
                f"The wall gap between ml.Model and the bare model on the same strided input "
                f"({gap_wall:.3f} ms) exceeds the device gap ({gap_dev:.3f} ms): it is host "
                f"time spent in ml.Model per call (measured pieces: block tensors "
                f"{pieces.get('block_tensors') or float('nan'):.1f} us, stream switch + "
                f"inference_mode {pieces.get('stream_and_inference_mode') or float('nan'):.1f}"
                f" us, output copy {pieces.get('output_copy') or float('nan'):.1f} us), which "
                f"a synchronized call pays but pipelined calls hide behind GPU work.")
    if r_copy is not None and r_copy >= 1.05:
        parts.append(f"The copy path takes {med['copy_path']:.3f} ms wall, {r_copy:.1f} x the "
                     f"in-place path ({med['copy_path'] - med['in_place']:.3f} ms saved per "
                     f"call).")
    else:
        parts.append(f"The copy path takes {med['copy_path']:.3f} ms wall, {r_copy:.2f} x the "
                     f"in-place path: within this machine's noise, the model's own time "
                     f"dominates both.")
    if r_target is not None and r_target > INPLACE_TARGET_RATIO and r_strided > 1.01 \
            and stride_cost > 0.5 * (bmed["in_place"] - bmed["model_alone"]):
        parts.append("Most of the gap to the model alone comes from the strided input "
                     "(column-major (N, 16) with stride pitch): the in-place path is slower "
                     "than a contiguous copy would make the model itself.")
    result = {
        "rows": n, "model": repr(net).replace("\n", " ") if name == "mlp" else
        f"EdgeConvNet(encode {NFEAT}->{GNN_HIDDEN}, {GNN_ROUNDS} rounds Linear"
        f"({2 * GNN_HIDDEN}->{GNN_HIDDEN})+ReLU over {GNN_DEGREE} edges/node with index_add_, "
        f"head {GNN_HIDDEN}->{NOUT})",
        "parameters": int(sum(p.numel() for p in net.parameters())),
        "input": {"shape": list(x_strided.shape), "strides": list(x_strided.stride())},
        "output": {"shape": list(out_view.shape), "strides": list(out_view.stride())},
        "checks": checks, "wall_ms": wall, "device_ms": device_ms,
        "in_place_parts_us": pieces,
        "target_basis": basis_name,
        "ratios": {"in_place_over_model_alone": r_target,
                   "model_strided_over_model_alone": r_strided,
                   "in_place_over_model_alone_wall": r_wall,
                   "copy_path_over_in_place_wall": r_copy},
        "analysis": " ".join(parts),
    }
    del model, mmeta, inputs, outputs, x_strided, x_contig, out_view, coll
    ctx.sync()
    if ctx.gpu:
        torch.cuda.empty_cache()
    return result


def inference_section(ctx: Ctx, ml: Any, mlp_rows: int, gnn_nodes: int,
                      rng: np.random.Generator, cfg: dict[str, Any]) -> dict[str, Any]:
    torch = ctx.torch
    out: dict[str, Any] = {}
    out["mlp"] = inference_case(ctx, ml, "mlp", build_mlp(torch), mlp_rows, rng, cfg)
    try:
        out["gnn"] = inference_case(ctx, ml, "gnn", build_gnn(torch, gnn_nodes), gnn_nodes,
                                    rng, cfg)
    except Exception as err:  # noqa: BLE001 - keep the MLP figures
        common.note(f"GNN failed: {type(err).__name__}: {err}")
        out["gnn"] = {"skipped": f"failed: {type(err).__name__}: {err}"}
    targets = {}
    for name in ("mlp", "gnn"):
        case = out[name]
        if "ratios" not in case:
            continue
        r = case["ratios"]["in_place_over_model_alone"]
        targets[f"{name}_in_place_vs_model_alone"] = {
            "what": f"{name}: in-place ml.Model / model alone on a contiguous tensor "
                    f"({case['target_basis']})",
            "target": f"<= {INPLACE_TARGET_RATIO}", "value": r,
            "met": None if r is None else r <= INPLACE_TARGET_RATIO}
    out["targets"] = targets
    return out


# ----------------------------------------------------------------------------- sections
def run_section(ctx: Ctx, ml: Any, label: str, rows: list[int], mlp_rows: int,
                gnn_nodes: int, cfg: dict[str, Any]) -> dict[str, Any]:
    torch = ctx.torch
    rng = np.random.default_rng(SEED)
    section: dict[str, Any] = {"device": label, "torch_device": str(ctx.tdev),
                               "torch_threads": torch.get_num_threads()}
    with ctx.stream_ctx():
        try:
            section["conversion"] = conversion_section(ctx, ml, rows, rng, cfg)
        except Exception as err:  # noqa: BLE001 - keep the inference figures
            common.note(f"{label}: conversion failed: {type(err).__name__}: {err}")
            section["conversion"] = {"skipped": f"failed: {type(err).__name__}: {err}"}
    try:
        section["inference"] = inference_section(ctx, ml, mlp_rows, gnn_nodes, rng, cfg)
    except Exception as err:  # noqa: BLE001
        common.note(f"{label}: inference failed: {type(err).__name__}: {err}")
        section["inference"] = {"skipped": f"failed: {type(err).__name__}: {err}"}
    targets = dict(section["conversion"].get("targets", {}))
    targets.update(section["inference"].get("targets", {}))
    section["targets"] = targets
    section["targets_met"] = (all(t["met"] for t in targets.values())
                              if targets and all(t["met"] is not None for t in targets.values())
                              else None)
    print_section(label, section)
    return section


def print_section(label: str, s: dict[str, Any]) -> None:
    conv = s["conversion"]
    if "results" in conv:
        for k in conv["columns"]:
            rows = []
            torch_copy = {e["rows"]: e["median"]
                          for e in conv["results"].get("copy_path_torch", {}).get(f"k{k}", [])}
            for zc, un, cp in zip(conv["results"]["zero_copy"][f"k{k}"],
                                  conv["results"]["zero_copy_uncached"][f"k{k}"],
                                  conv["results"]["copy_path"][f"k{k}"]):
                rows.append((f"{zc['rows']:,}", zc["median"], zc["min"], zc["spread_pct"],
                             un["median"], cp["median"], cp["min"], cp["n"],
                             ratio(cp["median"], zc["median"]), torch_copy.get(zc["rows"])))
            common.print_table(
                f"{label}: tensor of the first {k} columns (us per call)",
                ["rows", "zero-copy", "zc min", "zc IQR %", "uncached", "copy path",
                 "copy min", "copy n", "copy/zc", "torch copies"], rows)
        print(conv["analysis"])
    else:
        common.note(f"{label}: conversion {conv.get('skipped')}")
    inf = s["inference"]
    for name in ("mlp", "gnn"):
        case = inf.get(name)
        if case is None or "wall_ms" not in case:
            common.note(f"{label}: {name} {None if case is None else case.get('skipped')}")
            continue
        rows = []
        for v in ("in_place", "model_alone", "model_strided", "copy_path"):
            w = case["wall_ms"][v]
            d = (case["device_ms"] or {}).get(v)
            rows.append((v, w["median"], w["min"], w["spread_pct"],
                         None if d is None else d["median"], None if d is None else d["min"]))
        common.print_table(f"{label}: {name} on {case['rows']:,} rows (ms per call)",
                           ["variant", "wall", "wall min", "IQR %", "device", "device min"], rows)
        parts = case.get("in_place_parts_us") or {}
        if "block_tensors" in parts:
            print(f"in-place pieces (us per call): block tensors {parts['block_tensors']:.1f}, "
                  f"stream + inference_mode {parts['stream_and_inference_mode']:.1f}, "
                  f"output copy {parts['output_copy']:.1f}")
        print(case["analysis"])
    for name, t in s["targets"].items():
        print(f"target {name}: {common.fmt_ratio(t['value'])} {t['target']} -> "
              f"{common.verdict(t['met'])}")


def main(argv: list[str] | None = None) -> int:
    parser = common.base_parser(__doc__.splitlines()[0])
    common.add_section_options(parser)
    parser.add_argument("--rows", type=int, nargs="+", default=None,
                        help="conversion sizes (default 1e3..1e7; quick 1e3 1e5)")
    parser.add_argument("--cpu-max-rows", type=int, default=None,
                        help="drop conversion sizes above this on the CPU")
    parser.add_argument("--mlp-rows", type=int, default=None,
                        help="MLP rows (default 1e6; quick 1e4)")
    parser.add_argument("--gnn-nodes", type=int, default=None,
                        help="GNN nodes (default 1e5; quick 1e4)")
    parser.add_argument("--cpu-mlp-rows", type=int, default=None,
                        help="MLP rows on the CPU (default: --mlp-rows)")
    parser.add_argument("--cpu-gnn-nodes", type=int, default=None,
                        help="GNN nodes on the CPU (default: --gnn-nodes)")
    parser.add_argument("--calls", type=int, default=None,
                        help="zero-copy calls per timed sample (default 2000; quick 200)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="inference samples per variant (default 20; quick 5)")
    args = parser.parse_args(argv)

    q = args.quick
    rows = sorted(set(args.rows or (ROWS_QUICK if q else ROWS_FULL)))
    mlp_rows = args.mlp_rows or (10**4 if q else 10**6)
    gnn_nodes = args.gnn_nodes or (10**4 if q else 10**5)
    cfg = {"calls": args.calls or (200 if q else 2000), "zc_repeat": 5 if q else 15,
           "copy_budget_s": 0.2 if q else 1.0, "copy_min_rep": 3 if q else 10,
           "copy_max_rep": 20 if q else 200,
           "inf_repeat": args.repeats or (5 if q else 20), "inf_warmup": 2 if q else 5,
           "parts_calls": 20 if q else 100}
    cpu_rows = [n for n in rows if args.cpu_max_rows is None or n <= args.cpu_max_rows]
    cpu_mlp = args.cpu_mlp_rows or mlp_rows
    cpu_gnn = args.cpu_gnn_nodes or gnn_nodes

    try:
        import torch
        import ml
    except Exception as err:  # noqa: BLE001
        common.note(f"torch / ml cannot be imported: {type(err).__name__}: {err}")
        return 1

    gpu = None
    gpu_why = "--no-gpu"
    if not args.no_gpu:
        tcuda, why = common.torch_cuda()
        if tcuda is None:
            gpu_why = why or "torch sees no CUDA GPU"
        else:
            info = common.GpuInfo()
            if not info.ok:
                gpu_why = f"portable's cuda backend is unusable: {info.reason}"
            elif info.simulated:
                gpu_why = "the numba CUDA simulator is on"
            else:
                gpu = info

    params = {
        "conversion_rows": rows, "conversion_rows_cpu": cpu_rows, "columns": list(COLUMN_COUNTS),
        "layout": "MLFeatures: float32 columns c0..c15, o0, o1 (alignment "
                  f"{MLFeatures.alignment} B)",
        "mlp": f"{NFEAT}->{HIDDEN}->{HIDDEN}->{NOUT} ReLU, seed {SEED}, float32, eval, "
               "inference_mode",
        "mlp_rows": mlp_rows, "mlp_rows_cpu": cpu_mlp,
        "gnn": f"EdgeConv-like: encode {NFEAT}->{GNN_HIDDEN}, {GNN_ROUNDS} rounds, "
               f"{GNN_DEGREE} random edges per node, head {GNN_HIDDEN}->{NOUT}",
        "gnn_nodes": gnn_nodes, "gnn_nodes_cpu": cpu_gnn,
        "zero_copy_calls_per_sample": cfg["calls"], "zero_copy_samples": cfg["zc_repeat"],
        "copy_path_budget_s": cfg["copy_budget_s"],
        "copy_path_samples": [cfg["copy_min_rep"], cfg["copy_max_rep"]],
        "inference_samples": cfg["inf_repeat"], "inference_warmup": cfg["inf_warmup"],
        "targets": {"zero_copy_us": f"<= {ZERO_COPY_TARGET_US}",
                    "zero_copy_flat_max_over_min": f"<= {FLAT_MAX_RATIO}",
                    "in_place_over_model_alone": f"<= {INPLACE_TARGET_RATIO}"},
        "anchors_h100": {"copy_path_3_columns_us": {"1000": 89, "100000": 680,
                                                    "1000000": 5000, "10000000": 105000},
                         "zero_copy_us": "12-20 (CAI + as_strided each call)",
                         "mlp_1M_in_place_ms": 0.98, "mlp_1M_copy_path_ms": 59},
    }
    device = gpu.name if gpu is not None else f"{common.cpu_model()} (CPU)"
    record = common.make_record("ml_bridge", device, params, q)
    extra = {"torch_cuda": getattr(torch.version, "cuda", None),
             "torch_threads": torch.get_num_threads()}
    record["versions"].update({k: v for k, v in extra.items() if k != "torch_threads"})

    sections: dict[str, Any] = {}
    if gpu is None:
        common.note(f"GPU section skipped: {gpu_why}")
        sections["gpu"] = {"skipped": gpu_why}
    else:
        try:
            tdev = torch.device("cuda", gpu.device.index)
            torch.cuda.set_device(tdev)
            stream = torch.cuda.Stream(device=tdev)
            try:
                queue = pt.Queue.wrap(gpu.device, stream)
            except Exception as err:  # noqa: BLE001 - fall back to a queue of our own
                common.note(f"Queue.wrap(torch stream) failed ({err}); using a portable queue")
                queue = pt.Queue(gpu.device, blocking=False)
                stream = torch.cuda.ExternalStream(int(queue.native), device=tdev)
            ctx = Ctx(torch, gpu.device, queue, tdev, True, stream)
            sections["gpu"] = run_section(ctx, ml, f"GPU {gpu.name}", rows, mlp_rows,
                                          gnn_nodes, cfg)
        except Exception as err:  # noqa: BLE001 - keep the CPU figures
            common.note(f"GPU section failed: {type(err).__name__}: {err}")
            sections["gpu"] = {"skipped": f"failed: {type(err).__name__}: {err}"}
    if args.no_cpu:
        sections["cpu"] = {"skipped": "--no-cpu"}
    else:
        dev = pt.get_device("cpu_serial")
        ctx = Ctx(torch, dev, pt.Queue(dev), torch.device("cpu"), False)
        sections["cpu"] = run_section(ctx, ml, f"CPU {common.cpu_model()}", cpu_rows, cpu_mlp,
                                      cpu_gnn, cfg)
    record["gpu"], record["cpu"] = sections["gpu"], sections["cpu"]
    primary = "gpu" if "targets" in sections["gpu"] else "cpu"
    record["primary_section"] = primary
    record["targets"] = sections[primary].get("targets", {})
    record["targets_met"] = sections[primary].get("targets_met")
    record["analysis"] = " ".join(
        x for x in (sections[primary].get("conversion", {}).get("analysis"),
                    *(sections[primary].get("inference", {}).get(m, {}).get("analysis")
                      for m in ("mlp", "gnn"))) if x)
    dslug = gpu.slug if gpu is not None and "targets" in sections["gpu"] else common.cpu_slug()
    path = common.write_record(args.out, "ml_bridge", dslug, record)
    print(f"plot: python benchmarks/plot_ml_bridge.py {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
