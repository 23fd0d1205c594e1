"""Converting other people's checkpoints into a model's state dict.

A converter is a :class:`Mapping`: rules that build each model key from
named source variables (with a transform), plus the source names that are
dropped on purpose (with the reason) and the model keys the source does not
provide. :func:`apply_mapping` is strict by construction: a source variable
that no rule uses and no declared drop covers is an error that lists it (the
official UNIMO loaders skip such variables silently, which is how a model
ends up half-initialised without anyone noticing), and so is a model key
nobody fills that the mapping did not declare, or any shape mismatch. The
user may drop variables explicitly with ``ignore`` patterns.

Sources are read with the frameworks' own utilities: official static-graph
checkpoints (a directory with one file per persistable variable, written by
Paddle 1.x/2.x ``save_vars``/``save_persistables``) file by file with
``paddle.static.load_vars`` (files that are not variables -- configs,
vocabularies -- are skipped and listed in the report), ``.pdparams`` files
with ``paddle.load``. In Paddle 3 the static reader only works with the legacy
static graph, i.e. ``FLAGS_enable_pir_api=0`` in the environment *before*
Paddle is imported; when the current process already runs Paddle with PIR,
the checkpoint is read in a child process.

``Global.init_from`` accepts ``KIND:PATH[,KIND:PATH...]`` where KIND is a
converter registered by a model package (:func:`register_source`).

Modules: :mod:`.mapping` (rules, :func:`apply_mapping`), :mod:`.readers`
(static-graph directories, ``.pdparams``), :mod:`.rules` (rule builders shared
by the model packages' converters), and, from :mod:`vlcore.framework.init_from`, the
registration of ``Global.init_from`` kinds.
The names below are the package's API; import them from ``vlcore.convert``.
"""

from vlcore.convert.mapping import (
                                    NOT_A_VARIABLE,
                                    OPTIMIZER_STATE,
                                    ConversionError,
                                    Mapping,
                                    Report,
                                    Rule,
                                    apply_mapping,
                                    complete_state,
                                    constant,
                                    split,
                                    take,
)
from vlcore.convert.readers import VariableFiles, read_state_file, read_static_checkpoint
from vlcore.convert.rules import (
                                    identity_layer_norm_rules,
                                    layer_ids,
                                    layer_norm_rules,
                                    linear_rules,
                                    official_encoder_rules,
                                    official_layer_rules,
                                    optimizer_state_dropped,
                                    paddlenlp_embedding_rules,
                                    paddlenlp_layer_rules,
                                    paddlenlp_lm_head_rules,
                                    paddlenlp_prefix,
                                    same_matrix,
                                    shift_positions,
)
from vlcore.framework.init_from import register_source, source_converter, source_kinds

__all__ = [
    "NOT_A_VARIABLE", "OPTIMIZER_STATE", "ConversionError", "Mapping", "Report", "Rule", "apply_mapping",
    "complete_state", "constant", "split", "take", "VariableFiles", "read_state_file",
    "read_static_checkpoint", "identity_layer_norm_rules", "layer_ids", "layer_norm_rules", "linear_rules",
    "official_encoder_rules", "official_layer_rules", "optimizer_state_dropped", "paddlenlp_embedding_rules",
    "paddlenlp_layer_rules", "paddlenlp_lm_head_rules", "paddlenlp_prefix", "same_matrix", "shift_positions",
    "register_source", "source_converter", "source_kinds",
]
