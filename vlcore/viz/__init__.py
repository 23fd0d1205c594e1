"""Pictures of what a run learned, drawn with matplotlib (Agg, no display):

- :mod:`vlcore.viz.curves`: training curves of one or several runs;
- :mod:`vlcore.viz.sheets`: retrieval sheets (top images for captions, top
  captions for images, the right ones marked);
- :mod:`vlcore.viz.grids`: rows of image crops with words beside them (the
  grounded dictionary, UNIMO-2 Figure 3).

Base layer: takes plain records, arrays and strings and imports only
:mod:`vlcore.formats` (its atomic writes), so the training engine can draw
its curves at the end of a run.
"""
