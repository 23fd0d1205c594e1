"""Everything chosen by name, in one kind of table.

A :class:`Registry` maps a name to a builder, the config dataclass of the
section that names it (for the kinds a config file chooses) and the named
*hooks* its kind declares, all given in one registration::

    @ARCH.register("UNIMO2", config=UNIMO2ArchConfig,
                   resolve=vocab_size_resolver("text.vocab_size"))
    def build_unimo2(cfg, loss=None): ...

The config validator dispatches on the same table (``Arch: ARCH`` in the
schema), so a name is known to the validator exactly when it can be built.
Model packages fill the tables when imported (``import unimo, unimo2``: each
package's ``__init__`` imports the modules that register). The tables:

==================  =========================================  ===========================
table               name in the config / on the command line   hooks
==================  =========================================  ===========================
``ARCH``            ``Arch.name``                              ``resolve(arch_cfg, tokenizer)``,
                                                               ``synthetic(cfg, kind, batch)``
``LOSS``            ``Loss.name`` (config only)
``TRAIN_DATA``      ``DataLoader.Train.name``                  ``prepare(cfg, ctx)``
``EVALUATOR``       ``DataLoader.Eval.name``                   ``prepare(cfg, ctx)``
``TASK``            ``DataLoader.Train.task.name`` (Finetune)  ``prepare(cfg, data_cfg, ctx)``
``INIT_SOURCE``     ``(KIND, Arch.name)`` of ``Global.init_from``
``INFER_COMMAND``   ``(subcommand, Arch.name)`` of tools/infer.py  ``help``, ``arguments(parser)``
==================  =========================================  ===========================

``prepare`` runs on every rank before the builder (building the demo corpus,
checking a store); ``resolve`` fills config values that depend on the
tokenizer before the model is built; ``synthetic`` makes a random batch of
one input kind at the config's shapes (benchmarks, ``tools/plan.py``).
"""
import dataclasses

from vlcore.framework.errors import UnknownNameError


class Registry:
    """Maps a name to (builder, config dataclass, hooks)."""

    def __init__(self, kind, *, hooks=(), configured=True, builds=True):
        self.kind = kind
        self.hook_names = tuple(hooks)
        self.configured = configured   # entries carry the config dataclass of their section
        self.builds = builds           # False: config-only entries (register() is not a decorator)
        self._entries = {}

    def register(self, name, *, config=None, **hooks):
        """A decorator registering ``builder`` as ``name`` (for a config-only
        kind, registers at once). ``hooks`` are the kind's declared hooks."""
        if self.configured and (not dataclasses.is_dataclass(config)
                                or "name" not in {f.name for f in dataclasses.fields(config)}):
            raise TypeError(f"{self.kind} '{name}': config must be a dataclass with a 'name' field")
        unknown = sorted(set(hooks) - set(self.hook_names))
        if unknown:
            raise TypeError(f"{self.kind} '{name}': unknown hook(s) {unknown} "
                            f"(this kind has: {', '.join(self.hook_names) or 'none'})")

        def decorator(builder):
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = (builder, config, dict(hooks))
            return builder
        if not self.builds:
            decorator(None)
            return None
        return decorator

    def _entry(self, name):
        if name not in self._entries:
            raise UnknownNameError(f"unknown {self.kind} {name!r} (registered: {', '.join(map(str, self.names()))})")
        return self._entries[name]

    def get(self, name):
        """The builder registered as ``name``."""
        return self._entry(name)[0]

    def config_class(self, name):
        return self._entry(name)[1]

    def hook(self, name, hook):
        """The ``hook`` given when ``name`` was registered, or None."""
        if hook not in self.hook_names:
            raise KeyError(f"{self.kind} has no hook {hook!r}")
        return self._entry(name)[2].get(hook)

    def names(self):
        return sorted(self._entries)

    def items(self):
        """``(name, builder)`` pairs, sorted by name."""
        return [(n, self._entries[n][0]) for n in self.names()]

    def __contains__(self, name):
        return name in self._entries

    def build(self, cfg, **kwargs):
        builder, config_cls, _ = self._entry(cfg.name)
        if not isinstance(cfg, config_cls):
            raise TypeError(f"{self.kind} '{cfg.name}' expects {config_cls.__name__}, "
                            f"got {type(cfg).__name__}")
        return builder(cfg, **kwargs)

    def __repr__(self):
        return f"Registry({self.kind!r}, {self.names()})"


ARCH = Registry("Arch", hooks=("resolve", "synthetic"))     # builder(arch_cfg, loss_cfg) -> nn.Layer
LOSS = Registry("Loss", builds=False)                        # config only; read by the Arch builder
TRAIN_DATA = Registry("DataLoader.Train", hooks=("prepare",))  # builder(cfg, ctx) -> TrainData
EVALUATOR = Registry("DataLoader.Eval", hooks=("prepare",))    # builder(cfg, ctx) -> callable(model) -> metrics
TASK = Registry("DataLoader.Train.task", hooks=("prepare",))   # class FinetuneTask(cfg, data_cfg, ctx)
INIT_SOURCE = Registry("Global.init_from source", configured=False)  # converter(path, model, arch_cfg, ...)
INFER_COMMAND = Registry("tools/infer.py subcommand", hooks=("help", "arguments"), configured=False)
