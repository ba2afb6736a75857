"""A GNN that merges fragmented particles: tracksters (fragments of particles in
the two endcaps of a calorimeter) linked by a graph neural network and merged on
the device.

Each step is a plain function taking a :class:`portable.Queue`:

* :func:`examples.gnn.generator.generate` -- an event's tracksters (29 features
  each) and their truth particles, as host arrays;
* :func:`examples.gnn.graph.upload` and :func:`~examples.gnn.graph.build_graph` --
  the tracksters as a collection on the device, and the directed edges between
  neighbours, found in eta-phi tiles;
* :func:`examples.gnn.features.edge_features` -- the five features of every edge;
* :class:`examples.gnn.scoring.Linker` -- the GNN
  (:class:`examples.gnn.model.TracksterLinker`) scoring every edge in place;
  :func:`~examples.gnn.scoring.score_copied` -- the copy paths it is compared with;
* :func:`examples.gnn.merge.merge` -- union-find over the passing edges and the
  merged particles.

:mod:`examples.gnn.modules` makes them pipeline modules (run by
``examples/gnn_pipeline.py``); :mod:`examples.gnn.reference` is an independent
NumPy version, which :func:`examples.gnn.validate.check` compares an event's device
results with.
"""
