"""Incremental decoding with key/value caches (greedy here; beam search with
length penalty and trigram blocking belongs to the captioning task)."""
import paddle


def greedy_generate(model, lm_head, regions=None, text=None, bos_id=0, eos_id=2, max_len=20, start_position=None):
    """Generate a target after the context, one token at a time, reusing the
    context's and the previous tokens' keys and values. Returns ``[B, T]`` ids
    (after ``bos_id``); finished rows are padded with ``eos_id``."""
    _, caches, context_mask = model.encode_context(regions, text)
    b = context_mask.shape[0]
    pos0 = start_position if start_position is not None else model.cfg.position_offset
    ids = paddle.full([b, 1], bos_id, dtype="int64")
    out, done = [], paddle.zeros([b], dtype="bool")
    for step in range(max_len):
        positions = paddle.full([b, 1], pos0 + step, dtype="int64")
        hidden = model.decode_step(ids, positions, context_mask, step, caches)
        nxt = lm_head(hidden[:, -1]).argmax(-1)
        nxt = paddle.where(done, paddle.full_like(nxt, eos_id), nxt)
        out.append(nxt)
        done = paddle.logical_or(done, nxt == eos_id)
        ids = nxt.unsqueeze(1)
        if bool(done.all()):
            break
    return paddle.stack(out, axis=1)
