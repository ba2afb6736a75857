"""The SoA -> torch bridge: zero-copy tensors and models in place vs the copy path.

One collection per size, layout ``MLFeatures``: float32 columns c0..c15 (the
features), then o0, o1 (the model's outputs). On the GPU when torch sees one,
and on the CPU.

1. Conversion, N in 1e3..1e7 rows (quick 1e3, 1e4), blocks of the first 3 and 16
   columns: ``zero_copy`` is ``meta.tensor("features")``, a strided (N, k) tensor
   over the collection (host µs per call, K calls then one synchronize);
   ``copy_path`` copies each column to the host, stacks them and copies the result
   back to the device (ms per call). Checked first: the zero-copy tensor starts at
   column c0 and equals the copy path's.
2. Inference: an MLP 16 -> 64 -> 64 -> 2 on 1e6 rows and an EdgeConv-like GNN on
   1e5 nodes (quick 1e4 each). ``in_place`` is ``ml.Model(net).to(q)(meta)``,
   ``model_alone`` the module on a contiguous tensor already on the device,
   ``copy_path`` the columns through the host and the result back. Device ms by
   CUDA events (an untimed call first), wall ms with a synchronize per call.
   Outputs are poisoned (NaN) and compared with the model alone first.
3. Host overhead: ``in_place`` against ``model_alone`` on 1024 rows, host µs per
   call (K calls then one synchronize): what ``ml.Model`` adds beyond the module.

Targets: zero-copy <= 5 µs at every N; in place <= 1.03 x the model alone
(device time on a GPU); host overhead <= 20 µs per call on a GPU.

    python benchmarks/ml_bridge.py [--quick] [--no-gpu] [--no-cpu] [--max-rows N]
"""
from __future__ import annotations

from typing import Any, Callable

import common  # noqa: I001 - puts the repository on sys.path
import numpy as np

import portable as pt

FEATURES, OUTPUTS = [f"c{i}" for i in range(16)], ["o0", "o1"]
MLFeatures = pt.Layout.define("MLFeatures",
                              [(name, pt.column(np.float32)) for name in FEATURES + OUTPUTS])
ZERO_COPY_US, IN_PLACE_RATIO, OVERHEAD_US = 5.0, 1.03, 20.0


def build_mlp(torch: Any) -> Any:
    torch.manual_seed(0)
    nn = torch.nn
    return nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                         nn.Linear(64, 2)).eval()


def build_gnn(torch: Any, nodes: int) -> Any:
    """Two rounds of message passing over a fixed random graph, 8 edges per node."""
    nn = torch.nn

    class EdgeConvNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            gen = torch.Generator().manual_seed(1)
            self.register_buffer("centre", torch.arange(nodes).repeat_interleave(8))
            self.register_buffer("neighbour", torch.randint(0, nodes, (nodes * 8,),
                                                            generator=gen))
            torch.manual_seed(0)
            self.encode, self.head = nn.Linear(16, 32), nn.Linear(32, 2)
            self.edges = nn.ModuleList([nn.Linear(64, 32) for _ in range(2)])

        def forward(self, x: Any) -> Any:
            h = torch.relu(self.encode(x))
            for layer in self.edges:
                hi, hj = h.index_select(0, self.centre), h.index_select(0, self.neighbour)
                message = torch.relu(layer(torch.cat([hi, hj - hi], dim=1)))
                h = h + torch.zeros_like(h).index_add_(0, self.centre, message) / 8
            return self.head(h)
    return EdgeConvNet().eval()


class Side:
    """The device measured: portable queue, torch device, synchronize, copies."""

    def __init__(self, torch: Any, device: Any) -> None:
        self.torch, self.device, self.gpu = torch, device, not device.backend.host_memory
        self.queue = pt.Queue(device, blocking=False)
        self.tdev = torch.device("cuda", device.index) if self.gpu else torch.device("cpu")

    def sync(self) -> None:
        self.queue.synchronize()
        if self.gpu:
            self.torch.cuda.synchronize()

    def collection(self, n: int, rng: np.random.Generator) -> Any:
        host = pt.PortableCollection(MLFeatures, n, pt.get_device("cpu_serial"))
        for name in FEATURES:
            host.column(name)[:] = rng.standard_normal(n, dtype=np.float32)
        for name in OUTPUTS:
            host.column(name)[:] = np.nan
        found = host.to(self.queue) if self.gpu else host
        self.queue.synchronize()
        return found

    def host_column(self, coll: Any, name: str) -> np.ndarray:
        column = coll.column(name)
        return column.copy_to_host() if self.gpu else column

    def copy_in(self, coll: Any, names: list[str]) -> Any:
        """The copy path's way in: columns to the host, stacked, to the device."""
        stacked = self.torch.from_numpy(np.stack([self.host_column(coll, n) for n in names], 1))
        return stacked.to(self.tdev)

    def copy_out(self, coll: Any, y: Any) -> None:
        """The copy path's way out: the result to the host, into the output columns."""
        host = y.cpu().numpy()
        for j, name in enumerate(OUTPUTS):
            pt.memcpy(self.queue, coll.column(name), np.ascontiguousarray(host[:, j]))
        self.queue.synchronize()


def meta_of(ml: Any, coll: Any, name: str, members: list[str]) -> Any:
    meta = ml.SoAMetadata(coll)
    meta.append_block(name, *members)
    return meta


def address(array: Any) -> int:
    face = getattr(array, "__cuda_array_interface__", None) or array.__array_interface__
    return int(face["data"][0])


def wall_ms(variants: dict[str, Callable[[], Any]], side: Side, repeat: int) -> dict[str, Any]:
    """Wall ms per call, synchronized before and after each, round-robin."""
    samples = common.time_host({name: (run, side.sync) for name, run in variants.items()},
                               repeat=repeat, warmup=2)
    return {name: common.summarize([s * 1e3 for s in xs], "ms") for name, xs in samples.items()}


def conversion(side: Side, ml: Any, rows: list[int], k_calls: int, repeat: int) -> dict[str, Any]:
    rng, zero_copy, copy_path = np.random.default_rng(0), {}, {}
    for n in rows:
        coll = side.collection(n, rng)
        for k in (3, 16):
            meta = meta_of(ml, coll, "features", FEATURES[:k])
            tensor = meta.tensor("features")
            copied = side.copy_in(coll, FEATURES[:k])
            if tensor.data_ptr() != address(coll.column("c0")) or not side.torch.equal(
                    tensor, copied):
                raise RuntimeError(f"the zero-copy tensor of {n} x {k} is wrong")
            key = f"{k} columns, {n} rows"
            zero_copy[key] = common.host_us({key: (lambda m=meta: m.tensor("features"),
                                                   side.sync)},
                                            repeat=repeat, warmup=20, inner=k_calls)[key]
            copy_path[key] = wall_ms({key: lambda c=coll, k=k: side.copy_in(c, FEATURES[:k])},
                                     side, max(3, repeat // 3))[key]
    worst = max(s["median"] for s in zero_copy.values())
    return {"rows": rows, "zero_copy_us": zero_copy, "copy_path_ms": copy_path,
            "target": common.target("zero-copy tensor, worst median µs over N and k", worst,
                                    ZERO_COPY_US)}


def inference(side: Side, ml: Any, name: str, net: Any, n: int, repeat: int) -> dict[str, Any]:
    torch = side.torch
    coll = side.collection(n, np.random.default_rng(1))
    net = net.to(side.tdev)
    inputs, outputs = meta_of(ml, coll, "in", FEATURES), meta_of(ml, coll, "out", OUTPUTS)
    meta, model = ml.ModelMetadata(inputs, outputs), ml.Model(net).to(side.queue)
    x = inputs.tensor("in").contiguous()
    with torch.inference_mode():
        want = net(x).cpu().numpy()
    model(meta)
    side.sync()
    got = np.stack([side.host_column(coll, o) for o in OUTPUTS], 1)
    if not np.allclose(got, want, rtol=1e-4, atol=1e-5):
        raise RuntimeError(f"{name}: the in-place outputs differ from the model alone")

    def alone() -> None:
        with torch.inference_mode():
            net(x)

    def copy_path() -> None:
        with torch.inference_mode():
            side.copy_out(coll, net(side.copy_in(coll, FEATURES)))
    result: dict[str, Any] = {"rows": n, "wall_ms": wall_ms(
        {"in_place": lambda: model(meta), "model_alone": alone}, side, repeat)}
    result["wall_ms"].update(wall_ms({"copy_path": copy_path}, side, max(3, repeat // 4)))
    basis = "wall_ms"
    if side.gpu:
        with torch.cuda.stream(torch.cuda.ExternalStream(int(side.queue.native))):
            result["device_ms"] = common.time_events(
                {"in_place": lambda k: model(meta), "model_alone": lambda k: alone()},
                common.Events("torch", torch), repeat=repeat, warmup=3)
        basis = "device_ms"
    measured = result[basis]
    result["target"] = common.target(f"in place / model alone ({basis})", common.ratio(
        measured["in_place"]["median"], measured["model_alone"]["median"]), IN_PLACE_RATIO)
    return result


def host_overhead(side: Side, ml: Any, k_calls: int, repeat: int) -> dict[str, Any]:
    """What ``ml.Model`` adds per call beyond the module, on a batch small enough that
    the host bounds both."""
    torch = side.torch
    coll = side.collection(1024, np.random.default_rng(2))
    net = build_mlp(torch).to(side.tdev)
    meta = ml.ModelMetadata(meta_of(ml, coll, "in", FEATURES), meta_of(ml, coll, "out", OUTPUTS))
    model, x = ml.Model(net).to(side.queue), meta.inputs.tensor("in").contiguous()

    def alone() -> None:
        with torch.inference_mode():
            net(x)
    us = common.host_us({"in_place": (lambda: model(meta), side.sync),
                         "model_alone": (alone, side.sync)},
                        repeat=repeat, warmup=50, inner=k_calls)
    beyond = us["in_place"]["median"] - us["model_alone"]["median"]
    return {"rows": 1024, "us_per_call": us, "beyond_us": beyond,
            "target": common.target("host µs per call beyond the bare module", beyond,
                                    OVERHEAD_US, judged=side.gpu)}


def section(side: Side, quick: bool, max_rows: int) -> dict[str, Any]:
    import ml
    rows = [n for n in ([10**3, 10**4] if quick else [10**3, 10**4, 10**5, 10**6, 10**7])
            if n <= max_rows]
    repeat, k_calls = (3, 20) if quick else (15, 200)
    mlp_rows, gnn_nodes = (10**4, 10**4) if quick else (min(10**6, max_rows), 10**5)
    found = {"conversion": conversion(side, ml, rows, k_calls, repeat),
             "inference": {
                 "mlp": inference(side, ml, "mlp", build_mlp(side.torch), mlp_rows, repeat),
                 "gnn": inference(side, ml, "gnn", build_gnn(side.torch, gnn_nodes), gnn_nodes,
                                  repeat)},
             "host_overhead": host_overhead(side, ml, k_calls, repeat)}
    found["targets"] = {"zero_copy": found["conversion"]["target"],
                        **{f"in_place_{name}": r["target"]
                           for name, r in found["inference"].items()},
                        "host_overhead": found["host_overhead"]["target"]}
    return found


def report(title: str, s: dict[str, Any]) -> None:
    conv = s["conversion"]
    common.print_table(f"{title}: block -> tensor", ["block", "zero-copy µs", "copy path ms"],
                       [(key, z["median"], conv["copy_path_ms"][key]["median"])
                        for key, z in conv["zero_copy_us"].items()])
    rows = []
    for name, r in s["inference"].items():
        for variant, t in r["wall_ms"].items():
            rows.append((f"{name} {variant}", t["median"],
                         r.get("device_ms", {}).get(variant, {}).get("median")))
    common.print_table(f"{title}: inference", ["variant", "wall ms", "device ms"], rows)
    over = s["host_overhead"]
    print(f"host µs per call: in place {common.fmt(over['us_per_call']['in_place']['median'])}, "
          f"module alone {common.fmt(over['us_per_call']['model_alone']['median'])}")
    common.print_targets(s["targets"])


def main(argv: list[str] | None = None) -> int:
    parser = common.add_section_options(common.base_parser(__doc__.splitlines()[0]))
    parser.add_argument("--max-rows", type=int, default=10**7,
                        help="the largest collection (default 10^7)")
    args = parser.parse_args(argv)
    import torch
    gpu_torch, why = common.gpu_library("torch")
    if gpu_torch is None and not args.no_gpu:
        common.note(f"GPU section skipped: {why}")
        gpu, gpu_why = None, why
    else:
        gpu, gpu_why = common.gpu_to_measure(args.no_gpu)
    device, device_slug = common.record_device(gpu)
    record = common.make_record("ml_bridge", device, {"features": 16, "outputs": 2},
                                args.quick)
    record["gpu"] = {"skipped": gpu_why} if gpu is None else section(
        Side(torch, gpu.device), args.quick, args.max_rows)
    if gpu is not None:
        report(device, record["gpu"])
    record["cpu"] = {"skipped": "--no-cpu"} if args.no_cpu else section(
        Side(torch, pt.get_device("cpu_serial")), args.quick, args.max_rows)
    if not args.no_cpu:
        report(common.cpu_model(), record["cpu"])
    record["targets"] = record["gpu"].get("targets") or record["cpu"].get("targets", {})
    record["targets_met"] = common.all_met(record["targets"])
    common.write_record(args.out, "ml_bridge", device_slug, record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
