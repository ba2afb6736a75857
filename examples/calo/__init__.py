"""A calorimeter clustering example: synthetic showers on a layered cell grid,
clustered with CLUE (Rovere et al. 2020) by portable kernels, summarised into
cluster features, scored by an MLP in place and selected.

Each step is a plain function taking a :class:`portable.Queue`:

* :func:`examples.calo.generator.generate` and :func:`~examples.calo.generator.upload`
  -- an event's hits as host arrays, then as a collection on the queue's device;
* :func:`examples.calo.clue.cluster` -- tiles, local density, nearest higher,
  seeds and cluster ids of every hit; returns the number of clusters;
* :func:`examples.calo.features.cluster_features` -- per-cluster energy,
  barycentre, widths, size and layer;
* :class:`examples.calo.model.ClusterScorer` and :func:`~examples.calo.model.score`
  -- the MLP writing each cluster's score in place;
* :func:`examples.calo.features.select` -- the clusters above a score threshold.

The enqueue functions also take the number of hits (clusters) as a one-element
device array, with collections allocated at a capacity
(:func:`examples.calo.generator.capacity_for`): the launches are then the same
for every event, as ``examples/calo_pipeline.py``'s graph mode needs.
:func:`examples.calo.pipeline.process_event` runs them in a row for one event;
:mod:`examples.calo.reference` is an independent NumPy version, which
:func:`examples.calo.validate.validate` compares an event's device results with.
"""
