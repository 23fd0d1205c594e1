"""The framework: what turns a config into a run.

``config`` (YAML with ``_base_``, ``-o`` overrides, validation), ``errors``,
``registry`` (every table of things chosen by name), ``schema`` (the
top-level sections), ``run`` (build and train/evaluate), ``engine`` (the
training loop), ``rundir`` (lock, atomic files, full disk), ``checkpoint``,
``init_from``, ``optim``, ``runlog`` (log, metrics.jsonl, VisualDL),
``dist`` (fleet glue), ``env`` (CPU thread defaults), ``cli`` (the tools'
shared plumbing). Nothing here knows a model: models, data and tasks reach
the framework through the registry.
"""
