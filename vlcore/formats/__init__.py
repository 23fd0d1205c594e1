"""On-disk formats shared by the data-preparation tools and the training code.

``data_prep`` writes these files and the model packages read them; nothing
here imports Paddle or the training engine. Import the submodules directly
(this package imports none of them, so a tool that needs one format does not
pull in the dependencies of another, e.g. ``lmdb``):

- :mod:`vlcore.formats.sharded`: sharded output files and atomic writes.
- :mod:`vlcore.formats.rewrites`: rewritten-caption records (positives and
  negatives per caption).
- :mod:`vlcore.formats.region_store`: the region-feature store (LMDB keyed by
  image id) that training reads at random.
- :mod:`vlcore.formats.unimo_tsv`: the base64 region-feature TSV of the
  official UNIMO release, and conversion to and from the region store.
"""


class DamagedFileError(ValueError):
    """A whole data file is unusable -- a truncated or damaged region store,
    a truncated token shard -- as opposed to one bad record in it: there is
    nothing to skip to, so loaders stop with this one line (no traceback)."""
