"""Write a Paddle 1.x/2.x-style static-graph checkpoint (one file per
variable, ``paddle.static.save_vars``) with given names and shapes and random
values. Run with FLAGS_enable_pir_api=0 (the legacy static graph):

    python write_static_checkpoint.py SPEC.json OUT_DIR

SPEC: {"vars": [[name, shape, low, high], ...], "seed": int,
       "conv": {"weight": name, "bias": name, "image_size": S, "patch": P, "padding": p},
       "fc": {"weight": name, "bias": name}}
The conv variables are created by ``paddle.static.nn.conv2d`` with
``data_format="NHWC"`` and the fc by ``paddle.static.nn.fc`` (so Paddle itself
decides their layouts; the script fails if the SPEC's shapes disagree), and
both are run on a fixed probe: OUT_DIR/../probe.npz holds inputs and outputs.
Every value is also written to OUT_DIR/../values.npz.
"""
import json
import os
import sys

assert os.environ.get("FLAGS_enable_pir_api") == "0", "run with FLAGS_enable_pir_api=0"
import numpy as np  # noqa: E402
import paddle  # noqa: E402


def main(spec_path, out_dir):
    with open(spec_path) as f:
        spec = json.load(f)
    rng = np.random.default_rng(spec.get("seed", 0))
    paddle.enable_static()
    main_prog, startup = paddle.static.Program(), paddle.static.Program()
    probes = {}
    with paddle.static.program_guard(main_prog, startup):
        conv = spec.get("conv")
        if conv:
            s, d = conv["image_size"], conv["channels_out"]
            x = paddle.static.data("probe_pixels_nhwc", [2, s, s, 3], "float32")
            y = paddle.static.nn.conv2d(x, num_filters=d, filter_size=conv["patch"], stride=conv["patch"],
                                        padding=conv["padding"], data_format="NHWC",
                                        param_attr=paddle.ParamAttr(name=conv["weight"]),
                                        bias_attr=paddle.ParamAttr(name=conv["bias"]))
            probes["conv"] = (x, y)
        fc = spec.get("fc")
        if fc:
            x = paddle.static.data("probe_fc_in", [2, 3, fc["in"]], "float32")
            y = paddle.static.nn.fc(x, size=fc["out"], num_flatten_dims=2,
                                    weight_attr=paddle.ParamAttr(name=fc["weight"]),
                                    bias_attr=paddle.ParamAttr(name=fc["bias"]))
            probes["fc"] = (x, y)
        made = {p.name: p for p in main_prog.global_block().all_parameters()}
        for name, shape, _, _ in spec["vars"]:
            if name in made:
                assert list(made[name].shape) == list(shape), (name, made[name].shape, shape)
            else:
                made[name] = paddle.static.create_parameter(shape, "float32", attr=paddle.ParamAttr(name=name))
    exe = paddle.static.Executor(paddle.CPUPlace())
    exe.run(startup)
    scope, values = paddle.static.global_scope(), {}
    for name, shape, low, high in spec["vars"]:
        values[name] = rng.uniform(low, high, size=shape).astype("float32")
        scope.find_var(name).get_tensor().set(values[name], paddle.CPUPlace())
    feed, fetch, keys = {}, [], []
    for key, (x, y) in probes.items():
        feed[x.name] = rng.standard_normal(x.shape).astype("float32")
        fetch.append(y)
        keys.append(key)
    outs = exe.run(main_prog, feed=feed, fetch_list=fetch) if fetch else []
    paddle.static.save_vars(exe, out_dir, main_program=main_prog, vars=[made[n] for n, *_ in spec["vars"]])
    parent = os.path.dirname(os.path.abspath(out_dir))
    np.savez(os.path.join(parent, "values.npz"), **values)
    probe = {}
    for key, (x, _), out in zip(keys, [probes[k] for k in keys], outs):
        probe[f"{key}_in"], probe[f"{key}_out"] = feed[x.name], np.asarray(out)
    np.savez(os.path.join(parent, "probe.npz"), **probe)


if __name__ == "__main__":
    main(*sys.argv[1:])
