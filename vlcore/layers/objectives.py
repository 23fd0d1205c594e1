"""The pre-training loss of both families: a weighted sum of objectives.

A model's ``forward(batch)`` fills ``parts`` with the objectives its batch
kind computes (``{"mlm": ..., "itm": ...}``, plus metrics such as
``"mlm_acc"``); :func:`weighted_total` adds ``parts["loss"]``, the sum of
``weight x objective`` over the objectives present with a positive weight,
in the order of ``weights`` (a fixed order keeps the sum bit-identical from
run to run).
"""


def weighted_total(parts, weights):
    """Set and return ``parts`` with ``parts["loss"]``; None when no weighted
    objective is present."""
    total = None
    for name, w in weights.items():
        if name in parts and w > 0:
            term = parts[name] * w
            total = term if total is None else total + term
    parts["loss"] = total
    return parts
