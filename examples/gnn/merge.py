"""Merging tracksters into particles on the device: union-find over the edges whose
score passes the cut, then energy-weighted sums per merged particle.

1. every trackster starts as its own root (``label[i] = i``);
2. **hooking**: each passing edge joins the roots of its two ends, hooking the
   larger root under the smaller with an atomic compare-and-swap, retrying from the
   new roots when another thread hooked first. Only roots are ever rewritten, so a
   component's root is always its smallest trackster index, whatever the order the
   edges are taken in: the labels are the same on every backend and schedule;
3. **pointer jumping**: each trackster's label becomes its root;
4. **particles**: the roots are ranked (an exclusive scan over the capacity), and
   each root sums its component's raw energy and energy-weighted barycentre, taking
   the members in increasing index order (every member's index is at least the
   root's), so the sums are the same on every backend.

An edge passes when its score exceeds 0.5, or 0.8 when the larger raw energy of its
two tracksters is 50 GeV or more (:data:`examples.gnn.reference.LOW_CUT` ...).

Example::

    >>> import portable as pt
    >>> from examples.gnn.layouts import Edges, Nodes, Particles
    >>> q = pt.Queue(pt.get_device("cpu_serial"))
    >>> nodes = pt.PortableCollection(Nodes, 4, q.device, zero=True)
    >>> nodes.column("raw_energy")[:] = [1.0, 2.0, 3.0, 4.0]
    >>> edges = pt.PortableCollection(Edges, 2, q.device, zero=True)
    >>> edges.column("src")[:] = [3, 0]; edges.column("dst")[:] = [1, 2]
    >>> edges.column("score")[:] = [0.9, 0.2]
    >>> particles = pt.PortableCollection(Particles, 4, q.device)
    >>> n = merge(q, nodes, np.array([4], np.int32), edges, np.array([2], np.int32), particles)
    >>> nodes.column("label").tolist(), int(n[0]), particles.column("energy")[:3].tolist()
    ([0, 1, 2, 1], 3, [1.0, 6.0, 3.0])
"""
from __future__ import annotations

from typing import Any

import numpy as np

import kernels
import portable as pt

from .checks import expect_collection, expect_counter
from .graph import Allocator, default_alloc
from .layouts import Edges, Nodes, Particles
from .reference import ENERGY_SPLIT, HIGH_CUT, LOW_CUT


@pt.device_function
def find_root(label, i):
    """The root of trackster ``i``: follow the labels until one points at itself."""
    while label[i] != i:
        i = label[i]
    return i


@pt.kernel
def init_labels(acc, nodes):
    """Every trackster its own root."""
    for i in acc.uniform_elements(nodes.size):
        nodes.label[i] = i


@pt.kernel
def hook(acc, nodes, edges, n_edges, low_cut, high_cut, split):
    """Join the components of the two ends of every edge whose score passes the cut."""
    for e in acc.uniform_elements(edges.size):
        if e < n_edges[0]:
            a = edges.src[e]
            b = edges.dst[e]
            cut = low_cut
            if max(nodes.raw_energy[a], nodes.raw_energy[b]) >= split:
                cut = high_cut
            if edges.score[e] > cut:
                joined = False
                while not joined:
                    a = find_root(nodes.label, a)
                    b = find_root(nodes.label, b)
                    if a == b:
                        joined = True
                    else:
                        high = max(a, b)
                        low = min(a, b)
                        if acc.atomic_cas(nodes.label, high, high, low) == high:
                            joined = True


@pt.kernel
def jump(acc, nodes, n_nodes, is_root):
    """Each trackster's label becomes its root; ``is_root`` flags the roots (0 for
    the padding rows)."""
    for i in acc.uniform_elements(nodes.size):
        flag = 0
        if i < n_nodes[0]:
            root = find_root(nodes.label, i)
            nodes.label[i] = root
            if root == i:
                flag = 1
        is_root[i] = flag


@pt.kernel
def sum_particles(acc, nodes, n_nodes, is_root, rank, particles, n_particles):
    """Each root's particle, in row ``rank[root]``: energy sum, weighted barycentre,
    size; ``n_particles[0]``: how many there are."""
    n = n_nodes[0]
    for r in acc.uniform_elements(nodes.size):
        if is_root[r] != 0:
            energy = 0.0
            x = 0.0
            y = 0.0
            z = 0.0
            members = 0
            for j in range(r, n):
                if nodes.label[j] == r:
                    e = np.float64(nodes.raw_energy[j])
                    energy += e
                    x += e * nodes.barycenter_x[j]
                    y += e * nodes.barycenter_y[j]
                    z += e * nodes.barycenter_z[j]
                    members += 1
            p = rank[r]
            particles.energy[p] = energy
            particles.x[p] = x / energy
            particles.y[p] = y / energy
            particles.z[p] = z / energy
            particles.n_tracksters[p] = members
            particles.root[p] = r
        if r == nodes.size - 1:
            n_particles[0] = rank[r] + is_root[r]


def merge(queue: pt.Queue, nodes: pt.PortableCollection, n_nodes: Any,
          edges: pt.PortableCollection, n_edges: Any, particles: pt.PortableCollection,
          alloc: Allocator | None = None) -> Any:
    """Enqueue the merge of the ``n_nodes[0]`` tracksters of ``nodes`` over the first
    ``n_edges[0]`` scored ``edges``: fills ``nodes``' ``label`` and the first rows of
    ``particles`` (as many rows as ``nodes``); returns a one-element int32 device
    buffer holding the number of particles once the queue has done the work.
    Temporary buffers come from ``alloc(shape, dtype)``."""
    where = "merge"
    expect_collection(nodes, Nodes, "nodes", where, queue)
    expect_counter(n_nodes, "n_nodes", where, queue)
    expect_collection(edges, Edges, "edges", where, queue)
    expect_counter(n_edges, "n_edges", where, queue)
    expect_collection(particles, Particles, "particles", where, queue)
    if particles.size < nodes.size:
        raise pt.ArgumentError(f"{where}: argument 'particles' has {particles.size} rows, "
                               f"fewer than the {nodes.size} of 'nodes' (one particle per "
                               f"trackster at most); give it as many rows as the nodes")
    alloc = alloc or default_alloc(queue)
    capacity = nodes.size
    is_root = alloc(capacity, np.int32)
    rank = alloc(capacity, np.int32)
    n_particles = alloc(1, np.int32)
    per_node = pt.make_workdiv(queue.device, capacity)
    pt.launch(queue, per_node, init_labels, nodes.view())
    pt.launch(queue, pt.make_workdiv(queue.device, edges.size), hook, nodes.view(),
              edges.const_view(), n_edges, LOW_CUT, HIGH_CUT, ENERGY_SPLIT)
    pt.launch(queue, per_node, jump, nodes.view(), n_nodes, is_root)
    kernels.exclusive_scan(queue, is_root, rank, alloc=alloc)
    pt.launch(queue, per_node, sum_particles, nodes.const_view(), n_nodes, is_root, rank,
              particles.view(), n_particles)
    return n_particles
